import { describe, expect, it } from "vitest";
import { InputError } from "../errors/index.js";
import {
  activate,
  activationDerivative,
  type MlpProbeModel,
  parseProbeModel,
  predict,
  predictRows,
  type RidgeProbeModel,
  sigmoid,
} from "./probe-model.js";

const ridge: RidgeProbeModel = {
  format: 1,
  kind: "ridge",
  dim: 2,
  mean: [1, 2],
  std: [2, 4],
  weights: [3, -1],
  bias: 0.5,
  lambda: 1,
};

const mlp: MlpProbeModel = {
  format: 1,
  kind: "mlp",
  dim: 2,
  mean: [0, 0],
  std: [1, 1],
  output: "regression",
  activation: "relu",
  hidden: 2,
  hiddenWeights: [1, 0, 0, -1],
  hiddenBias: [0, 1],
  outputWeights: [2, 3],
  outputBias: -1,
};

describe("predict", () => {
  it("scores a ridge head by hand", () => {
    // x = (5, 6): z = ((5 − 1)/2, (6 − 2)/4) = (2, 1); 0.5 + 3·2 − 1·1 = 5.5.
    expect(predict(ridge, new Float32Array([5, 6]))).toBe(5.5);
    // Row 1 of a two-row matrix.
    expect(predict(ridge, new Float32Array([0, 0, 5, 6]), 1)).toBe(5.5);
  });

  it("scores a logistic head as a probability", () => {
    const logistic = { ...ridge, kind: "logistic" as const };
    expect(predict(logistic, new Float32Array([5, 6]))).toBeCloseTo(1 / (1 + Math.exp(-5.5)), 15);
  });

  it("scores an MLP head by hand", () => {
    // x = (2, 0.5): hidden pre-activations (2, 1 − 0.5) → ReLU (2, 0.5); −1 + 2·2 + 3·0.5 = 4.5.
    expect(predict(mlp, new Float32Array([2, 0.5]))).toBe(4.5);
    // x = (−1, 3): (−1, −2) → (0, 0) → −1.
    expect(predict(mlp, new Float32Array([-1, 3]))).toBe(-1);
    const binary = { ...mlp, output: "binary" as const };
    expect(predict(binary, new Float32Array([2, 0.5]))).toBe(sigmoid(4.5));
  });

  it("gives the same numbers in a batch as row by row", () => {
    const matrix = Float32Array.from([5, 6, -1, 3, 0.25, 7.5]);
    for (const model of [ridge, mlp]) {
      const batch = predictRows(model, matrix, 3);
      for (let row = 0; row < 3; row++) expect(batch[row]).toBe(predict(model, matrix, row));
    }
  });

  it("rejects feature arrays that are too short", () => {
    expect(() => predict(ridge, new Float32Array([1]))).toThrow(InputError);
    expect(() => predictRows(ridge, new Float32Array(3), 2)).toThrow(InputError);
  });
});

describe("activations", () => {
  it("uses the tanh form of GELU and matching derivatives", () => {
    // GELU(1) with the tanh approximation = 0.5·(1 + tanh(√(2/π)·1.044715)) ≈ 0.8411920.
    expect(activate("gelu", 1)).toBeCloseTo(0.841192, 6);
    expect(activate("relu", -2)).toBe(0);
    for (const value of [-2, -0.3, 0.4, 1.7]) {
      const numeric = (activate("gelu", value + 1e-6) - activate("gelu", value - 1e-6)) / 2e-6;
      expect(activationDerivative("gelu", value)).toBeCloseTo(numeric, 7);
    }
    expect(activationDerivative("relu", 0.1)).toBe(1);
  });

  it("computes sigmoid without overflow", () => {
    expect(sigmoid(0)).toBe(0.5);
    expect(sigmoid(-1000)).toBe(0);
    expect(sigmoid(1000)).toBe(1);
  });
});

describe("parseProbeModel", () => {
  it("round-trips through JSON", () => {
    const reloaded = parseProbeModel(JSON.stringify(mlp));
    expect(reloaded).toEqual(mlp);
    expect(predict(reloaded, new Float32Array([2, 0.5]))).toBe(4.5);
  });

  it("rejects inconsistent dimensions with the offending field", () => {
    expect(() => parseProbeModel({ ...ridge, weights: [1, 2, 3] })).toThrow(
      /weights has 3 values, expected 2/,
    );
    expect(() => parseProbeModel({ ...ridge, std: [1] })).toThrow(/std/);
    expect(() => parseProbeModel({ ...mlp, hiddenWeights: [1, 2, 3] })).toThrow(/hiddenWeights/);
    expect(() => parseProbeModel({ ...mlp, outputWeights: [1] })).toThrow(/outputWeights/);
  });

  it("rejects bad values, unknown kinds and broken JSON, naming the file", () => {
    expect(() => parseProbeModel({ ...ridge, std: [0, 1] })).toThrow(/std/);
    expect(() => parseProbeModel({ ...ridge, kind: "forest" })).toThrow(InputError);
    expect(() => parseProbeModel({ ...ridge, format: 2 })).toThrow(InputError);
    expect(() => parseProbeModel("{nope", "head.json")).toThrow(/^head\.json: probe model is not valid JSON/);
  });
});
