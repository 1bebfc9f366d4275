import type { FeatureMatrix } from "./matrix.js";

/** Per-feature centring and scaling learned from training rows: z = (x − mean) / std. */
export interface Standardizer {
  mean: Float64Array;
  std: Float64Array;
}

/**
 * The scale used for a feature whose standard deviation is `std` around `mean`: the std itself, or
 * 1 when the feature is constant. "Constant" allows for rounding (std ≤ 1e-12 · max(1, |mean|)), since
 * a column of identical float32 values rarely yields an exact zero; dividing by such a residue
 * would blow the feature up instead of leaving it inert.
 */
export function safeScale(std: number, mean: number): number {
  return std > 1e-12 * Math.max(1, Math.abs(mean)) ? std : 1;
}

/**
 * Mean and population std (ddof 0, as scikit-learn's StandardScaler) of each feature over
 * `rowIndices` only (defaults to every row), so validation rows never leak into the scaling.
 */
export function fitStandardizer(matrix: FeatureMatrix, rowIndices?: ArrayLike<number>): Standardizer {
  const { features, dim } = matrix;
  const count = rowIndices ? rowIndices.length : matrix.rows;
  const mean = new Float64Array(dim);
  const std = new Float64Array(dim);
  if (count === 0) {
    std.fill(1);
    return { mean, std };
  }
  const rowAt = (position: number): number => (rowIndices ? rowIndices[position]! : position);
  for (let position = 0; position < count; position++) {
    const base = rowAt(position) * dim;
    for (let column = 0; column < dim; column++) mean[column]! += features[base + column]!;
  }
  for (let column = 0; column < dim; column++) mean[column]! /= count;
  const squares = new Float64Array(dim);
  for (let position = 0; position < count; position++) {
    const base = rowAt(position) * dim;
    for (let column = 0; column < dim; column++) {
      const deviation = features[base + column]! - mean[column]!;
      squares[column]! += deviation * deviation;
    }
  }
  for (let column = 0; column < dim; column++) {
    std[column] = safeScale(Math.sqrt(squares[column]! / count), mean[column]!);
  }
  return { mean, std };
}

/** Writes the standardized row `row` of `matrix` into `target` (length dim). */
export function standardizeRow(
  standardizer: Standardizer,
  features: Float32Array,
  row: number,
  target: Float64Array,
): void {
  const { mean, std } = standardizer;
  const dim = mean.length;
  const base = row * dim;
  for (let column = 0; column < dim; column++) {
    target[column] = (features[base + column]! - mean[column]!) / std[column]!;
  }
}
