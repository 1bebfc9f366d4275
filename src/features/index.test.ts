import type { BatchItem, Token } from "node-llama-cpp";
import { describe, expect, it } from "vitest";
import { entropyOfLogits, entropyOfProbabilities } from "./index.js";
import {
  featureEvaluationPriority,
  featureLastStrategy,
  plainEvaluationPriority,
} from "./llama-internals.js";

describe("entropy", () => {
  it("is log(n) for a uniform distribution and 0 for a point mass", () => {
    expect(entropyOfProbabilities([0.25, 0.25, 0.25, 0.25])).toBeCloseTo(Math.log(4), 12);
    expect(entropyOfProbabilities([0, 1, 0])).toBe(0);
    expect(entropyOfLogits([3, 3, 3])).toBeCloseTo(Math.log(3), 12);
  });
  it("matches a hand computation for softmax([0, ln 3]) = [1/4, 3/4]", () => {
    const expected = -(0.25 * Math.log(0.25) + 0.75 * Math.log(0.75));
    expect(entropyOfLogits([0, Math.log(3)])).toBeCloseTo(expected, 12);
    expect(entropyOfProbabilities([0.25, 0.75])).toBeCloseTo(expected, 12);
    expect(entropyOfProbabilities([0.5, 1.5])).toBeCloseTo(expected, 12);
  });
  it("is stable for large logits", () => {
    expect(entropyOfLogits([1000, 1000])).toBeCloseTo(Math.log(2), 12);
  });
});

describe("featureLastStrategy", () => {
  const item = (length: number, feature: boolean): BatchItem => ({
    tokens: Array.from({ length }, (_, index) => index as Token),
    logits: [],
    evaluationPriority: feature ? featureEvaluationPriority : plainEvaluationPriority,
  });
  it("serves the first feature item first but places it last; other feature items wait", () => {
    const featureA = item(5, true);
    const plain = item(1, false);
    const featureB = item(3, true);
    const plainLong = item(4, false);
    const result = featureLastStrategy({ items: [plain, featureA, featureB, plainLong], size: 100 });
    expect(result.map((entry) => [entry.item, entry.processAmount])).toEqual([
      [plain, 1],
      [plainLong, 4],
      [featureA, 5],
    ]);
  });
  it("gives other items only the slots the feature item leaves", () => {
    const plain = item(6, false);
    const feature = item(5, true);
    const result = featureLastStrategy({ items: [plain, feature], size: 8 });
    expect(result.map((entry) => [entry.item, entry.processAmount])).toEqual([
      [plain, 3],
      [feature, 5],
    ]);
  });
  it("clips a long feature prompt to the batch size", () => {
    const feature = item(10, true);
    const result = featureLastStrategy({ items: [item(6, false), feature], size: 8 });
    expect(result.map((entry) => [entry.item, entry.processAmount])).toEqual([[feature, 8]]);
  });
  it("fills a batch without feature items first come first served and clips the last item", () => {
    const first = item(6, false);
    const second = item(5, false);
    const result = featureLastStrategy({ items: [first, second, item(3, false)], size: 8 });
    expect(result.map((entry) => [entry.item, entry.processAmount])).toEqual([
      [first, 6],
      [second, 2],
    ]);
  });
});
