import { describe, expect, it } from "vitest";
import {
  chooseFromTradeoff,
  chooseGuardKind,
  chooseGuardLambda,
  chooseQeGuard,
  chosenPoint,
  type GuardReport,
  guardLambdaGrid,
  type QeSignal,
  restackCutOf,
  riskAdjustedScore,
} from "./guard-choice.js";

/**
 * Ten segments, one fold. A: high predicted gain but a likely severe loss; B–E: good; the rest
 * ordinary. Budgets 20 % (2 routed) and 40 % (4 routed), δ = 10.
 *   λ = 0: A B | C D → MeanDelta 9 and 63/4 = 15.75, severe 1/2 and 1/4.
 *   λ = 3: B (9) A (7.3) | D (7) C (6.5) → the same sets: 9 and 15.75.
 *   λ = 5: B (9) D (7) | E (6) A (5.5) → 27.5 and (30 + 25 + 1 − 12) / 4 = 11: loses 30 % at 40 %.
 *   λ = 20: B D | E, then the ordinary ones → 27.5 and 56/4 = 14, severe 0.
 */
const gainScores = [10, 9, 8, 7, 6, 1, 1, 0.5, 0.5, 0];
const riskScores = [0.9, 0, 0.5, 0, 0, 0, 0, 0, 0, 0];
const gains = [-12, 30, 20, 25, 1, 0, 0, 0, 0, 0];
const base = {
  gains,
  gainScores,
  riskScores,
  folds: new Int32Array(10),
  budgets: [0.2, 0.4],
  severeDelta: 10,
  lambdas: [0, 3, 5, 20],
};

describe("chooseGuardLambda", () => {
  it("measures the trade-off over the grid, fold-averaged", () => {
    const report = chooseGuardLambda({ ...base, tolerance: 0.05 });
    expect(report.grid.map((point) => point.mean_delta)).toEqual([
      [9, 15.75],
      [9, 15.75],
      [27.5, 11],
      [27.5, 14],
    ]);
    expect(report.grid.map((point) => point.severe_loss)).toEqual([
      [0.5, 0.25],
      [0.5, 0.25],
      [0, 0.25],
      [0, 0],
    ]);
  });

  it("keeps λ = 0 when the affordable λ cut no severe loss", () => {
    // At 5 % only λ = 3 is affordable (λ = 5 loses 30 % at 40 %), and it routes the same sets.
    expect(chooseGuardLambda({ ...base, tolerance: 0.05 }).lambda).toBe(0);
    expect(chooseGuardLambda({ ...base, tolerance: 0 }).lambda).toBe(0);
  });

  it("takes the affordable λ with the fewest severe losses", () => {
    // At 35 %: 11 and 14 ≥ 0.65 · 15.75 = 10.24, so λ = 5 and 20 are affordable; 20 routes none.
    const report = chooseGuardLambda({ ...base, tolerance: 0.35 });
    expect(report.lambda).toBe(20);
    expect(report.score_quantiles).toHaveLength(101);
    expect(report.score_quantiles[100]).toBe(
      Math.max(...gainScores.map((g, row) => riskAdjustedScore(g, riskScores[row]!, 20))),
    );
  });

  it("refuses a cut within fold noise", () => {
    // A second fold where the risk head flags a good candidate: at λ = 20 its severe-loss rate rises
    // from 1/8 to 1/4. Cuts over the folds: 0.375 and −0.125 — mean 0.125, standard error 0.25.
    const second = {
      gains: [30, 20, 10, -15, -20, 0, 0, 0, 0, 0],
      gainScores: [10, 9, 8, 7, 6, 1, 1, 0.5, 0.5, 0],
      riskScores: [0.9, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    };
    const twoFolds = {
      ...base,
      gains: [...gains, ...second.gains],
      gainScores: [...gainScores, ...second.gainScores],
      riskScores: [...riskScores, ...second.riskScores],
      folds: Int32Array.from({ length: 20 }, (_, row) => (row < 10 ? 0 : 1)),
      tolerance: 0.9,
    };
    const report = chooseGuardLambda(twoFolds);
    expect(report.grid[3]!.severe_loss).toEqual([0, 0.25]);
    expect(report.lambda).toBe(0);
    expect(report.best_cut!.lambda).toBe(20);
    expect(report.best_cut!.diff).toBeCloseTo(0.125, 12);
    expect(report.best_cut!.se).toBeCloseTo(0.25, 12);
  });

  it("refuses a cut between one and two standard errors: the best of a grid is a noisy maximum", () => {
    const point = (lambda: number, severe: number) => ({ lambda, mean_delta: [10], severe_loss: [severe] });
    const base = { point: point(0, 0.1), foldSevere: Float64Array.from([0.1, 0.1, 0.1, 0.1, 0.1]) };
    // Cuts 0.03, −0.01, 0.02, 0, 0.01: mean 0.01, standard error 0.00707 — 1.41 standard errors.
    const noisy = { point: point(1, 0.09), foldSevere: Float64Array.from([0.07, 0.11, 0.08, 0.1, 0.09]) };
    const noisyChoice = chooseFromTradeoff([base, noisy], 0.05);
    expect(noisyChoice.best!.diff).toBeCloseTo(0.01, 12);
    expect(noisyChoice.best!.se).toBeCloseTo(Math.sqrt(0.001 / 4 / 5), 12);
    expect(noisyChoice.index).toBe(0);
    // Cuts 0.02, 0.01, 0.03, 0, 0.02: mean 0.016, standard error 0.0051 — 3.1 standard errors.
    const clear = { point: point(1, 0.084), foldSevere: Float64Array.from([0.08, 0.09, 0.07, 0.1, 0.08]) };
    expect(chooseFromTradeoff([base, clear], 0.05).index).toBe(1);
  });

  it("refuses a grid that does not start at 0 and a tolerance outside [0, 1)", () => {
    expect(() => chooseGuardLambda({ ...base, lambdas: [1, 2], tolerance: 0.05 })).toThrow(/start at 0/);
    expect(() => chooseGuardLambda({ ...base, tolerance: 1 })).toThrow(/tolerance/);
  });
});

describe("guardLambdaGrid", () => {
  it("scales the grid by sd(gain) / sd(risk), and is [0] without risk spread", () => {
    const grid = guardLambdaGrid([0, 2, 4, 6], [0, 0.5, 0, 0.5]);
    // sd(gain) = √5, sd(risk) = 0.25: unit 4√5; multiples 0, 1/8 … 32.
    expect(grid[0]).toBe(0);
    expect(grid).toHaveLength(18);
    expect(grid[7]).toBeCloseTo(4 * Math.sqrt(5), 12);
    expect(grid[17]).toBeCloseTo(32 * 4 * Math.sqrt(5), 9);
    expect(guardLambdaGrid([1, 2, 3], [0.2, 0.2, 0.2])).toEqual([0]);
  });
});

describe("chooseQeGuard", () => {
  const report = (signal: QeSignal, lambda: number, severe: number[], delta = [10, 8]): GuardReport => ({
    method: "qe-adjusted",
    signal,
    rule: "test",
    lambda,
    tolerance: 0.05,
    severe_delta: 10,
    budgets: [0.1, 0.3],
    grid: [
      { lambda: 0, mean_delta: [10, 8], severe_loss: [0.05, 0.05] },
      { lambda, mean_delta: delta, severe_loss: severe },
    ],
    score_quantiles: [],
  });
  const unguarded = [10, 8];

  it("keeps the candidate with the lower severe-loss rate at its chosen λ, mean over budgets", () => {
    const confidence = report("small-confidence", 1, [0.04, 0.04]);
    const likelihood = report("large-likelihood", 2, [0.01, 0.05]);
    expect(chooseQeGuard([confidence, likelihood], unguarded, 0.05)).toBe(likelihood);
    expect(
      chooseQeGuard([report("small-confidence", 1, [0.02, 0.02]), likelihood], unguarded, 0.05)?.signal,
    ).toBe("small-confidence");
  });

  it("passes over a candidate that costs more than the tolerance of the unguarded MeanDelta at some budget", () => {
    const confidence = report("small-confidence", 1, [0.04, 0.04]);
    // 7.59 < 8 − 0.05 · 8 = 7.6 at the second budget: too dear, however few its severe losses.
    const dear = report("large-likelihood", 2, [0, 0], [11, 7.59]);
    expect(chooseQeGuard([confidence, dear], unguarded, 0.05)).toBe(confidence);
    const justAffordable = report("large-likelihood", 2, [0, 0], [11, 7.6]);
    expect(chooseQeGuard([confidence, justAffordable], unguarded, 0.05)).toBe(justAffordable);
    expect(chooseQeGuard([dear], unguarded, 0.05)).toBeNull();
  });

  it("keeps the first (the cheaper) on a tie, and nothing from nothing", () => {
    const confidence = report("small-confidence", 0, [0.05, 0.05]);
    const likelihood = report("large-likelihood", 0, [0.05, 0.05]);
    expect(chooseQeGuard([confidence, likelihood], unguarded, 0.05)).toBe(confidence);
    expect(chooseQeGuard([], unguarded, 0.05)).toBeNull();
    expect(chosenPoint(likelihood)).toEqual(likelihood.grid[0]);
    expect(() => chosenPoint({ ...likelihood, lambda: 7 })).toThrow(/not on its grid/);
  });
});

describe("restackCutOf", () => {
  // Two folds of four rows, budget 0.5 (two routed per fold), severe below −10.
  const gains = [30, -20, 10, 5, 8, 6, -15, 2];
  const folds = Int32Array.from([0, 0, 0, 0, 1, 1, 1, 1]);
  const input = { gains, folds, budgets: [0.5], tolerance: 0.05, severeDelta: 10 };
  // Fold 0: the gain head routes rows 1 and 2 (MeanDelta −5, one severe loss in two), the
  // re-estimate rows 0 and 2 (20, none); fold 1: both route rows 4 and 5 (7, none).
  const unguarded = [1, 4, 3, 2, 4, 3, 2, 1];
  const restacked = [4, 1, 3, 2, 4, 3, 2, 1];

  it("measures the paired per-fold cut and keeps an affordable re-estimate with no more severe losses", () => {
    const cut = restackCutOf(unguarded, restacked, input);
    // Cuts 0.5 and 0: mean 0.25, standard error sd([0.5, 0]) / √2 = 0.25.
    expect(cut.diff).toBeCloseTo(0.25, 12);
    expect(cut.se).toBeCloseTo(0.25, 12);
    expect(cut.taken).toBe(true);
    expect(cut.unguarded).toEqual({ mean_delta: [1], severe_loss: [0.25] });
  });

  it("keeps one with more severe losses within fold noise, refuses one beyond it or one too dear", () => {
    // Swapped: cuts −0.5 and 0, mean −0.25 within two standard errors (0.5); affordable at a loose tolerance.
    expect(restackCutOf(restacked, unguarded, { ...input, tolerance: 0.99 })).toMatchObject({
      diff: -0.25,
      taken: true,
    });
    // ...but not at 5 %: MeanDelta 1 against 13.5.
    expect(restackCutOf(restacked, unguarded, input).taken).toBe(false);
    // One severe loss in two in both folds where the other routes none: cuts −0.5 and −0.5, no
    // spread, so beyond any noise, whatever the MeanDelta tolerance.
    const worse = [1, 4, 3, 2, 1, 2, 4, 3];
    expect(restackCutOf(restacked, worse, { ...input, tolerance: 2 })).toMatchObject({
      diff: -0.5,
      se: 0,
      taken: false,
    });
    // Rows 3 and 2 in fold 0 (7.5, none): more MeanDelta, no severe loss, kept even at tolerance 0.
    const cheap = [1, 0, 3, 4, 4, 3, 2, 1];
    expect(restackCutOf(unguarded, cheap, { ...input, tolerance: 0 })).toMatchObject({
      diff: 0.25,
      taken: true,
    });
  });
});

describe("which guard guarded ranks by", () => {
  const cuts = { lambda: 3 };
  const none = { lambda: 0 };
  it("prefers the in-model guard when it cuts, else a post-hoc guard that changes the ranking", () => {
    expect(chooseGuardKind("auto", cuts, cuts)).toBe("in-model");
    expect(chooseGuardKind("auto", none, cuts)).toBe("post-hoc");
    expect(chooseGuardKind("auto", undefined, cuts)).toBe("post-hoc");
    // A re-estimated gain changes the ranking at λ = 0 too.
    const restack = { model: { kind: "ridge" }, inputs: ["gain"] } as unknown as GuardReport["restack"];
    expect(chooseGuardKind("auto", none, { lambda: 0, restack })).toBe("post-hoc");
    // Neither changes anything: the in-model guard, λ = 0, ranks as RouteLMT and decodes nothing first.
    expect(chooseGuardKind("auto", none, none)).toBe("in-model");
    expect(chooseGuardKind("auto", none, undefined)).toBe("in-model");
  });

  it("takes the kind asked for, and refuses post-hoc without a post-hoc guard", () => {
    expect(chooseGuardKind("in-model", none, cuts)).toBe("in-model");
    expect(chooseGuardKind("post-hoc", cuts, none)).toBe("post-hoc");
    expect(() => chooseGuardKind("post-hoc", cuts, undefined)).toThrow(
      /--guard post-hoc needs a post-hoc guard/,
    );
  });
});
