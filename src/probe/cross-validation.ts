/**
 * K-fold machinery shared by the probes: seeded fold assignment, penalty grids, penalty
 * selection and the scores reported for out-of-fold predictions.
 */
import { UsageError } from "../errors/index.js";
import { averageRanks, pearson, spearman } from "../stats/correlation.js";
import { createRandom, permutation } from "../stats/random.js";

/** Default number of folds. */
export const DEFAULT_FOLDS = 5;

/**
 * `count` penalties log-spaced from 10^fromExponent to 10^toExponent inclusive.
 */
export function logSpacedGrid(fromExponent: number, toExponent: number, count: number): number[] {
  if (!Number.isInteger(count) || count < 1)
    throw new UsageError(`grid size must be a positive integer, got ${count}`);
  if (count === 1) return [10 ** fromExponent];
  const step = (toExponent - fromExponent) / (count - 1);
  return Array.from({ length: count }, (_, index) => 10 ** (fromExponent + step * index));
}

/** Default penalty grid: 10^-3, 10^-2, …, 10^5 (nine values). */
export const DEFAULT_LAMBDAS: readonly number[] = Object.freeze(logSpacedGrid(-3, 5, 9));

/** Checks a penalty grid: non-empty, every value finite and > 0. */
export function checkLambdas(lambdas: readonly number[]): void {
  if (lambdas.length === 0) throw new UsageError("the lambda grid is empty");
  for (const lambda of lambdas) {
    if (!(Number.isFinite(lambda) && lambda > 0))
      throw new UsageError(`lambda must be finite and > 0, got ${lambda}`);
  }
}

function checkFolds(rows: number, folds: number): void {
  if (!Number.isInteger(folds) || folds < 2)
    throw new UsageError(`folds must be an integer ≥ 2, got ${folds}`);
  if (rows < folds) throw new UsageError(`cannot split ${rows} rows into ${folds} folds`);
}

/**
 * The fold (0…folds−1) of every row: rows are shuffled with `seed`, then dealt out in turn, so
 * fold sizes differ by at most one. Same rows, folds and seed → same assignment.
 */
export function kFoldAssignment(rows: number, folds: number, seed: number): Int32Array {
  checkFolds(rows, folds);
  const order = permutation(rows, createRandom(seed));
  const assignment = new Int32Array(rows);
  for (let position = 0; position < rows; position++) assignment[order[position]!] = position % folds;
  return assignment;
}

/**
 * Like {@link kFoldAssignment}, but each class of the 0/1 `labels` is dealt out separately, so
 * every fold gets its share of a rare class (needed for imbalanced risk labels, where a plain
 * split can leave a fold without positives).
 */
export function stratifiedKFoldAssignment(
  labels: ArrayLike<number>,
  folds: number,
  seed: number,
): Int32Array {
  const rows = labels.length;
  checkFolds(rows, folds);
  const order = permutation(rows, createRandom(seed));
  const assignment = new Int32Array(rows);
  let dealt = 0;
  for (const label of [1, 0]) {
    for (let position = 0; position < rows; position++) {
      const row = order[position]!;
      if (labels[row] === label) assignment[row] = dealt++ % folds;
    }
  }
  return assignment;
}

/** How many folds an assignment deals rows into (its largest fold number + 1; 0 for no rows). */
export function foldCountOf(assignment: Int32Array): number {
  return assignment.reduce((most, fold) => Math.max(most, fold + 1), 0);
}

/** Rows in fold `fold` (`inFold` true) or in every other fold (false), ascending. */
export function foldRows(assignment: Int32Array, fold: number, inFold: boolean): Int32Array {
  let count = 0;
  for (let row = 0; row < assignment.length; row++) if ((assignment[row] === fold) === inFold) count++;
  const rows = new Int32Array(count);
  let next = 0;
  for (let row = 0; row < assignment.length; row++)
    if ((assignment[row] === fold) === inFold) rows[next++] = row;
  return rows;
}

/**
 * Index of the best (lowest) score. Scores within a relative 1e-9 of the best count as tied and the
 * largest penalty among them wins: with equal validation error the simpler model generalises better.
 */
export function selectLowest(scores: readonly number[], lambdas: readonly number[]): number {
  let best = Number.POSITIVE_INFINITY;
  for (const score of scores) if (score < best) best = score;
  if (!Number.isFinite(best)) throw new UsageError("no penalty gave a finite validation score");
  const tolerance = 1e-9 * Math.max(1, Math.abs(best));
  let chosen = -1;
  for (let index = 0; index < scores.length; index++) {
    if (scores[index]! <= best + tolerance && (chosen < 0 || lambdas[index]! > lambdas[chosen]!))
      chosen = index;
  }
  return chosen;
}

/** Agreement of predictions with a regression target. */
export interface RegressionScores {
  mse: number;
  pearson: number;
  spearman: number;
}

/** Mean squared error, Pearson and Spearman correlation of `predictions` against `targets`. */
export function regressionScores(
  targets: ArrayLike<number>,
  predictions: ArrayLike<number>,
): RegressionScores {
  return {
    mse: meanSquaredError(targets, predictions),
    pearson: pearson(predictions, targets),
    spearman: spearman(predictions, targets),
  };
}

/** Mean squared error. */
export function meanSquaredError(targets: ArrayLike<number>, predictions: ArrayLike<number>): number {
  let sum = 0;
  for (let index = 0; index < targets.length; index++) sum += (targets[index]! - predictions[index]!) ** 2;
  return sum / targets.length;
}

/** Probabilities are clipped to [ε, 1 − ε] in log-losses so one confident mistake stays finite. */
const PROBABILITY_EPSILON = 1e-15;

/**
 * Mean log-loss (cross-entropy) of probabilities for 0/1 labels, optionally weighted per class:
 * `classWeights = [weight of 0, weight of 1]` (defaults to [1, 1]).
 */
export function logLoss(
  labels: ArrayLike<number>,
  probabilities: ArrayLike<number>,
  classWeights: readonly [number, number] = [1, 1],
): number {
  let loss = 0;
  let weightSum = 0;
  for (let index = 0; index < labels.length; index++) {
    const probability = Math.min(
      1 - PROBABILITY_EPSILON,
      Math.max(PROBABILITY_EPSILON, probabilities[index]!),
    );
    const positive = labels[index] === 1;
    const weight = positive ? classWeights[1] : classWeights[0];
    loss -= weight * Math.log(positive ? probability : 1 - probability);
    weightSum += weight;
  }
  return loss / weightSum;
}

/**
 * Area under the ROC curve for 0/1 labels: the probability that a random positive scores above a
 * random negative, ties counting one half (Mann–Whitney U from average ranks). `NaN` without
 * both classes.
 */
export function rocAuc(labels: ArrayLike<number>, scores: ArrayLike<number>): number {
  const ranks = averageRanks(scores);
  let positives = 0;
  let positiveRankSum = 0;
  for (let index = 0; index < labels.length; index++) {
    if (labels[index] === 1) {
      positives++;
      positiveRankSum += ranks[index]!;
    }
  }
  const negatives = labels.length - positives;
  if (positives === 0 || negatives === 0) return Number.NaN;
  return (positiveRankSum - (positives * (positives + 1)) / 2) / (positives * negatives);
}
