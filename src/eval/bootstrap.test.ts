import { describe, expect, it } from "vitest";
import { InputError, UsageError } from "../errors/index.js";
import { allocateBatch } from "../routing/batch-allocation.js";
import { quantile, sortScores } from "../stats/quantiles.js";
import { createRandom, normal, type Random, randomInt } from "../stats/random.js";
import { pairedBootstrapMeanDelta } from "./bootstrap.js";
import { gainsOf, meanDelta, type SegmentOutcomes } from "./measures.js";

interface Population {
  outcomes: SegmentOutcomes;
  scoresA: number[];
  scoresB: number[];
}

/** Gains ~ N(0, 1); policy A sees the gain through little noise, B through much. */
function population(random: Random, count: number, prefix: string): Population {
  const gains = Array.from({ length: count }, () => normal(random));
  return {
    outcomes: {
      ids: gains.map((_, index) => `${prefix}${index}`),
      qualitySmall: gains.map(() => 0),
      qualityLarge: gains,
    },
    scoresA: gains.map((gain) => gain + 0.5 * normal(random)),
    scoresB: gains.map((gain) => gain + 2 * normal(random)),
  };
}

function meanDeltaDifference(data: Population, budget: number): number {
  const a = meanDelta(allocateBatch(data.scoresA, data.outcomes.ids, budget), data.outcomes)!;
  const b = meanDelta(allocateBatch(data.scoresB, data.outcomes.ids, budget), data.outcomes)!;
  return a - b;
}

/** The bootstrap as the definition states it: resample, re-run batch allocation, difference. */
function naiveBootstrap(data: Population, budget: number, resamples: number, seed: number) {
  const random = createRandom(seed);
  const count = data.outcomes.ids.length;
  const differences: number[] = [];
  for (let resample = 0; resample < resamples; resample++) {
    const picks = Array.from({ length: count }, () => randomInt(random, count));
    const pick = <T>(values: readonly T[]) => picks.map((index) => values[index]!);
    differences.push(
      meanDeltaDifference(
        {
          outcomes: {
            ids: pick(data.outcomes.ids),
            qualitySmall: pick(data.outcomes.qualitySmall),
            qualityLarge: pick(data.outcomes.qualityLarge),
          },
          scoresA: pick(data.scoresA),
          scoresB: pick(data.scoresB),
        },
        budget,
      ),
    );
  }
  const sorted = sortScores(differences);
  return { lo: quantile(sorted, 0.025), hi: quantile(sorted, 0.975) };
}

let populationTruth: number | undefined;
/** Population MeanDelta@0.3 difference, computed once: it is the slow part of these tests. */
function truthAtThirtyPercent(): number {
  populationTruth ??= meanDeltaDifference(population(createRandom(100), 100_000, "p"), 0.3);
  return populationTruth;
}

describe("pairedBootstrapMeanDelta", () => {
  it("equals re-running batch allocation on every resample, ties included", () => {
    const random = createRandom(3);
    const data = population(random, 60, "s");
    // Coarse scores create ties that the id tie-break must settle the same way in both.
    data.scoresA = data.scoresA.map((score) => Math.round(score));
    data.scoresB = data.scoresB.map((score, index) => (index % 7 === 0 ? Number.NaN : Math.round(score)));
    const interval = pairedBootstrapMeanDelta({ ...data, budget: 0.3, resamples: 200, seed: 9 });
    const expected = naiveBootstrap(data, 0.3, 200, 9);
    expect(interval.diff).toBeCloseTo(meanDeltaDifference(data, 0.3), 12);
    expect(interval.lo).toBeCloseTo(expected.lo, 10);
    expect(interval.hi).toBeCloseTo(expected.hi, 10);
  });

  it("is deterministic for a seed and changes with it", () => {
    const data = population(createRandom(4), 300, "s");
    const first = pairedBootstrapMeanDelta({ ...data, budget: 0.2, seed: 5 });
    expect(pairedBootstrapMeanDelta({ ...data, budget: 0.2, seed: 5 })).toEqual(first);
    const other = pairedBootstrapMeanDelta({ ...data, budget: 0.2, seed: 6 });
    expect(other.diff).toBe(first.diff);
    expect(other.lo).not.toBe(first.lo);
  });

  it("covers the population difference on a constructed case", () => {
    const budget = 0.3;
    // Policy A is better by construction; its population advantage is the target.
    const truth = truthAtThirtyPercent();
    expect(truth).toBeGreaterThan(0.1);
    const sample = population(createRandom(101), 1000, "s");
    const interval = pairedBootstrapMeanDelta({ ...sample, budget, seed: 1 });
    expect(interval.lo).toBeLessThan(interval.hi);
    expect(interval.lo).toBeLessThanOrEqual(interval.diff);
    expect(interval.hi).toBeGreaterThanOrEqual(interval.diff);
    expect(interval.lo).toBeLessThanOrEqual(truth);
    expect(interval.hi).toBeGreaterThanOrEqual(truth);
    expect(interval.lo).toBeGreaterThan(0);
  });

  it("covers the population difference about 95 % of the time", () => {
    const budget = 0.3;
    const truth = truthAtThirtyPercent();
    let covered = 0;
    const trials = 40;
    for (let trial = 0; trial < trials; trial++) {
      const sample = population(createRandom(1000 + trial), 400, "s");
      const interval = pairedBootstrapMeanDelta({ ...sample, budget, resamples: 400, seed: trial });
      if (interval.lo <= truth && truth <= interval.hi) covered++;
    }
    expect(covered / trials).toBeGreaterThanOrEqual(0.85);
  });

  it("gives a zero-width interval for identical policies", () => {
    const data = population(createRandom(8), 100, "s");
    expect(pairedBootstrapMeanDelta({ ...data, scoresB: data.scoresA, budget: 0.5, resamples: 50 })).toEqual({
      diff: 0,
      lo: 0,
      hi: 0,
    });
  });

  it("refuses budgets that route nothing and duplicate ids", () => {
    const data = population(createRandom(8), 10, "s");
    expect(() => pairedBootstrapMeanDelta({ ...data, budget: 0.05 })).toThrow(UsageError);
    const duplicated = { ...data.outcomes, ids: data.outcomes.ids.map(() => "same") };
    expect(() => pairedBootstrapMeanDelta({ ...data, outcomes: duplicated, budget: 0.5 })).toThrow(
      InputError,
    );
  });

  it("uses the true gains of the outcomes", () => {
    const data = population(createRandom(12), 50, "s");
    const oracle = gainsOf(data.outcomes);
    const interval = pairedBootstrapMeanDelta({ ...data, scoresA: oracle, budget: 0.2, resamples: 100 });
    // The oracle's MeanDelta is the largest possible, so it never loses on any resample.
    expect(interval.lo).toBeGreaterThanOrEqual(0);
  });
});
