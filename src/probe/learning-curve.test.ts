import { describe, expect, it } from "vitest";
import { learningCurveVerdict, measureLearningCurve } from "./learning-curve.js";

const half = [10, 10, 10, 10, 10];
const plus = (steps: number[]) => half.map((value, fold) => value + steps[fold]!);

describe("learningCurveVerdict", () => {
  it("says rising when the last doubling adds ≥ 2 % and more than one standard error", () => {
    // Differences [.5, .3, .4, .6, .2]: mean 0.4 (3.8 % of 10.4), SE 0.0707.
    const result = learningCurveVerdict(half, plus([0.5, 0.3, 0.4, 0.6, 0.2]));
    expect(result.verdict).toBe("rising");
    expect(result.diff).toBeCloseTo(0.4, 12);
    expect(result.se).toBeCloseTo(Math.sqrt(0.1 / 4 / 5), 12);
    expect(result.relative).toBeCloseTo(0.4 / 10.4, 12);
  });

  it("says flat when even one standard error more stays under 2 %", () => {
    // Mean 0.02, SE 0.0255: 0.0455 < 2 % of 10.02.
    expect(learningCurveVerdict(half, plus([0.05, -0.05, 0.1, 0, 0])).verdict).toBe("flat");
  });

  it("says uncertain when the folds disagree", () => {
    expect(learningCurveVerdict(half, plus([1, -0.8, 0.9, -0.7, 0.1])).verdict).toBe("uncertain");
    // A rise of 3 % that is no larger than its standard error is not called rising either.
    expect(learningCurveVerdict(half, plus([1.5, -1.2, 1.4, -1.1, 0.9])).verdict).toBe("uncertain");
  });
});

describe("measureLearningCurve", () => {
  it("measures every share, puts 95 % t intervals over folds, and reads the verdict", () => {
    const calls: number[] = [];
    const report = measureLearningCurve(
      (share) => {
        calls.push(share);
        return Float64Array.from([0, 1, 2, 3, 4], (fold) => 10 * share + fold);
      },
      { budgets: [0.1, 0.3], trainingRows: 800 },
    );
    expect(calls).toEqual([0.25, 0.5, 1]);
    expect(report.points.map((point) => [point.share, point.rows, point.mean_delta])).toEqual([
      [0.25, 200, 4.5],
      [0.5, 400, 7],
      [1, 800, 12],
    ]);
    // Per-fold values 10 + fold: SE √(2.5 / 5), t(4) = 2.776445.
    expect(report.points[2]!.hi - 12).toBeCloseTo(2.776445 * Math.sqrt(0.5), 5);
    expect(report.verdict).toBe("rising");
    expect(report.reading).toMatch(/^More labels would likely help/);
  });
});
