/**
 * Summary statistics over plain or typed arrays, computed in Float64.
 *
 * Empty input gives `NaN` rather than throwing, like numpy (without its warning): callers that
 * need a number must check the length themselves.
 */

/** Arithmetic mean. `NaN` for an empty array. */
export function mean(values: ArrayLike<number>): number {
  const count = values.length;
  if (count === 0) return Number.NaN;
  let sum = 0;
  for (let index = 0; index < count; index++) sum += values[index]!;
  const firstPass = sum / count;
  // A second pass over the residuals removes most of the rounding error of the plain sum
  // (the corrected two-pass algorithm), which matters for long arrays with a large offset.
  let residualSum = 0;
  for (let index = 0; index < count; index++) residualSum += values[index]! - firstPass;
  return firstPass + residualSum / count;
}

/** Options of {@link variance} and {@link std}. */
export interface DispersionOptions {
  /**
   * Delta degrees of freedom: the divisor is `n - ddof`. Defaults to 0 (population variance,
   * numpy's default); pass 1 for the unbiased sample variance (pandas' and R's default).
   */
  ddof?: number;
}

/**
 * Variance by the corrected two-pass algorithm. `NaN` when `n - ddof <= 0`.
 * Defaults: `ddof = 0`.
 */
export function variance(values: ArrayLike<number>, options: DispersionOptions = {}): number {
  const ddof = options.ddof ?? 0;
  const count = values.length;
  if (count - ddof <= 0) return Number.NaN;
  const center = mean(values);
  let squares = 0;
  let residualSum = 0;
  for (let index = 0; index < count; index++) {
    const deviation = values[index]! - center;
    squares += deviation * deviation;
    residualSum += deviation;
  }
  // Subtracting (Σ deviation)² / n compensates for the rounding error left in `center`.
  return Math.max(0, (squares - (residualSum * residualSum) / count) / (count - ddof));
}

/** Standard deviation, the square root of {@link variance}. Defaults: `ddof = 0`. */
export function std(values: ArrayLike<number>, options: DispersionOptions = {}): number {
  return Math.sqrt(variance(values, options));
}
