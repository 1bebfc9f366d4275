/**
 * Seeded synthetic datasets for the probe tests and the training benchmark (not part of the
 * public API).
 */
import { createRandom, fillNormal, normal } from "../stats/random.js";
import type { FeatureMatrix } from "./matrix.js";

/** Standard-normal features, rows × dim, from `seed`. */
export function gaussianMatrix(rows: number, dim: number, seed: number): FeatureMatrix {
  const features = new Float32Array(rows * dim);
  fillNormal(features, createRandom(seed));
  return { features, rows, dim };
}

/** y = bias + X·weights + noise·N(0, 1), with its own noise seed. */
export function linearTargets(
  matrix: FeatureMatrix,
  weights: ArrayLike<number>,
  bias: number,
  noise: number,
  seed: number,
): Float64Array {
  const random = createRandom(seed);
  const targets = new Float64Array(matrix.rows);
  for (let row = 0; row < matrix.rows; row++) {
    let value = bias;
    for (let column = 0; column < weights.length; column++) {
      value += weights[column]! * matrix.features[row * matrix.dim + column]!;
    }
    targets[row] = value + noise * normal(random);
  }
  return targets;
}
