/** Shared statistics: the lowest layer of routelmt, importing nothing else from `src`. */
export { averageRanks, pearson, spearman } from "./correlation.js";
export { normalQuantile, studentT975 } from "./normal.js";
export {
  assertSorted,
  countAbove,
  median,
  quantile,
  quantiles,
  type SortedScores,
  sortScores,
} from "./quantiles.js";
export {
  createRandom,
  createXoshiro128,
  fillNormal,
  type MutableSequence,
  normal,
  permutation,
  type Random,
  randomInt,
  shuffle,
} from "./random.js";
export { type DispersionOptions, mean, std, variance } from "./summary.js";
