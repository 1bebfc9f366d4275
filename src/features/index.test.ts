import type { BatchItem, Token } from "node-llama-cpp";
import { describe, expect, it } from "vitest";
import { entropyOfLogits, entropyOfProbabilities } from "./index.js";
import {
  featureEvaluationPriority,
  promptAloneStrategy,
  promptEvaluationPriority,
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

describe("promptAloneStrategy", () => {
  const prompt = (length: number, feature = false): BatchItem => ({
    tokens: Array.from({ length }, (_, index) => index as Token),
    logits: [],
    evaluationPriority: feature ? featureEvaluationPriority : promptEvaluationPriority,
  });
  // A decode step: one token at node-llama-cpp's default priority.
  const step = (): BatchItem => ({ tokens: [7 as Token], logits: [], evaluationPriority: 5 });
  const summary = (result: ReturnType<ReturnType<typeof promptAloneStrategy>>) =>
    result.map((entry) => [entry.item, entry.processAmount]);

  it("gives a prompt a batch of its own, feature-reading prompts first", () => {
    const strategy = promptAloneStrategy();
    const plain = prompt(5);
    const feature = prompt(3, true);
    expect(summary(strategy({ items: [plain, feature], size: 100 }))).toEqual([[feature, 3]]);
    expect(summary(promptAloneStrategy()({ items: [step(), plain, step()], size: 100 }))).toEqual([
      [plain, 5],
    ]);
  });
  it("cuts a long prompt at multiples of the batch size from its start, as alone", () => {
    const long = prompt(10);
    expect(summary(promptAloneStrategy()({ items: [long], size: 8 }))).toEqual([[long, 8]]);
  });
  it("decodes one step per batch, the oldest first", () => {
    const steps = [step(), step(), step()];
    expect(summary(promptAloneStrategy()({ items: steps, size: 100 }))).toEqual([[steps[0], 1]]);
    expect(promptAloneStrategy()({ items: [], size: 100 })).toEqual([]);
  });
  it("alternates prompt and step batches while both wait, so generation is not starved", () => {
    const strategy = promptAloneStrategy();
    const first = prompt(4);
    const second = prompt(6);
    const generating = step();
    const items = [generating, first, second];
    expect(summary(strategy({ items, size: 100 }))).toEqual([[first, 4]]);
    expect(summary(strategy({ items, size: 100 }))).toEqual([[generating, 1]]);
    expect(summary(strategy({ items: [generating, second], size: 100 }))).toEqual([[second, 6]]);
    // With no step waiting, prompts follow each other.
    expect(summary(strategy({ items: [second], size: 100 }))).toEqual([[second, 6]]);
  });
});
