import { describe, expect, it } from "vitest";
import { allocateBatch } from "../routing/batch-allocation.js";
import { createRandom, normal } from "../stats/random.js";
import { hybridQuality, measureRouting, type SegmentOutcomes } from "./measures.js";
import { runStreaming } from "./streaming.js";

function syntheticData(seed: number, count: number) {
  const random = createRandom(seed);
  const qualitySmall = Array.from({ length: count }, () => 50 + 10 * normal(random));
  const gains = qualitySmall.map(() => 3 + 8 * normal(random));
  const outcomes: SegmentOutcomes = {
    ids: qualitySmall.map((_, index) => `seg-${index}`),
    qualitySmall,
    qualityLarge: qualitySmall.map((small, index) => small + gains[index]!),
  };
  const scores = gains.map((gain) => gain + 6 * normal(random));
  const trainingScores = Array.from({ length: 2000 }, () => 3 + 10 * normal(random));
  return { outcomes, scores, trainingScores };
}

describe("runStreaming", () => {
  const data = syntheticData(1, 10_000);

  for (const budget of [0.1, 0.3, 0.5]) {
    it(`realizes about p = ${budget} and reports the batch measures of its mask`, () => {
      const result = runStreaming({
        scores: data.scores,
        outcomes: data.outcomes,
        controller: { budget, trainingScores: data.trainingScores },
        severeLossDelta: 10,
        seed: 3,
      });
      expect(Math.abs(result.realizedFraction - budget)).toBeLessThanOrEqual(0.02);
      const { routedMask, arrivalOrder, capBlocked, finalThreshold, ...measures } = result;
      expect(measures).toEqual(measureRouting(routedMask, data.outcomes, { budget, severeLossDelta: 10 }));
      expect([...arrivalOrder].sort((a, b) => a - b)).toEqual(arrivalOrder.map((_, index) => index));
      expect(capBlocked).toBeGreaterThanOrEqual(0);
      expect(Number.isFinite(finalThreshold)).toBe(true);
      // Online routing by the same score should come close to batch routing in quality.
      const batch = hybridQuality(allocateBatch(data.scores, data.outcomes.ids, budget), data.outcomes);
      expect(result.hybridQuality).toBeGreaterThan(batch - 0.3);
      expect(result.meanDelta!).toBeGreaterThan(3);
    });
  }

  it("is deterministic for a seed, and a different seed changes the order", () => {
    const run = (seed: number) =>
      runStreaming({
        scores: data.scores.slice(0, 2000),
        outcomes: {
          ids: data.outcomes.ids.slice(0, 2000),
          qualitySmall: data.outcomes.qualitySmall.slice(0, 2000),
          qualityLarge: data.outcomes.qualityLarge.slice(0, 2000),
        },
        controller: { budget: 0.3, trainingScores: data.trainingScores },
        severeLossDelta: 10,
        seed,
      });
    expect(run(4)).toEqual(run(4));
    expect(run(5).arrivalOrder).not.toEqual(run(4).arrivalOrder);
  });

  it("keeps the given order when asked", () => {
    const result = runStreaming({
      scores: [5, -5, 5, -5],
      outcomes: { ids: ["a", "b", "c", "d"], qualitySmall: [0, 0, 0, 0], qualityLarge: [2, 0, 1, 0] },
      controller: { budget: 0.5, initialThreshold: 0, window: 4 },
      severeLossDelta: 1,
      shuffle: false,
    });
    expect(result.arrivalOrder).toEqual([0, 1, 2, 3]);
    expect(result.routedMask).toEqual([true, false, true, false]);
    expect(result.hitRate).toBe(1);
  });
});
