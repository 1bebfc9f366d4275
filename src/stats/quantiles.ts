/**
 * Quantiles of score distributions (thresholds for budgeted routing, report percentiles).
 *
 * Quantiles need sorted input; the {@link SortedScores} brand makes "sorted" part of the type so
 * a function taking it cannot be handed an unsorted array by mistake. Only {@link sortScores} and
 * {@link assertSorted} produce it.
 */

declare const sortedScoresBrand: unique symbol;

/** A Float64Array known to be in ascending order without NaN. */
export type SortedScores = Float64Array & { readonly [sortedScoresBrand]: true };

/** A sorted copy of `values` (ascending). Rejects NaN, which has no place in an order. */
export function sortScores(values: ArrayLike<number>): SortedScores {
  const copy = Float64Array.from(values);
  for (let index = 0; index < copy.length; index++) {
    if (Number.isNaN(copy[index]!)) throw new RangeError(`cannot sort NaN (at index ${index})`);
  }
  copy.sort();
  return copy as SortedScores;
}

/** Checks that `values` is already ascending without NaN and brands it, without copying. */
export function assertSorted(values: Float64Array): SortedScores {
  for (let index = 0; index < values.length; index++) {
    const value = values[index]!;
    if (Number.isNaN(value)) throw new RangeError(`sorted scores contain NaN at index ${index}`);
    if (index > 0 && value < values[index - 1]!) {
      throw new RangeError(`scores are not sorted: index ${index} is smaller than its predecessor`);
    }
  }
  return values as SortedScores;
}

/**
 * Quantile `q` ∈ [0, 1] by linear interpolation between order statistics: numpy's default
 * (`method="linear"`, Hyndman–Fan type 7), position `h = (n - 1)·q`. The interpolation is written
 * the way numpy writes it (from the nearer end) so results agree to the last bit in practice.
 * `NaN` for an empty array.
 */
export function quantile(sorted: SortedScores, q: number): number {
  if (!(q >= 0 && q <= 1)) throw new RangeError(`quantile level must be in [0, 1], got ${q}`);
  const count = sorted.length;
  if (count === 0) return Number.NaN;
  const position = (count - 1) * q;
  const below = Math.floor(position);
  const above = Math.min(below + 1, count - 1);
  const fraction = position - below;
  const lower = sorted[below]!;
  const upper = sorted[above]!;
  const difference = upper - lower;
  return fraction >= 0.5 ? upper - difference * (1 - fraction) : lower + difference * fraction;
}

/** {@link quantile} at each level of `levels`. */
export function quantiles(sorted: SortedScores, levels: ArrayLike<number>): Float64Array {
  const result = new Float64Array(levels.length);
  for (let index = 0; index < levels.length; index++) result[index] = quantile(sorted, levels[index]!);
  return result;
}

/** The median (quantile 0.5). */
export function median(sorted: SortedScores): number {
  return quantile(sorted, 0.5);
}

/** How many scores are strictly greater than `threshold` (binary search, O(log n)). */
export function countAbove(sorted: SortedScores, threshold: number): number {
  let low = 0;
  let high = sorted.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (sorted[middle]! <= threshold) low = middle + 1;
    else high = middle;
  }
  return sorted.length - low;
}
