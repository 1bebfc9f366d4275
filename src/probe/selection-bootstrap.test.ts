import { describe, expect, it } from "vitest";
import { createRandom, normal } from "../stats/random.js";
import { topMeasures } from "./routing-measures.js";
import { bootstrapSelection, weightedBudgetScore } from "./selection-bootstrap.js";

const BUDGETS = [0.1, 0.2, 0.3, 0.5];

function mean(values: readonly number[]): number {
  return values.reduce((sum, value) => sum + value, 0) / values.length;
}

/** Mean MeanDelta over the budgets by the plain measure, on rows listed with repeats. */
function expandedScore(predictions: number[], gains: number[]): number {
  const known = topMeasures(predictions, gains, BUDGETS, 0)
    .map((measure) => measure.meanDelta)
    .filter((value): value is number => value !== null);
  return known.length === 0 ? Number.NaN : mean(known);
}

function randomCase(seed: number, rows: number) {
  const random = createRandom(seed);
  // Coarse values, so ties in predictions and gains are common.
  const predictions = Array.from({ length: rows }, () => Math.round(3 * normal(random)));
  const gains = Array.from({ length: rows }, () => Math.round(5 * normal(random)));
  const weight = Int32Array.from({ length: rows }, () => Math.floor(random.nextFloat() * 4));
  return { predictions, gains, weight };
}

describe("weightedBudgetScore", () => {
  it("equals the plain measure on the rows expanded by their weights", () => {
    for (let seed = 1; seed <= 200; seed++) {
      const rows = 1 + (seed % 37);
      const { predictions, gains, weight } = randomCase(seed, rows);
      const order = Int32Array.from({ length: rows }, (_, row) => row).sort((a, b) =>
        predictions[a] === predictions[b] ? a - b : predictions[b]! - predictions[a]!,
      );
      const expandedPredictions: number[] = [];
      const expandedGains: number[] = [];
      for (let row = 0; row < rows; row++) {
        for (let copy = 0; copy < weight[row]!; copy++) {
          expandedPredictions.push(predictions[row]!);
          expandedGains.push(gains[row]!);
        }
      }
      const expected = expandedScore(expandedPredictions, expandedGains);
      const actual = weightedBudgetScore(order, weight, gains, BUDGETS);
      if (Number.isNaN(expected)) expect(actual).toBeNaN();
      else expect(actual).toBeCloseTo(expected, 10);
    }
  });
});

/** Rows in `folds` folds; candidates are columns of predictions; the rule picks the best score. */
function selectionCase(seed: number, rows: number, candidates: number, signal: number | null) {
  const random = createRandom(seed);
  const gains = Float64Array.from({ length: rows }, () => normal(random));
  const outer = Int32Array.from({ length: rows }, (_, row) => row % 5);
  const columns = Array.from({ length: candidates }, (_, index) => ({
    outOfFold: Float64Array.from(gains, (gain) =>
      index === signal ? gain + 0.5 * normal(random) : normal(random),
    ),
  }));
  const foldScore = (column: { outOfFold: Float64Array }) =>
    mean(
      [0, 1, 2, 3, 4].map((fold) => {
        const rowsOfFold = [...gains.keys()].filter((row) => outer[row] === fold);
        return expandedScore(
          rowsOfFold.map((row) => column.outOfFold[row]!),
          rowsOfFold.map((row) => gains[row]!),
        );
      }),
    );
  const scores = columns.map(foldScore);
  const best = (values: readonly number[]) => values.indexOf(Math.max(...values.filter(Number.isFinite)));
  const estimate = bootstrapSelection({
    candidates: columns,
    gains,
    outer,
    outerFolds: 5,
    budgets: BUDGETS,
    choose: best,
    defaultIndex: 0,
    resamples: 100,
    seed,
  });
  return { scores, chosenScore: scores[best(scores)]!, estimate };
}

describe("bootstrapSelection", () => {
  it("scores the choosing among noise near zero where the winner's own score is far above it", () => {
    const naive: number[] = [];
    const corrected: number[] = [];
    const versusDefault: number[] = [];
    for (let seed = 1; seed <= 8; seed++) {
      const { chosenScore, estimate } = selectionCase(seed, 300, 20, null);
      naive.push(chosenScore);
      corrected.push(estimate.score);
      versusDefault.push(estimate.versus_default!.diff);
      // Nothing beats the default on noise: its interval holds zero.
      expect(estimate.versus_default!.lo).toBeLessThan(0);
      expect(estimate.versus_default!.hi).toBeGreaterThan(0);
    }
    // The truth is 0 (gains are N(0, 1) and the predictions independent of them).
    // Measured: the winners' own scores 0.16 on average, the corrected estimate −0.02.
    expect(mean(naive)).toBeGreaterThan(0.12);
    expect(Math.abs(mean(corrected))).toBeLessThan(0.05);
    expect(Math.abs(mean(versusDefault))).toBeLessThan(0.1);
  });

  it("keeps a real winner's score and names it", () => {
    const { scores, estimate } = selectionCase(11, 400, 10, 3);
    expect(estimate.chosen_share[3]).toBe(1);
    // The selection is worth what the winner is worth, give or take resampling.
    expect(Math.abs(estimate.score - scores[3]!)).toBeLessThan(0.1 * scores[3]!);
    expect(estimate.lo).toBeLessThan(estimate.score);
    expect(estimate.hi).toBeGreaterThan(estimate.score);
    expect(estimate.versus_default!.lo).toBeGreaterThan(0);
  });

  it("is deterministic for a seed and refuses nonsense", () => {
    const first = selectionCase(5, 120, 4, null).estimate;
    const second = selectionCase(5, 120, 4, null).estimate;
    expect(second).toEqual(first);
    expect(() =>
      bootstrapSelection({
        candidates: [],
        gains: [1],
        outer: Int32Array.of(0),
        outerFolds: 1,
        budgets: BUDGETS,
        choose: () => 0,
        defaultIndex: null,
        resamples: 10,
        seed: 1,
      }),
    ).toThrow(/at least one candidate/);
  });
});
