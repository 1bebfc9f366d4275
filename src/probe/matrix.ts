import { InputError, UsageError } from "../errors/index.js";

/**
 * A dataset of hidden states: `rows` × `dim` values, row-major (row `i` starts at `i · dim`),
 * one row per segment.
 */
export interface FeatureMatrix {
  features: Float32Array;
  rows: number;
  dim: number;
}

/** Checks shape and finiteness of a feature matrix; `what` names it in messages. */
export function checkFeatureMatrix(matrix: FeatureMatrix, what = "features"): void {
  const { features, rows, dim } = matrix;
  if (!Number.isInteger(dim) || dim < 1)
    throw new UsageError(`${what}: dim must be a positive integer, got ${dim}`);
  if (!Number.isInteger(rows) || rows < 0)
    throw new UsageError(`${what}: rows must be an integer ≥ 0, got ${rows}`);
  if (features.length !== rows * dim) {
    throw new InputError(`${what}: expected ${rows} × ${dim} = ${rows * dim} values, got ${features.length}`);
  }
  for (let index = 0; index < features.length; index++) {
    if (!Number.isFinite(features[index]!)) {
      throw new InputError(
        `${what}: non-finite value at row ${Math.floor(index / dim)}, column ${index % dim}`,
      );
    }
  }
}

/** Checks that there is one finite target per row. */
export function checkTargets(targets: ArrayLike<number>, rows: number, what = "targets"): void {
  if (targets.length !== rows)
    throw new InputError(`${what}: expected ${rows} values, got ${targets.length}`);
  for (let index = 0; index < rows; index++) {
    if (!Number.isFinite(targets[index]!)) throw new InputError(`${what}: non-finite value at row ${index}`);
  }
}

/** Checks that every label is 0 or 1 and that both classes occur. */
export function checkBinaryLabels(labels: ArrayLike<number>, rows: number, what = "labels"): void {
  if (labels.length !== rows) throw new InputError(`${what}: expected ${rows} values, got ${labels.length}`);
  let positives = 0;
  for (let index = 0; index < rows; index++) {
    const label = labels[index];
    if (label !== 0 && label !== 1)
      throw new InputError(`${what}: row ${index} is ${label}, expected 0 or 1`);
    positives += label;
  }
  if (positives === 0 || positives === rows) {
    throw new InputError(`${what}: both classes must occur (got ${positives} positives of ${rows})`);
  }
}

/** All row indices 0…rows−1. */
export function allRows(rows: number): Int32Array {
  const indices = new Int32Array(rows);
  for (let index = 0; index < rows; index++) indices[index] = index;
  return indices;
}
