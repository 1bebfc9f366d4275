import { UsageError } from "../errors/index.js";

/**
 * Quantile of an ascending array by linear interpolation between order statistics (Hyndman–Fan
 * type 7, the default of numpy and R), so results match what analysts compute by hand.
 *
 * Kept private to routing/eval until the shared statistics module exists; the two should be unified.
 *
 * @param sorted values in ascending order, at least one, no NaN.
 * @param probability in [0, 1].
 */
export function quantileOfSorted(sorted: readonly number[], probability: number): number {
  if (sorted.length === 0) throw new UsageError("quantile of an empty array");
  if (!(probability >= 0 && probability <= 1))
    throw new UsageError(`quantile probability must be in [0, 1], got ${probability}`);
  const position = probability * (sorted.length - 1);
  const lowerIndex = Math.floor(position);
  const lower = sorted[lowerIndex]!;
  if (lowerIndex + 1 >= sorted.length) return lower;
  const upper = sorted[lowerIndex + 1]!;
  const fraction = position - lowerIndex;
  return fraction === 0 ? lower : lower + fraction * (upper - lower);
}
