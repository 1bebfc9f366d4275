import { describe, expect, it } from "vitest";
import { createRandom } from "../stats/random.js";
import { crossValidateLogistic, fitLogistic } from "./logistic.js";
import type { FeatureMatrix } from "./matrix.js";
import { type LogisticProbeModel, parseProbeModel, predict, predictRows, sigmoid } from "./probe-model.js";
import { gaussianMatrix } from "./synthetic-data.js";

const TRUE_WEIGHTS = [2, -1, 0, 0, 0.5, 0];
const TRUE_BIAS = -1.5; // about a quarter positives: an imbalanced risk class

/** Labels drawn from the true logistic model. */
function logisticLabels(matrix: FeatureMatrix, seed: number): Float64Array {
  const random = createRandom(seed);
  const labels = new Float64Array(matrix.rows);
  for (let row = 0; row < matrix.rows; row++) {
    let logit = TRUE_BIAS;
    for (let column = 0; column < TRUE_WEIGHTS.length; column++) {
      logit += TRUE_WEIGHTS[column]! * matrix.features[row * matrix.dim + column]!;
    }
    labels[row] = random.nextFloat() < sigmoid(logit) ? 1 : 0;
  }
  return labels;
}

/** Raw-feature weights of a head: standardized weight / std. */
function rawWeights(model: LogisticProbeModel): number[] {
  return model.weights.map((weight, column) => weight / model.std[column]!);
}

function cosine(left: number[], right: number[]): number {
  let dot = 0;
  let leftSquares = 0;
  let rightSquares = 0;
  for (let index = 0; index < left.length; index++) {
    dot += left[index]! * right[index]!;
    leftSquares += left[index]! ** 2;
    rightSquares += right[index]! ** 2;
  }
  return dot / Math.sqrt(leftSquares * rightSquares);
}

/** Largest gap between mean predicted probability and observed frequency over deciles of prediction. */
function calibrationGap(probabilities: Float64Array, labels: Float64Array): number {
  const order = Array.from(probabilities.keys()).sort(
    (left, right) => probabilities[left]! - probabilities[right]!,
  );
  let worst = 0;
  const binSize = Math.floor(order.length / 10);
  for (let bin = 0; bin < 10; bin++) {
    let predicted = 0;
    let observed = 0;
    for (let position = bin * binSize; position < (bin + 1) * binSize; position++) {
      predicted += probabilities[order[position]!]!;
      observed += labels[order[position]!]!;
    }
    worst = Math.max(worst, Math.abs(predicted - observed) / binSize);
  }
  return worst;
}

describe("fitLogistic", () => {
  const matrix = gaussianMatrix(6000, TRUE_WEIGHTS.length, 21);
  const labels = logisticLabels(matrix, 22);
  const testMatrix = gaussianMatrix(6000, TRUE_WEIGHTS.length, 23);
  const testLabels = logisticLabels(testMatrix, 24);

  it("recovers the direction and size of known weights without class weighting", () => {
    const model = fitLogistic(matrix, labels, { lambda: 1e-3, classWeight: "none" });
    const weights = rawWeights(model);
    expect(cosine(weights, TRUE_WEIGHTS)).toBeGreaterThan(0.995);
    expect(weights[0]).toBeCloseTo(2, 0);
    expect(weights[1]).toBeCloseTo(-1, 0);
    expect(Math.abs(weights[2]!)).toBeLessThan(0.15);
    // Intercept at x = 0 (raw space) should be near the true −1.5.
    expect(
      Math.log(predict(model, new Float32Array(6)) / (1 - predict(model, new Float32Array(6)))),
    ).toBeCloseTo(TRUE_BIAS, 0);
  });

  it("gives calibrated probabilities on held-out data, balanced or not", () => {
    const positiveRate = testLabels.reduce((sum, label) => sum + label, 0) / testLabels.length;
    for (const classWeight of ["none", "balanced"] as const) {
      const model = fitLogistic(matrix, labels, { lambda: 1, classWeight });
      const probabilities = predictRows(model, testMatrix.features, testMatrix.rows);
      const meanProbability = probabilities.reduce((sum, value) => sum + value, 0) / probabilities.length;
      expect(Math.abs(meanProbability - positiveRate)).toBeLessThan(0.02);
      expect(calibrationGap(probabilities, testLabels)).toBeLessThan(0.06);
      expect(cosine(rawWeights(model), TRUE_WEIGHTS)).toBeGreaterThan(0.99);
    }
  });

  it("shrinks weights towards zero under a strong penalty", () => {
    const weak = fitLogistic(matrix, labels, { lambda: 1e-3 });
    const strong = fitLogistic(matrix, labels, { lambda: 1e5 });
    const norm = (model: LogisticProbeModel) => Math.hypot(...model.weights);
    expect(norm(strong)).toBeLessThan(0.2 * norm(weak));
  });

  it("rejects labels that are not 0/1 or miss a class", () => {
    expect(() => fitLogistic(matrix, new Float64Array(matrix.rows), { lambda: 1 })).toThrow(/both classes/);
    const wrong = Float64Array.from(labels);
    wrong[3] = 2;
    expect(() => fitLogistic(matrix, wrong, { lambda: 1 })).toThrow(/expected 0 or 1/);
  });
});

describe("crossValidateLogistic", () => {
  const matrix = gaussianMatrix(1500, TRUE_WEIGHTS.length, 31);
  const labels = logisticLabels(matrix, 32);

  it("chooses a penalty, ranks well out of fold and is deterministic", () => {
    const options = { seed: 5, lambdas: [1e-2, 1, 100, 1e4] };
    const result = crossValidateLogistic(matrix, labels, options);
    expect(result.lambda).toBeLessThanOrEqual(100);
    expect(result.cvAuc).toBeGreaterThan(0.8);
    expect(result.cvLogLoss).toBe(Math.min(...result.logLossByLambda));
    // The strongest penalty flattens the model, which must cost held-out log-loss.
    expect(result.logLossByLambda[3]!).toBeGreaterThan(result.cvLogLoss + 0.01);
    const again = crossValidateLogistic(matrix, labels, options);
    expect(again.model).toEqual(result.model);
    const reloaded = parseProbeModel(JSON.parse(JSON.stringify(result.model)));
    expect(predict(reloaded, matrix.features, 9)).toBe(predict(result.model, matrix.features, 9));
  });

  it("stops the penalty path once weaker penalties keep doing worse, choosing as the whole grid does", () => {
    const lambdas = [1e-3, 1e-2, 0.1, 1, 10, 100, 1e3, 1e4, 1e5];
    const whole = crossValidateLogistic(matrix, labels, { seed: 5, lambdas, pathPatience: Infinity });
    const path = crossValidateLogistic(matrix, labels, { seed: 5, lambdas });
    expect(whole.logLossByLambda.every(Number.isFinite)).toBe(true);
    const best = lambdas.indexOf(whole.lambda);
    // The grid's minimum is inside it, so the path has something to skip.
    expect(best).toBeGreaterThanOrEqual(2);
    expect(path.lambda).toBe(whole.lambda);
    expect(path.model).toEqual(whole.model);
    expect(path.outOfFold).toEqual(whole.outOfFold);
    // Walked from 1e5 down: everything from the best to two weaker ones, nothing beyond.
    path.logLossByLambda.forEach((loss, index) => {
      if (index >= best - 2) expect(loss).toBe(whole.logLossByLambda[index]);
      else expect(loss).toBeNaN();
    });
    expect(() => crossValidateLogistic(matrix, labels, { lambdas, pathPatience: 0 })).toThrow(/pathPatience/);
  });
});
