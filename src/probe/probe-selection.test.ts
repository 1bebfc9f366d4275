import { describe, expect, it } from "vitest";
import type { FeatureBlock } from "../dataset/feature-blocks.js";
import { createRandom, normal } from "../stats/random.js";
import { nestedFoldAssignment, outerSplit } from "./nested-folds.js";
import { predictRows } from "./probe-model.js";
import {
  type CandidateReport,
  chooseCandidate,
  foldInterval,
  increasingLine,
  type SelectionData,
  type SelectionOptions,
  selectGainProbe,
  standardError,
} from "./probe-selection.js";
import { createRidgeSolver, pickRows } from "./ridge-solver.js";

function candidate(
  foldScores: number[],
  report: Partial<Pick<CandidateReport, "dim" | "probe" | "blocks" | "stage">> = {},
) {
  const scores = Float64Array.from(foldScores);
  return {
    report: {
      score: scores.reduce((sum, value) => sum + value, 0) / scores.length,
      dim: report.dim ?? 128,
      probe: report.probe ?? "ridge",
      blocks: report.blocks ?? ["last:1"],
      stage: report.stage ?? "nested",
    },
    foldScores: scores,
  };
}

describe("chooseCandidate (best score; the simplest near copy of it instead)", () => {
  // Best: mean 11 over five folds.
  const best = candidate([10, 12, 11, 9, 13], { dim: 256 });
  // Mean 10.6: 0.4 below the best, though within one standard error of the paired difference
  // (0.452), the rule the score rule replaced.
  const withinNoise = candidate([10.8, 10.6, 9.6, 9.4, 12.6]);
  // Mean 10.95: 0.05 below the best, within 1 % of it, the margin a simpler candidate once won by.
  const nearTie = candidate([10, 12, 11, 9, 12.75]);
  const predictions = [0.3, -1.2, 2.5, 0.1, -0.4, 1.7, -2.2, 0.9];

  it("keeps the best over a simpler candidate that is worse, even within fold noise", () => {
    expect(chooseCandidate([best, withinNoise])).toBe(0);
  });

  it("keeps the best over a simpler candidate a hair below it that predicts otherwise", () => {
    expect(chooseCandidate([best, withinNoise, nearTie])).toBe(0);
    expect(chooseCandidate([nearTie, best])).toBe(1);
    const other = [1.1, 0.2, -0.3, 2.4, -1.5, 0.6, 0.8, -2.0];
    expect(
      chooseCandidate([
        { ...best, outOfFold: predictions },
        { ...nearTie, outOfFold: other },
      ]),
    ).toBe(0);
  });

  it("takes the simplest near copy of the best: out-of-fold predictions correlated ≥ 0.99", () => {
    // A rescaled, shifted copy (correlation 1) and one with a small perturbation (0.999…).
    const copy = predictions.map((value) => 2 * value + 1);
    const nudged = predictions.map((value, index) => value + (index === 3 ? 0.05 : 0));
    expect(
      chooseCandidate([
        { ...best, outOfFold: predictions },
        { ...withinNoise, outOfFold: copy },
      ]),
    ).toBe(1);
    const smallest = candidate([10, 12, 11, 9, 12.5], { dim: 16 });
    expect(
      chooseCandidate([
        { ...best, outOfFold: predictions },
        { ...withinNoise, outOfFold: copy },
        { ...smallest, outOfFold: nudged },
      ]),
    ).toBe(2);
  });

  it("orders simplicity by width, then ridge < rank-ridge < MLP, then the default block", () => {
    const same = [10, 12, 11, 9, 13];
    const rank = candidate(same, { probe: "ridge-rank", blocks: ["last:final"] });
    const other = candidate(same, { blocks: ["last:1"] });
    const preferred = candidate(same, { blocks: ["last:final"] });
    const mlp = candidate(same, { probe: "mlp", blocks: ["last:final"] });
    expect(chooseCandidate([mlp, rank, other, preferred])).toBe(3);
    expect(chooseCandidate([mlp, rank])).toBe(1);
  });

  it("never chooses a screened candidate, whose figures are optimistic", () => {
    const screened = candidate([30, 30, 30, 30, 30], { stage: "screen", dim: 1 });
    expect(chooseCandidate([screened, best])).toBe(1);
  });

  it("computes the standard error and the t interval of a fold mean", () => {
    expect(standardError([0.5, 0.2, 0.6, 0.3, 0.4])).toBeCloseTo(Math.sqrt(0.1 / 4 / 5), 12);
    const interval = foldInterval([1, 2, 3, 4, 5]);
    // mean 3, SE √(2.5/5) = 0.7071, t(4) = 2.776445.
    expect(interval.mean).toBe(3);
    expect(interval.hi - 3).toBeCloseTo(2.776445 * Math.sqrt(0.5), 5);
  });
});

describe("increasingLine", () => {
  it("is the least-squares line when it increases", () => {
    // x̄ = 2, ȳ = 13/3, Σ(x−x̄)(y−ȳ) = 5, Σ(x−x̄)² = 2: slope 2.5, intercept 13/3 − 5.
    const line = increasingLine([1, 2, 3], [2, 4, 7]);
    expect(line.slope).toBeCloseTo(2.5, 12);
    expect(line.intercept).toBeCloseTo(13 / 3 - 5, 12);
  });

  it("keeps a small positive slope when the data decrease, so the order is kept", () => {
    const line = increasingLine([1, 2, 3], [7, 4, 2]);
    expect(line.slope).toBeGreaterThan(0);
    expect(line.slope).toBeLessThan(1e-5);
  });
});

/** Blocks `last:0` (noise), `last:final` (weak signal) and `mean:1` (strong signal), 4 values each. */
function syntheticData(rows: number, seed: number): SelectionData {
  const random = createRandom(seed);
  const names = ["last:0", "last:final", "mean:1"];
  const blocks: FeatureBlock[] = names.map((name, index) => {
    const [pooling, layer] = name.split(":") as ["last" | "mean", string];
    return { name, pooling, layer: layer === "final" ? "final" : Number(layer), dim: 4, offset: 4 * index };
  });
  const features = new Float32Array(rows * 12);
  const gains = new Float64Array(rows);
  for (let row = 0; row < rows; row++) {
    for (let column = 0; column < 12; column++) features[row * 12 + column] = normal(random);
    const weak = features[row * 12 + 4]!;
    const strong = features[row * 12 + 8]! - features[row * 12 + 9]!;
    gains[row] = 10 + 6 * strong + 1.5 * weak + 4 * normal(random);
  }
  return { features, rows, dim: 12, blocks, gains };
}

const options: SelectionOptions = {
  budgets: [0.1, 0.3],
  folds: 4,
  innerFolds: 3,
  seed: 3,
  severeDelta: 10,
  probes: ["ridge", "ridge-rank"],
  lambdas: [0.1, 10, 1000],
};

describe("selectGainProbe", () => {
  const data = syntheticData(240, 1);

  it("finds the informative block, measures every single, all together and the greedy sets", () => {
    const { report, head } = selectGainProbe(data, options);
    const chosen = report.candidates[report.chosen]!;
    expect(chosen.blocks).toContain("mean:1");
    expect(chosen.blocks).not.toContain("last:0");
    expect(head.blocks.map((block) => block.name)).toEqual(chosen.blocks);
    const sets = new Set(report.candidates.map((entry) => entry.blocks.join("+")));
    for (const set of ["last:0", "last:final", "mean:1", "last:0+last:final+mean:1"])
      expect(sets).toContain(set);
    // The greedy step from mean:1 tried adding a block.
    expect([...sets].some((set) => set.split("+").length === 2)).toBe(true);
    const noise = report.candidates.find(
      (entry) => entry.blocks.join() === "last:0" && entry.probe === "ridge",
    )!;
    expect(chosen.score).toBeGreaterThan(noise.score + 3 * noise.score_se);
    expect(report.candidates[report.default!]).toMatchObject({ blocks: ["last:final"], probe: "ridge" });
    expect(report.versus_default!.diff).toBeGreaterThan(0);
  });

  it("also says what the choice is worth on resamples, and refuses budgets that route nothing", () => {
    const { report } = selectGainProbe(data, options);
    const estimate = report.estimate!;
    // A candidate reading the informative block is chosen on (nearly) every resample, and beats
    // the default there.
    const informative = report.candidates.reduce(
      (sum, candidate, index) =>
        sum + (candidate.blocks.includes("mean:1") ? estimate.chosen_share[index]! : 0),
      0,
    );
    expect(informative).toBeGreaterThan(0.9);
    expect(estimate.chosen_share.reduce((sum, share) => sum + share, 0)).toBeCloseTo(1, 9);
    expect(estimate.versus_default!.lo).toBeGreaterThan(0);
    expect(estimate.lo).toBeLessThanOrEqual(estimate.score);
    expect(estimate.hi).toBeGreaterThanOrEqual(estimate.score);
    // 240 rows in 4 × 3 folds: inner folds of 60 rows, where p = 0.01 routes none.
    expect(() => selectGainProbe(data, { ...options, budgets: [0.01] })).toThrow(
      /no budget of 0.01 routes a segment of an inner fold \(about 60 rows\)/,
    );
  });

  it("is deterministic for a seed", () => {
    const strip = (result: ReturnType<typeof selectGainProbe>) =>
      result.report.candidates.map(({ seconds, ...rest }) => rest);
    expect(strip(selectGainProbe(data, options))).toEqual(strip(selectGainProbe(data, options)));
  });

  it("never lets an outer fold's labels reach the predictions it is measured on", () => {
    const fixed = { ...options, mode: "fixed" as const, probes: ["ridge" as const] };
    const before = selectGainProbe(data, fixed);
    const folds = nestedFoldAssignment(data.rows, options.folds, options.innerFolds, options.seed);
    const { validation, training } = outerSplit(folds, 0);
    const changed = Float64Array.from(data.gains);
    for (const row of validation) changed[row] = -changed[row]! * 7 + 100;
    const after = selectGainProbe({ ...data, gains: changed }, fixed);
    for (const row of validation) expect(after.head.outOfFold[row]).toBe(before.head.outOfFold[row]);
    // …and they are what a fit on the other folds, at the penalty the inner folds chose, predicts.
    const lambda = before.report.candidates[0]!.fold_lambdas[0]!;
    const matrix = { features: data.features, rows: data.rows, dim: data.dim };
    const model = createRidgeSolver(matrix).fit(training, data.gains, lambda);
    const direct = predictRows(model, pickRows(matrix, validation).features, validation.length);
    validation.forEach((row, position) => {
      expect(before.head.outOfFold[row]).toBeCloseTo(direct[position]!, 8);
    });
  });

  it("maps a rank-ridge head back to gain units without changing its order", () => {
    const { head, report } = selectGainProbe(data, { ...options, mode: "fixed", probes: ["ridge-rank"] });
    expect(report.candidates[0]!.probe).toBe("ridge-rank");
    const scores = predictRows(head.model, data.features, data.rows);
    const meanScore = scores.reduce((sum, value) => sum + value, 0) / data.rows;
    const meanGain = data.gains.reduce((sum, value) => sum + value, 0) / data.rows;
    // In gain units: centred near the mean gain rather than near 0 (normal scores).
    expect(Math.abs(meanScore - meanGain)).toBeLessThan(2);
  });

  it("screens single blocks first when there are many, and measures the best by nested CV", () => {
    const { report } = selectGainProbe(data, { ...options, screenAbove: 2, greedyPool: 1 });
    const screened = report.candidates.filter((entry) => entry.stage === "screen");
    expect(screened.map((entry) => entry.blocks[0])).toEqual(["last:0", "last:final", "mean:1"]);
    const nestedSingles = report.candidates.filter(
      (entry) => entry.stage === "nested" && entry.blocks.length === 1,
    );
    // The best screened single, plus the default block, get the nested treatment.
    expect(new Set(nestedSingles.map((entry) => entry.blocks[0]))).toEqual(new Set(["mean:1", "last:final"]));
  });
});
