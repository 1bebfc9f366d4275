import { describe, expect, it } from "vitest";
import { UsageError } from "../errors/index.js";
import { allocateBatch } from "../routing/batch-allocation.js";
import { createRandom, type Random } from "../stats/random.js";
import {
  apgr,
  auc,
  cpt,
  DEFAULT_BUDGET_GRID,
  pgr,
  type QualityBudgetCurve,
  qualityBudgetCurve,
} from "./curves.js";
import { gainsOf, hybridQuality, type SegmentOutcomes } from "./measures.js";

function curveOf(xs: number[], qualities: number[], small: number, large: number): QualityBudgetCurve {
  return {
    points: xs.map((x, index) => ({ budget: x, routedFraction: x, quality: qualities[index]! })),
    qualitySmallOnly: small,
    qualityLargeOnly: large,
  };
}

describe("quality–budget curve", () => {
  // Gains 4, 2, 1, 1 on a zero small baseline.
  const outcomes: SegmentOutcomes = {
    ids: ["a", "b", "c", "d"],
    qualitySmall: [0, 0, 0, 0],
    qualityLarge: [4, 2, 1, 1],
  };
  const grid = [0, 0.25, 0.5, 0.75, 1];

  it("reads hybrid quality at every budget", () => {
    const curve = qualityBudgetCurve(gainsOf(outcomes), outcomes, grid);
    expect(curve.points.map((point) => point.quality)).toEqual([0, 1, 1.5, 1.75, 2]);
    expect(curve.points.map((point) => point.routedFraction)).toEqual(grid);
    expect(curve.qualitySmallOnly).toBe(0);
    expect(curve.qualityLargeOnly).toBe(2);
  });

  it("has the default grid 0, 0.05, …, 1", () => {
    expect(DEFAULT_BUDGET_GRID).toHaveLength(21);
    expect(DEFAULT_BUDGET_GRID[6]).toBe(0.3);
    expect(DEFAULT_BUDGET_GRID[20]).toBe(1);
  });

  it("gives the AUC, APGR and CPT computed by hand", () => {
    const curve = qualityBudgetCurve(gainsOf(outcomes), outcomes, grid);
    // Trapezoid, h = 0.25: 0.25 × (0/2 + 1 + 1.5 + 1.75 + 2/2) = 1.3125.
    expect(auc(curve)).toBeCloseTo(1.3125, 12);
    expect(apgr(curve)).toBeCloseTo(0.65625, 12);
    expect(cpt(curve, 0)).toBe(0);
    expect(cpt(curve, 0.5)).toBeCloseTo(0.25, 12);
    // PGR 0.5 at 0.25 and 0.75 at 0.5: 0.6 is reached 0.4 of the way.
    expect(cpt(curve, 0.6)).toBeCloseTo(0.35, 12);
    expect(cpt(curve, 0.8)).toBeCloseTo(0.6, 12);
    expect(cpt(curve, 1)).toBeCloseTo(1, 12);
    expect(cpt(curve, 1.01)).toBeNull();
  });

  it("matches batch allocation point by point", () => {
    const random = createRandom(11);
    const data = randomOutcomes(random, 37);
    const scores = data.ids.map(() => Math.round(random.nextFloat() * 4));
    const curve = qualityBudgetCurve(scores, data);
    for (const point of curve.points) {
      expect(point.quality).toBeCloseTo(
        hybridQuality(allocateBatch(scores, data.ids, point.budget), data),
        10,
      );
    }
  });
});

describe("PGR, APGR and CPT on known curves", () => {
  it("computes PGR and leaves it undefined without a gap", () => {
    expect(pgr(15, 10, 20)).toBe(0.5);
    expect(pgr(25, 10, 20)).toBe(1.5);
    expect(pgr(1.5, 2, 1)).toBe(0.5);
    expect(pgr(3, 3, 3)).toBeNull();
  });

  it("gives 0.5 for the straight line a random router draws, whatever the baseline", () => {
    expect(apgr(curveOf([0, 0.5, 1], [10, 15, 20], 10, 20))).toBeCloseTo(0.5, 12);
    expect(apgr(curveOf([0, 0.25, 0.5, 0.75, 1], [70, 72.5, 75, 77.5, 80], 70, 80))).toBeCloseTo(0.5, 12);
  });

  it("follows RouteLLM's (AUC − AUC_small)/(AUC_large − AUC_small) over the covered range", () => {
    // x from 0.2 to 0.6; AUC = 0.2 × (11 + 13)/2 + 0.2 × (13 + 19)/2 = 5.6; small line 10 × 0.4, large 20 × 0.4.
    const curve = curveOf([0.2, 0.4, 0.6], [11, 13, 19], 10, 20);
    expect(auc(curve)).toBeCloseTo(5.6, 12);
    expect(apgr(curve)).toBeCloseTo((5.6 - 4) / (8 - 4), 12);
  });

  it("weighs end points half, unlike a plain mean of the grid PGRs", () => {
    const curve = curveOf([0, 0.5, 1], [0, 1, 1], 0, 1);
    expect(apgr(curve)).toBeCloseTo(0.75, 12);
  });

  it("finds the first crossing on a non-monotone curve", () => {
    const curve = curveOf([0, 0.25, 0.5, 0.75], [0, 0.6, 0.4, 1], 0, 1);
    expect(cpt(curve, 0.5)).toBeCloseTo(0.25 * (0.5 / 0.6), 12);
    expect(cpt(curve, 0.8)).toBeCloseTo(0.5 + 0.25 * (0.4 / 0.6), 12);
  });

  it("returns null without a gap and rejects a curve with no width", () => {
    const flat = curveOf([0, 1], [5, 5], 5, 5);
    expect(apgr(flat)).toBeNull();
    expect(cpt(flat, 0.5)).toBeNull();
    expect(() => apgr(curveOf([0.3], [1], 0, 2))).toThrow(UsageError);
  });
});

function randomOutcomes(random: Random, count: number): SegmentOutcomes {
  const qualitySmall = Array.from({ length: count }, () => 40 + 30 * random.nextFloat());
  // Gains mix improvements and regressions, with some exact ties.
  const qualityLarge = qualitySmall.map((small) => small + Math.round((random.nextFloat() - 0.4) * 20));
  return { ids: qualitySmall.map((_, index) => `seg-${index}`), qualitySmall, qualityLarge };
}

describe("oracle dominance", () => {
  for (const seed of [1, 2, 3, 4, 5]) {
    it(`oracle gain beats every policy at every budget (seed ${seed})`, () => {
      const random = createRandom(seed);
      const data = randomOutcomes(random, 200);
      const gains = gainsOf(data);
      const policies: Record<string, number[]> = {
        random: gains.map(() => random.nextFloat()),
        noisyOracle: gains.map((gain) => gain + 10 * (random.nextFloat() - 0.5)),
        antiOracle: gains.map((gain) => -gain),
        constant: gains.map(() => 1),
        withNaN: gains.map((gain) => (random.nextFloat() < 0.3 ? Number.NaN : gain)),
      };
      const oracle = qualityBudgetCurve(gains, data);
      for (const [name, scores] of Object.entries(policies)) {
        const curve = qualityBudgetCurve(scores, data);
        curve.points.forEach((point, index) => {
          expect(oracle.points[index]!.quality, `${name} at ${point.budget}`).toBeGreaterThanOrEqual(
            point.quality - 1e-9,
          );
        });
        expect(apgr(oracle)!).toBeGreaterThanOrEqual(apgr(curve)! - 1e-12);
      }
      // The anti-oracle is strictly worse somewhere in the middle.
      const anti = qualityBudgetCurve(policies.antiOracle!, data);
      expect(anti.points[10]!.quality).toBeLessThan(oracle.points[10]!.quality);
    });
  }
});
