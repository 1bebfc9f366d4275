import { describe, expect, it } from "vitest";
import type { DatasetMeta, DatasetRecord } from "../dataset/types.js";
import { UsageError } from "../errors/index.js";
import type { RouterFile, RouterHead } from "../probe/router-file.js";
import { createRandom, normal } from "../stats/random.js";
import { auc, qualityBudgetCurve } from "./curves.js";
import { buildPolicies, type EvalPolicy, type EvalSegments, evalSegmentsFromDataset } from "./policies.js";
import { parseBudgets, runEval, scoreGainSpearman, seedFromEnvironment } from "./run-eval.js";

function meta(n: number, higherIsBetter = true): DatasetMeta {
  return {
    n,
    dim: 1,
    label_metric: "chrf",
    label_higher_is_better: higherIsBetter,
    metric_signatures: {},
    small: { spec: null, fingerprint: "sha256:x", arch: null, layer: "final" },
    large: { spec: null },
    template: null,
    src_lang: "en",
    tgt_lang: "de",
    created: "2026-01-01T00:00:00.000Z",
    routelmt_version: "0.0.0",
    source: { kind: "collect", input: "in.jsonl", decoding: {} },
  };
}

function record(
  id: string,
  small: number,
  large: number,
  srcChars: number,
  entropy: number | null = null,
): DatasetRecord {
  return {
    id,
    src: id,
    ref: null,
    src_lang: "en",
    tgt_lang: "de",
    small: "s",
    large: "l",
    scores: {},
    q_small: small,
    q_large: large,
    gain: large - small,
    src_chars: srcChars,
    prompt_tokens: null,
    entropy,
  };
}

/** Gains a 10, b 0, c −15, d 20, e 5; lengths a 10, b 30, c 30, d 5, e 20. */
function handSegments(higherIsBetter = true): EvalSegments {
  const sign = higherIsBetter ? 1 : -1;
  const rows: [string, number, number, number][] = [
    ["a", 50, 60, 10],
    ["b", 40, 40, 30],
    ["c", 70, 55, 30],
    ["d", 30, 50, 5],
    ["e", 60, 65, 20],
  ];
  return evalSegmentsFromDataset(
    meta(rows.length, higherIsBetter),
    rows.map(([id, small, large, chars]) => record(id, sign * small, sign * large, chars)),
  );
}

const HAND_BUDGETS = [0, 0.2, 0.4, 0.6, 0.8, 1];

function evaluate(segments: EvalSegments, policies: EvalPolicy[], budgets?: number[], seed = 1) {
  return runEval(segments, policies, {
    budgets,
    severeDelta: 10,
    seed,
    labelMetric: "chrf",
    bootstrapResamples: 200,
  });
}

function handPolicies(segments: EvalSegments, names: string[]): EvalPolicy[] {
  return buildPolicies(names, {
    segments,
    router: null,
    heads: null,
    externals: [],
    datasetIds: segments.outcomes.ids,
    seed: 3,
  }).policies;
}

describe("runEval on a hand-computed dataset", () => {
  const segments = handSegments();
  const summary = evaluate(segments, handPolicies(segments, ["length", "oracle-gain"]), HAND_BUDGETS);

  it("reports small-only and large-only qualities at the curve's ends", () => {
    expect(summary.small_only).toBe(50);
    expect(summary.large_only).toBe(54);
    for (const policy of Object.values(summary.policies)) {
      expect(policy.curve[0]!.quality).toBe(summary.small_only);
      expect(policy.curve[policy.curve.length - 1]!.quality).toBe(summary.large_only);
    }
  });

  it("measures length (ties by id, negative gains) at every budget", () => {
    const curve = summary.policies.length!.curve;
    expect(curve.map((entry) => entry.quality)).toEqual([50, 50, 47, 48, 50, 54]);
    expect(curve.map((entry) => entry.realized)).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
    expect(curve[0]).toMatchObject({ mean_delta: null, hit_rate: null, severe_loss: null, regressions: 0 });
    expect(curve[1]).toMatchObject({ mean_delta: 0, hit_rate: 0, severe_loss: 0, regressions: 0 });
    expect(curve[2]).toMatchObject({ mean_delta: -7.5, hit_rate: 0, severe_loss: 0.5, regressions: 1 });
    expect(curve[3]!.mean_delta).toBeCloseTo(-10 / 3, 12);
    expect(curve[3]!.hit_rate).toBeCloseTo(1 / 3, 12);
    expect(curve[5]).toMatchObject({ mean_delta: 4, hit_rate: 1, severe_loss: 0.2, regressions: 1 });
  });

  it("measures the gain oracle", () => {
    const curve = summary.policies["oracle-gain"]!.curve;
    expect(curve.map((entry) => entry.quality)).toEqual([50, 54, 56, 57, 57, 54]);
    expect(curve.map((entry) => entry.mean_delta)).toEqual([null, 20, 15, 35 / 3, 8.75, 4]);
    expect(curve.slice(1).every((entry) => entry.hit_rate === 1)).toBe(true);
  });

  it("computes Spearman of score and gain with average ranks for ties", () => {
    // Ranks of lengths [2, 4.5, 4.5, 1, 3] and gains [4, 2, 1, 5, 3]: r = −9.5 / √95.
    expect(summary.policies.length!.spearman).toBeCloseTo(-9.5 / Math.sqrt(95), 12);
    expect(summary.policies["oracle-gain"]!.spearman).toBeCloseTo(1, 12);
    expect(scoreGainSpearman([Number.NaN, 1, 2], [5, 1, 2])).toBeCloseTo(1, 12);
    expect(scoreGainSpearman([1, 1, 1], [1, 2, 3])).toBeNull();
  });

  it("computes AUC on the default grid like the curve module does", () => {
    const fresh = evaluate(segments, handPolicies(segments, ["length"]), [0, 0.5]);
    const reference = qualityBudgetCurve([10, 30, 30, 5, 20], segments.outcomes);
    expect(fresh.policies.length!.auc).toBeCloseTo(auc(reference), 12);
  });

  it("has no confidence interval without a router", () => {
    expect(summary.ci).toEqual({});
  });

  it("reports an error-like metric on its own scale with the same gains", () => {
    const lower = handSegments(false);
    const flipped = evaluate(lower, handPolicies(lower, ["length", "oracle-gain"]), HAND_BUDGETS);
    expect(flipped.small_only).toBe(-50);
    expect(flipped.large_only).toBe(-54);
    expect(flipped.label_higher_is_better).toBe(false);
    expect(flipped.policies["oracle-gain"]!.curve.map((entry) => entry.quality)).toEqual([
      -50, -54, -56, -57, -57, -54,
    ]);
    expect(flipped.policies.length!.curve.map((entry) => entry.mean_delta)).toEqual(
      summary.policies.length!.curve.map((entry) => entry.mean_delta),
    );
    expect(flipped.policies.length!.apgr).toBeCloseTo(summary.policies.length!.apgr!, 12);
    expect(flipped.policies.length!.auc).toBeCloseTo(-summary.policies.length!.auc, 12);
  });
});

function head(quantiles: number[]): RouterHead {
  return {
    model: { format: 1, kind: "ridge", dim: 1, mean: [0], std: [1], weights: [1], bias: 0, lambda: 1 },
    report: {
      target: "gain",
      probe: "ridge",
      folds: 5,
      n: 0,
      cv_spearman: null,
      cv_pearson: null,
      cv_spearman_gain: null,
      cv_mse: null,
      lambda: 1,
    },
    score_quantiles: quantiles,
  };
}

function quantilesOf(values: Float64Array): number[] {
  const sorted = Float64Array.from(values).sort();
  return Array.from({ length: 101 }, (_, index) => sorted[Math.round((index / 100) * (sorted.length - 1))]!);
}

/**
 * N segments with gain ~ N(2, 8) and a router whose gain prediction is gain + N(0, noise²);
 * length is weakly related to gain, quality prediction tracks q_small.
 */
function synthetic(count: number, routerNoise: number, seed = 11) {
  const random = createRandom(seed);
  const records: DatasetRecord[] = [];
  const gainPrediction = new Float64Array(count);
  const qualityPrediction = new Float64Array(count);
  const risk = new Float64Array(count);
  for (let index = 0; index < count; index++) {
    const small = normal(random, 50, 10);
    const gain = normal(random, 2, 8);
    records.push(
      record(
        `s${String(index).padStart(5, "0")}`,
        small,
        small + gain,
        Math.max(1, Math.round(60 + 2 * gain + normal(random, 0, 30))),
        normal(random),
      ),
    );
    gainPrediction[index] = gain + normal(random, 0, routerNoise);
    qualityPrediction[index] = small + normal(random, 0, 5);
    risk[index] = gain < -10 ? 0.8 : 0.1;
  }
  const segments = evalSegmentsFromDataset(meta(count), records);
  const router: RouterFile = {
    format: 1,
    routelmt_version: "0.0.0",
    created: "2026-01-01T00:00:00.000Z",
    label_metric: "chrf",
    label_signature: null,
    label_higher_is_better: true,
    feature: { fingerprint: "sha256:x", arch: null, layer: "final", dim: 1, template: null, spec: null },
    src_lang: "en",
    tgt_lang: "de",
    language_pairs: [],
    training: { n: count, datasets: [], seed: 0, folds: 5 },
    heads: {
      gain: head(quantilesOf(gainPrediction)),
      quality: head(quantilesOf(qualityPrediction)),
      risk: { ...head(quantilesOf(risk)), delta: 10 },
    },
  };
  const policies = buildPolicies(
    ["routelmt", "routelmt-q", "guarded", "length", "entropy", "random", "oracle-gain", "oracle-quality"],
    {
      segments,
      router,
      heads: { gain: gainPrediction, quality: qualityPrediction, risk },
      externals: [],
      datasetIds: segments.outcomes.ids,
      seed: 5,
    },
  ).policies;
  return { segments, policies };
}

describe("runEval on synthetic data", () => {
  const { segments, policies } = synthetic(400, 4);
  const summary = evaluate(segments, policies);
  const count = segments.outcomes.ids.length;

  it("has exactly the summary.json shape other tooling reads", () => {
    expect(Object.keys(summary)).toEqual(
      expect.arrayContaining(["n", "label_metric", "small_only", "large_only", "budgets", "policies", "ci"]),
    );
    expect(summary.n).toBe(400);
    expect(summary.budgets).toHaveLength(21);
    for (const policy of Object.values(summary.policies)) {
      expect(Object.keys(policy)).toEqual(
        expect.arrayContaining(["spearman", "auc", "apgr", "cpt", "curve"]),
      );
      expect(Object.keys(policy.cpt).sort()).toEqual(["20", "50", "80"]);
      for (const entry of policy.curve) {
        expect(Object.keys(entry)).toEqual(
          expect.arrayContaining([
            "budget",
            "quality",
            "realized",
            "mean_delta",
            "hit_rate",
            "severe_loss",
            "regressions",
          ]),
        );
      }
    }
    expect(Object.keys(summary.ci).sort()).toEqual(["0.1", "0.2", "0.3", "0.5"]);
    for (const interval of Object.values(summary.ci)) {
      expect(Object.keys(interval)).toEqual(expect.arrayContaining(["vs", "diff", "lo", "hi"]));
    }
    // A JSON round trip keeps it (no typed arrays, NaN or undefined leaking in).
    expect(JSON.parse(JSON.stringify(summary))).toEqual(summary);
  });

  it("lets the gain oracle dominate every ranking policy at every budget", () => {
    const oracle = summary.policies["oracle-gain"]!.curve;
    for (const [name, policy] of Object.entries(summary.policies)) {
      if (name === "guarded") continue; // may leave budget unspent, see the next test
      policy.curve.forEach((entry, index) => {
        expect(oracle[index]!.quality).toBeGreaterThanOrEqual(entry.quality - 1e-9);
        if (entry.mean_delta !== null)
          expect(oracle[index]!.mean_delta!).toBeGreaterThanOrEqual(entry.mean_delta - 1e-9);
      });
    }
  });

  it("routes exactly ⌊pN⌋ in batch for rankings and at most that for the guarded policy", () => {
    for (const [name, policy] of Object.entries(summary.policies)) {
      for (const entry of policy.curve) {
        const allowed = Math.floor(entry.budget * count + 1e-9) / count;
        if (name === "guarded") expect(entry.realized).toBeLessThanOrEqual(allowed);
        else expect(entry.realized).toBe(allowed);
      }
    }
    const guarded = summary.policies.guarded!;
    expect(guarded.spearman).toBeNull();
    expect(guarded.curve.find((entry) => entry.budget === 0.3)!.guarded).toBeGreaterThan(0);
    expect(guarded.curve.every((entry) => entry.streaming === null)).toBe(true);
  });

  it("ranks a good router far above random and below the oracle", () => {
    const router = summary.policies.routelmt!;
    const random = summary.policies.random!;
    expect(router.spearman!).toBeGreaterThan(0.8);
    expect(Math.abs(random.spearman!)).toBeLessThan(0.1);
    expect(router.apgr!).toBeGreaterThan(random.apgr!);
    expect(router.apgr!).toBeLessThanOrEqual(summary.policies["oracle-gain"]!.apgr! + 1e-12);
    // Random averages 20 seeds: its regressions are not integers in general, its MeanDelta is near the mean gain.
    const meanGain =
      segments.outcomes.qualityLarge.reduce(
        (sum, large, index) => sum + large - segments.outcomes.qualitySmall[index]!,
        0,
      ) / count;
    expect(random.curve.find((entry) => entry.budget === 0.5)!.mean_delta!).toBeCloseTo(meanGain, 0);
  });

  it("compares RouteLMT with every baseline and RouteLMT-Q at each reported budget", () => {
    expect(Object.keys(summary.ci_by_policy).sort()).toEqual(["0.1", "0.2", "0.3", "0.5"]);
    for (const [key, each] of Object.entries(summary.ci_by_policy)) {
      const budget = Number(key);
      // Rankings only: the guard and the oracles are not rivals.
      expect(Object.keys(each).sort()).toEqual(["entropy", "length", "random", "routelmt-q"]);
      for (const [name, interval] of Object.entries(each)) {
        const meanDelta = summary.policies[name]!.curve.find((entry) => entry.budget === budget)!.mean_delta!;
        expect(interval.vs).toBe(name);
        expect(interval.baseline_mean_delta).toBe(meanDelta);
        expect(interval.diff).toBeCloseTo(interval.routelmt_mean_delta - meanDelta, 9);
        expect(interval.lo).toBeLessThanOrEqual(interval.diff);
        expect(interval.hi).toBeGreaterThanOrEqual(interval.diff);
      }
      expect(each.random!.baseline_seeds_averaged).toBeGreaterThan(1);
      // The headline interval is the best baseline's entry, the same bootstrap.
      expect(summary.ci[key]).toEqual(each[summary.ci[key]!.vs]);
    }
  });

  it("compares RouteLMT with the best router-free baseline by MeanDelta at each reported budget", () => {
    for (const [key, interval] of Object.entries(summary.ci)) {
      const budget = Number(key);
      const baselines = Object.entries(summary.policies).filter(([, policy]) => policy.family === "baseline");
      const best = Math.max(
        ...baselines.map(([, policy]) => policy.curve.find((entry) => entry.budget === budget)!.mean_delta!),
      );
      expect(interval.baseline_mean_delta).toBe(best);
      expect(summary.policies[interval.vs]!.family).toBe("baseline");
      expect(interval.lo).toBeLessThanOrEqual(interval.hi);
      // A router this good is clearly better than any baseline.
      expect(interval.lo).toBeGreaterThan(0);
      expect(interval.diff).toBeCloseTo(interval.routelmt_mean_delta - interval.baseline_mean_delta, 9);
    }
  });

  it("replays every ranking policy in streaming near the target budget", () => {
    for (const [name, policy] of Object.entries(summary.policies)) {
      if (name === "guarded") continue;
      for (const entry of policy.curve) {
        expect(entry.streaming).not.toBeNull();
        if (entry.budget === 0) expect(entry.streaming!.realized).toBe(0);
        else if (entry.budget === 1) expect(entry.streaming!.realized).toBe(1);
        else expect(Math.abs(entry.streaming!.realized - entry.budget)).toBeLessThan(0.08);
      }
    }
  });

  it("is deterministic for a seed, and the seed moves the bootstrap", () => {
    const again = evaluate(segments, policies);
    expect(again).toEqual(summary);
    const otherSeed = evaluate(segments, policies, undefined, 2);
    expect(otherSeed.ci["0.3"]!.diff).toBe(summary.ci["0.3"]!.diff);
    expect(otherSeed.ci["0.3"]!.lo).not.toBe(summary.ci["0.3"]!.lo);
  });

  it("keeps a router with no signal inside the baselines' noise", () => {
    const noisy = synthetic(400, 1e6, 12);
    const result = evaluate(noisy.segments, noisy.policies, [0, 0.3, 1]);
    const interval = result.ci["0.3"]!;
    expect(interval.lo).toBeLessThan(0);
    expect(result.budgets).toEqual([0, 0.3, 1]);
    expect(result.policies.routelmt!.curve).toHaveLength(3);
    // Budget-free measures still span the default grid.
    expect(result.policies["oracle-gain"]!.apgr).toBeCloseTo(summary.policies["oracle-gain"]!.apgr!, 0);
  });
});

describe("options", () => {
  it("parses budget lists", () => {
    expect(parseBudgets("0.3, 0,0.1,0.30")).toEqual([0, 0.1, 0.3]);
    expect(() => parseBudgets("0.1,1.5")).toThrow(UsageError);
    expect(() => parseBudgets("x")).toThrow(UsageError);
    expect(() => parseBudgets("")).toThrow(UsageError);
  });

  it("reads the seed from ROUTELMT_SEED", () => {
    expect(seedFromEnvironment({})).toBe(12345);
    expect(seedFromEnvironment({ ROUTELMT_SEED: "42" })).toBe(42);
    expect(() => seedFromEnvironment({ ROUTELMT_SEED: "4.2" })).toThrow(UsageError);
  });

  it("rejects a negative severe-loss delta and duplicate policies", () => {
    const segments = handSegments();
    const [length] = handPolicies(segments, ["length"]);
    expect(() => runEval(segments, [length!], { severeDelta: -1, seed: 0, labelMetric: "chrf" })).toThrow(
      UsageError,
    );
    expect(() =>
      runEval(segments, [length!, length!], { severeDelta: 1, seed: 0, labelMetric: "chrf" }),
    ).toThrow(/listed twice/);
  });
});
