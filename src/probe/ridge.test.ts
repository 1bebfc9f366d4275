import { describe, expect, it } from "vitest";
import { UsageError } from "../errors/index.js";
import { createRandom, normal } from "../stats/random.js";
import { foldRows, kFoldAssignment } from "./cross-validation.js";
import { accumulateMoments, addMoments, emptyMoments } from "./linear-algebra.js";
import type { FeatureMatrix } from "./matrix.js";
import { parseProbeModel, predict, predictRows } from "./probe-model.js";
import { crossValidateRidge, fitRidge, globalShift, ridgeSystem } from "./ridge.js";
import { gaussianMatrix, linearTargets } from "./synthetic-data.js";

function matrixOf(rows: number[][]): FeatureMatrix {
  return { features: Float32Array.from(rows.flat()), rows: rows.length, dim: rows[0]!.length };
}

describe("fitRidge", () => {
  it("equals ordinary least squares by hand with λ = 0 (one feature)", () => {
    // x = [1, 2, 3, 4], y = [2, 3, 5, 6]: x̄ = 2.5, ȳ = 4, Σ(x−x̄)(y−ȳ) = 7, Σ(x−x̄)² = 5,
    // slope 1.4, intercept 4 − 1.4·2.5 = 0.5; at x = 5 the line gives 7.5.
    const model = fitRidge(matrixOf([[1], [2], [3], [4]]), [2, 3, 5, 6], { lambda: 0 });
    expect(model.bias).toBeCloseTo(4, 12);
    expect(predict(model, new Float32Array([5]))).toBeCloseTo(7.5, 12);
    expect(predict(model, new Float32Array([0]))).toBeCloseTo(0.5, 12);
  });

  it("equals ordinary least squares with λ → 0 (two features)", () => {
    // numpy.linalg.lstsq on [1, x1, x2] gives coefficients [42/41, 49/41, 77/82]
    // (1.0243902439024377, 1.1951219512195106, 0.9390243902439019); at x = (2, −1): 2.475609756097557.
    const matrix = matrixOf([
      [1, 0],
      [0, 1],
      [1, 1],
      [2, 1],
      [3, 5],
    ]);
    const model = fitRidge(matrix, [1, 2, 4, 5, 9], { lambda: 1e-10 });
    expect(predict(model, new Float32Array([2, -1]))).toBeCloseTo(2.475609756097557, 8);
    expect(predict(model, new Float32Array([0, 0]))).toBeCloseTo(42 / 41, 8);
  });

  it("matches numpy's standardized ridge with an unpenalized intercept", () => {
    // numpy: Z = (X − X.mean(0)) / X.std(0); w = solve(ZᵀZ + 2I, Zᵀ(y − ȳ))
    //   → w = [1.086705825316076, 1.2416226482484094]; prediction at (2, −1) = 2.9878511277309934.
    const matrix = matrixOf([
      [1, 0],
      [0, 1],
      [1, 1],
      [2, 1],
      [3, 5],
    ]);
    const model = fitRidge(matrix, [1, 2, 4, 5, 9], { lambda: 2 });
    expect(model.weights[0]).toBeCloseTo(1.086705825316076, 10);
    expect(model.weights[1]).toBeCloseTo(1.2416226482484094, 10);
    expect(model.bias).toBeCloseTo(4.2, 12);
    expect(predict(model, new Float32Array([2, -1]))).toBeCloseTo(2.9878511277309934, 10);
  });

  it("recovers known weights from noisy synthetic data", () => {
    const dim = 12;
    const matrix = gaussianMatrix(3000, dim, 1);
    const trueWeights = Array.from({ length: dim }, (_, index) => (index % 3 === 0 ? 0 : (index - 6) / 3));
    const targets = linearTargets(matrix, trueWeights, 1.5, 0.1, 2);
    const model = fitRidge(matrix, targets, { lambda: 1e-3 });
    // Standardized weight = raw weight · std, and predictions on the unit vectors reveal raw weights.
    const origin = predict(model, new Float32Array(dim));
    expect(origin).toBeCloseTo(1.5, 1);
    for (let column = 0; column < dim; column++) {
      const unit = new Float32Array(dim);
      unit[column] = 1;
      expect(predict(model, unit) - origin).toBeCloseTo(trueWeights[column]!, 1);
    }
  });

  it("leaves constant features inert and rejects bad input", () => {
    const matrix = matrixOf([
      [1, 7],
      [2, 7],
      [3, 7],
    ]);
    const model = fitRidge(matrix, [1, 2, 3], { lambda: 1e-6 });
    expect(model.std[1]).toBe(1);
    expect(model.weights[1]).toBeCloseTo(0, 8);
    expect(() => fitRidge(matrix, [1, 2], { lambda: 1 })).toThrow(/expected 3 values/);
    expect(() => fitRidge(matrix, [1, 2, 3], { lambda: -1 })).toThrow(UsageError);
  });
});

describe("crossValidateRidge", () => {
  it("picks a small penalty on clean data", () => {
    const dim = 10;
    const matrix = gaussianMatrix(600, dim, 3);
    const weights = Array.from({ length: dim }, (_, index) => index - 4.5);
    const result = crossValidateRidge(matrix, linearTargets(matrix, weights, 0, 0.05, 4), { seed: 1 });
    expect(result.lambda).toBeLessThanOrEqual(0.1);
    expect(result.cvPearson).toBeGreaterThan(0.999);
    expect(result.cvSpearman).toBeGreaterThan(0.99);
    expect(result.mseByLambda).toHaveLength(9);
    expect(result.cvMse).toBe(Math.min(...result.mseByLambda));
  });

  it("picks a larger penalty on noisy data with many useless features", () => {
    const dim = 80;
    const matrix = gaussianMatrix(150, dim, 5);
    const weights = [0.5, -0.5, 0.3];
    const targets = linearTargets(matrix, weights, 0, 2, 6);
    const result = crossValidateRidge(matrix, targets, { seed: 2 });
    expect(result.lambda).toBeGreaterThanOrEqual(100);
    // The penalized fit must beat the barely-penalized one out of fold.
    expect(result.cvMse).toBeLessThan(result.mseByLambda[0]!);
  });

  it("out-of-fold predictions match refits on each fold's training rows", () => {
    const dim = 6;
    const matrix = gaussianMatrix(200, dim, 7);
    const targets = linearTargets(matrix, [1, 2, 0, 0, -1, 0.5], 3, 1, 8);
    const result = crossValidateRidge(matrix, targets, { folds: 4, seed: 3, lambdas: [0.5, 50] });
    // Rebuild fold 0's training rows from the out-of-fold bookkeeping: refit directly with Cholesky.
    const assignment = kFoldAssignment(200, 4, 3);
    const refit = fitRidge(matrix, targets, { lambda: result.lambda, rows: foldRows(assignment, 0, false) });
    for (const row of foldRows(assignment, 0, true)) {
      expect(predict(refit, matrix.features, row)).toBeCloseTo(result.outOfFold[row]!, 9);
    }
  });

  it("is deterministic for a seed and serialises losslessly", () => {
    const matrix = gaussianMatrix(120, 5, 9);
    const random = createRandom(10);
    const targets = Float64Array.from(
      { length: 120 },
      (_, row) => matrix.features[row * 5]! + normal(random),
    );
    const first = crossValidateRidge(matrix, targets, { seed: 4 });
    const second = crossValidateRidge(matrix, targets, { seed: 4 });
    expect(second.model).toEqual(first.model);
    expect(Array.from(second.outOfFold)).toEqual(Array.from(first.outOfFold));
    const reloaded = parseProbeModel(JSON.stringify(first.model));
    const direct = predictRows(first.model, matrix.features, 120);
    const viaJson = predictRows(reloaded, matrix.features, 120);
    expect(Array.from(viaJson)).toEqual(Array.from(direct));
    expect(predict(reloaded, matrix.features, 17)).toBe(direct[17]);
  });
});

describe("ridgeSystem on a training set that is the total minus a fold", () => {
  // A rare word's column: non-zero in one row only. When that row is in the held-out fold, the
  // training rows hold the column constant, but total − fold leaves a rounding residue as its
  // variance; scaling by that residue made the column ~1e9 times too large and the system indefinite.
  it("treats a column constant in the training rows as constant", () => {
    const rows = 2000;
    const dim = 2;
    for (let trial = 0; trial < 50; trial++) {
      const features = new Float32Array(rows * dim);
      const targets = new Float64Array(rows);
      for (let row = 0; row < rows; row++) {
        features[row * dim] = Math.sin(row * 1.7 + trial);
        targets[row] = Math.cos(row);
      }
      const rareRow = 37 + trial;
      features[rareRow * dim + 1] = 0.1 + trial / 37;
      const every = Array.from({ length: rows }, (_, row) => row);
      const { shift, targetShift } = globalShift({ features, rows, dim }, targets, every);
      const total = emptyMoments(dim);
      accumulateMoments(total, features, targets, every, shift, targetShift);
      const fold = emptyMoments(dim);
      const foldRows = every.filter((row) => row % 5 === rareRow % 5);
      accumulateMoments(fold, features, targets, foldRows, shift, targetShift);
      const training = emptyMoments(dim);
      addMoments(training, total);
      addMoments(training, fold, -1);
      const system = ridgeSystem(training, shift, targetShift);
      expect(system.std[1]).toBe(1);
      expect(Math.abs(system.gram[dim + 1]!)).toBeLessThan(1e-9);
      expect(system.std[0]).toBeGreaterThan(0.5);
    }
  });
});
