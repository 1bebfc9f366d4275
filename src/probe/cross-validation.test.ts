import { describe, expect, it } from "vitest";
import { UsageError } from "../errors/index.js";
import {
  DEFAULT_LAMBDAS,
  foldCountOf,
  foldRows,
  kFoldAssignment,
  logLoss,
  logSpacedGrid,
  regressionScores,
  rocAuc,
  selectLowest,
  stratifiedKFoldAssignment,
} from "./cross-validation.js";

describe("fold assignment", () => {
  it("balances fold sizes, covers every row once and is seeded", () => {
    const assignment = kFoldAssignment(23, 5, 1);
    const sizes = [0, 1, 2, 3, 4].map((fold) => foldRows(assignment, fold, true).length);
    expect(sizes.sort()).toEqual([4, 4, 5, 5, 5]);
    expect(foldCountOf(assignment)).toBe(5);
    expect(foldCountOf(new Int32Array(0))).toBe(0);
    expect(foldRows(assignment, 2, false).length + foldRows(assignment, 2, true).length).toBe(23);
    expect(Array.from(kFoldAssignment(23, 5, 1))).toEqual(Array.from(assignment));
    expect(Array.from(kFoldAssignment(23, 5, 2))).not.toEqual(Array.from(assignment));
    expect(() => kFoldAssignment(3, 5, 0)).toThrow(UsageError);
    expect(() => kFoldAssignment(10, 1, 0)).toThrow(UsageError);
  });

  it("stratifies a rare class over the folds", () => {
    const labels = Array.from({ length: 100 }, (_, index) => (index % 20 === 0 ? 1 : 0)); // 5 positives
    const assignment = stratifiedKFoldAssignment(labels, 5, 3);
    for (let fold = 0; fold < 5; fold++) {
      const rows = foldRows(assignment, fold, true);
      expect(Array.from(rows).filter((row) => labels[row] === 1)).toHaveLength(1);
      expect(rows).toHaveLength(20);
    }
  });
});

describe("penalty grid and selection", () => {
  it("defaults to the nine powers of ten from 1e-3 to 1e5", () => {
    expect(DEFAULT_LAMBDAS).toHaveLength(9);
    for (const [index, lambda] of DEFAULT_LAMBDAS.entries())
      expect(lambda).toBeCloseTo(10 ** (index - 3), 12);
    expect(logSpacedGrid(0, 2, 5)[1]).toBeCloseTo(Math.sqrt(10), 12);
  });

  it("selects the lowest score and breaks ties towards the larger penalty", () => {
    expect(selectLowest([3, 1, 2], [1, 10, 100])).toBe(1);
    expect(selectLowest([3, 1, 1], [1, 10, 100])).toBe(2);
    expect(() => selectLowest([Number.NaN], [1])).toThrow(UsageError);
  });
});

describe("scores", () => {
  it("computes regression scores", () => {
    // Errors 0, 1, −1, 2 → MSE (0 + 1 + 1 + 4) / 4 = 1.5.
    const scores = regressionScores([1, 2, 3, 4], [1, 1, 4, 2]);
    expect(scores.mse).toBe(1.5);
    expect(Number.isFinite(scores.pearson)).toBe(true);
  });

  it("computes log-loss by hand, with and without class weights", () => {
    // −(ln 0.8 + ln 0.6) / 2 for labels [1, 0] and probabilities [0.8, 0.4].
    expect(logLoss([1, 0], [0.8, 0.4])).toBeCloseTo(-(Math.log(0.8) + Math.log(0.6)) / 2, 14);
    // Weights [1, 3]: (−ln 0.6 − 3 ln 0.8) / 4.
    expect(logLoss([1, 0], [0.8, 0.4], [1, 3])).toBeCloseTo(-(Math.log(0.6) + 3 * Math.log(0.8)) / 4, 14);
    expect(Number.isFinite(logLoss([1], [0]))).toBe(true);
  });

  it("computes ROC AUC with ties as one half", () => {
    // sklearn.metrics.roc_auc_score([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) = 0.75.
    expect(rocAuc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])).toBe(0.75);
    // One positive tied with one of two negatives: (1 + 0.5) / 2.
    expect(rocAuc([0, 0, 1], [0.2, 0.5, 0.5])).toBe(0.75);
    expect(rocAuc([1, 1], [0.2, 0.5])).toBeNaN();
  });
});
