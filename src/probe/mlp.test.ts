import { describe, expect, it } from "vitest";
import { createRandom, normal } from "../stats/random.js";
import { meanSquaredError, rocAuc } from "./cross-validation.js";
import type { FeatureMatrix } from "./matrix.js";
import { fitMlp } from "./mlp.js";
import { parseProbeModel, predict, predictRows } from "./probe-model.js";
import { crossValidateRidge } from "./ridge.js";
import { gaussianMatrix } from "./synthetic-data.js";

/** y = sin(x0)·x1 + |x2| + 0.05·noise: no linear signal at all, easy for one hidden layer. */
function nonLinearTargets(matrix: FeatureMatrix, seed: number): Float64Array {
  const random = createRandom(seed);
  const { features, dim } = matrix;
  return Float64Array.from({ length: matrix.rows }, (_, row) => {
    const base = row * dim;
    return (
      Math.sin(features[base]!) * features[base + 1]! + Math.abs(features[base + 2]!) + 0.05 * normal(random)
    );
  });
}

describe("fitMlp", () => {
  const matrix = gaussianMatrix(2500, 6, 41);
  const targets = nonLinearTargets(matrix, 42);
  const testMatrix = gaussianMatrix(1000, 6, 43);
  const testTargets = nonLinearTargets(testMatrix, 44);
  const options = { hidden: 32, learningRate: 3e-3, maxEpochs: 60, patience: 8, seed: 7 } as const;

  it("beats ridge on a non-linear target", () => {
    const ridge = crossValidateRidge(matrix, targets, { seed: 1 });
    const mlp = fitMlp(matrix, targets, options);
    const mlpTestMse = meanSquaredError(
      testTargets,
      predictRows(mlp.model, testMatrix.features, testMatrix.rows),
    );
    const ridgeTestMse = meanSquaredError(
      testTargets,
      predictRows(ridge.model, testMatrix.features, testMatrix.rows),
    );
    // Ridge can only predict the mean here (CV MSE ≈ Var y ≈ 0.8); the MLP must do far better,
    // both on its held-out split and on fresh data.
    expect(mlp.validationLoss).toBeLessThan(0.5 * ridge.cvMse);
    expect(mlpTestMse).toBeLessThan(0.5 * ridgeTestMse);
    expect(mlp.bestEpoch).toBeGreaterThan(0);
  });

  it("is deterministic for a seed and different for another", () => {
    const first = fitMlp(matrix, targets, { ...options, maxEpochs: 3 });
    const second = fitMlp(matrix, targets, { ...options, maxEpochs: 3 });
    const other = fitMlp(matrix, targets, { ...options, maxEpochs: 3, seed: 8 });
    expect(second.model).toEqual(first.model);
    expect(other.model.hiddenWeights).not.toEqual(first.model.hiddenWeights);
  });

  it("stops early once the held-out loss stops improving", () => {
    const fit = fitMlp(matrix, targets, { ...options, learningRate: 0.05, maxEpochs: 200, patience: 3 });
    expect(fit.epochsRun).toBeLessThan(200);
    expect(fit.epochsRun - fit.bestEpoch).toBe(3);
  });

  it("serialises losslessly and scores the same row by row and in a batch", () => {
    const fit = fitMlp(matrix, targets, { ...options, maxEpochs: 2, activation: "gelu" });
    const reloaded = parseProbeModel(JSON.stringify(fit.model));
    const batch = predictRows(fit.model, testMatrix.features, 50);
    const reloadedBatch = predictRows(reloaded, testMatrix.features, 50);
    expect(Array.from(reloadedBatch)).toEqual(Array.from(batch));
    expect(predict(reloaded, testMatrix.features, 12)).toBe(batch[12]);
  });

  it("learns a non-linear risk flag in binary mode", () => {
    // Positive when |x0| > 1.5: a rare two-sided region a linear classifier cannot isolate.
    const labels = Float64Array.from({ length: matrix.rows }, (_, row) =>
      Math.abs(matrix.features[row * 6]!) > 1.5 ? 1 : 0,
    );
    const testLabels = Float64Array.from({ length: testMatrix.rows }, (_, row) =>
      Math.abs(testMatrix.features[row * 6]!) > 1.5 ? 1 : 0,
    );
    const fit = fitMlp(matrix, labels, { ...options, output: "binary" });
    const probabilities = predictRows(fit.model, testMatrix.features, testMatrix.rows);
    for (const probability of probabilities) expect(probability >= 0 && probability <= 1).toBe(true);
    expect(rocAuc(testLabels, probabilities)).toBeGreaterThan(0.95);
    const positiveRate = testLabels.reduce((sum, label) => sum + label, 0) / testLabels.length;
    const meanProbability = probabilities.reduce((sum, value) => sum + value, 0) / probabilities.length;
    expect(Math.abs(meanProbability - positiveRate)).toBeLessThan(0.05);
  });
});
