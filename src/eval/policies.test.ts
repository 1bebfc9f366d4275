import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import type { DatasetMeta, DatasetRecord } from "../dataset/types.js";
import { InputError, UsageError } from "../errors/index.js";
import type { RouterFile, RouterHead } from "../probe/router-file.js";
import {
  buildPolicies,
  type EvalPolicy,
  evalSegmentsFromDataset,
  GUARDED_QE_COST,
  type PolicyInputs,
  parseExternalFlag,
  parsePolicyList,
  RANDOM_SEEDS,
  readExternalScores,
} from "./policies.js";

const IDS = ["a", "b", "c", "d", "e"];

function record(id: string, small: number, large: number, extra: Partial<DatasetRecord> = {}): DatasetRecord {
  return {
    id,
    src: `source ${id}`,
    ref: null,
    src_lang: "en",
    tgt_lang: "de",
    small: "s",
    large: "l",
    scores: { chrf: { small, large } },
    q_small: small,
    q_large: large,
    gain: large - small,
    src_chars: 10,
    prompt_tokens: null,
    entropy: null,
    ...extra,
  };
}

function meta(higherIsBetter = true): DatasetMeta {
  return {
    n: 5,
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

/** Gains a 10, b 0, c −15, d 20, e 5; QE of the small output per segment. */
function records(): DatasetRecord[] {
  const qe = [0.9, 0.2, 0.5, 0.1, 0.95];
  const chars = [10, 30, 30, 5, 20];
  const pairs: [number, number][] = [
    [50, 60],
    [40, 40],
    [70, 55],
    [30, 50],
    [60, 65],
  ];
  return IDS.map((id, index) =>
    record(id, pairs[index]![0], pairs[index]![1], {
      src_chars: chars[index]!,
      scores: {
        chrf: { small: pairs[index]![0], large: pairs[index]![1] },
        kiwi: { small: qe[index]!, large: null },
      },
    }),
  );
}

function head(quantiles: number[]): RouterHead {
  return {
    model: { format: 1, kind: "ridge", dim: 1, mean: [0], std: [1], weights: [1], bias: 0, lambda: 1 },
    report: {
      target: "gain",
      probe: "ridge",
      folds: 5,
      n: 5,
      cv_spearman: null,
      cv_pearson: null,
      cv_spearman_gain: null,
      cv_mse: null,
      lambda: 1,
    },
    score_quantiles: quantiles,
  };
}

const PERCENT_QUANTILES = Array.from({ length: 101 }, (_, index) => index);

function router(heads: RouterFile["heads"]): RouterFile {
  return {
    format: 1,
    routelmt_version: "0.0.0",
    created: "2026-01-01T00:00:00.000Z",
    label_metric: "chrf",
    label_signature: null,
    label_higher_is_better: true,
    feature: { fingerprint: "sha256:x", arch: null, layer: "final", dim: 1, template: null, spec: null },
    src_lang: "en",
    tgt_lang: "de",
    language_pairs: [["en", "de"]],
    training: { n: 5, datasets: [], seed: 0, folds: 5 },
    heads,
  };
}

function inputs(overrides: Partial<PolicyInputs> = {}): PolicyInputs {
  return {
    segments: evalSegmentsFromDataset(meta(), records()),
    router: null,
    heads: null,
    externals: [],
    datasetIds: IDS,
    seed: 7,
    ...overrides,
  };
}

function routedIds(policy: EvalPolicy, budget: number): string[] {
  const { routed } = policy.realizations[0]!.allocate(budget);
  return IDS.filter((_, index) => routed[index]);
}

function only(set: { policies: EvalPolicy[] }, name: string): EvalPolicy {
  const policy = set.policies.find((candidate) => candidate.name === name);
  if (!policy) throw new Error(`no policy ${name}`);
  return policy;
}

describe("evalSegmentsFromDataset", () => {
  it("orients qualities so that large − small is the gain, for both metric directions", () => {
    const higher = evalSegmentsFromDataset(meta(true), records());
    expect(higher.orientation).toBe(1);
    expect(higher.outcomes.qualitySmall).toEqual([50, 40, 70, 30, 60]);
    const lowerRecords = records().map((item) => ({
      ...item,
      q_small: -item.q_small!,
      q_large: -item.q_large!,
    }));
    const lower = evalSegmentsFromDataset(meta(false), lowerRecords);
    expect(lower.orientation).toBe(-1);
    expect(
      lower.outcomes.qualityLarge.map((large, index) => large - lower.outcomes.qualitySmall[index]!),
    ).toEqual([10, 0, -15, 20, 5]);
  });

  it("leaves out unlabelled records and keeps their feature rows straight", () => {
    const withGap = records();
    withGap[1] = { ...withGap[1]!, q_large: null, gain: null };
    const segments = evalSegmentsFromDataset(meta(), withGap);
    expect(segments.outcomes.ids).toEqual(["a", "c", "d", "e"]);
    expect(segments.rows).toEqual([0, 2, 3, 4]);
    expect(segments.unlabelled).toBe(1);
  });

  it("rejects duplicate ids", () => {
    const duplicated = [...records(), record("a", 1, 2)];
    expect(() => evalSegmentsFromDataset(meta(), duplicated)).toThrow(InputError);
  });
});

describe("parsePolicyList", () => {
  it("defaults to every policy, externals before the oracles", () => {
    expect(parsePolicyList(undefined, ["comet"])).toEqual([
      "routelmt",
      "routelmt-q",
      "guarded",
      "guarded-qe",
      "length",
      "entropy",
      "random",
      "external:comet",
      "oracle-gain",
      "oracle-quality",
    ]);
  });

  it("accepts known names and rejects unknown ones or externals without a file", () => {
    expect(parsePolicyList("length, random,length", [])).toEqual(["length", "random"]);
    expect(() => parsePolicyList("lenght", [])).toThrow(UsageError);
    expect(() => parsePolicyList("external:x", [])).toThrow(/--external x=FILE/);
    expect(() => parsePolicyList(" , ", [])).toThrow(UsageError);
  });
});

describe("baseline and oracle policies", () => {
  it("length routes the longest sources first, ties by ascending id", () => {
    const length = only(buildPolicies(["length"], inputs()), "length");
    expect(routedIds(length, 0.4)).toEqual(["b", "c"]);
    expect(routedIds(length, 0.6)).toEqual(["b", "c", "e"]);
    expect(length.family).toBe("baseline");
  });

  it("oracle-gain routes the largest true gains and oracle-quality the worst small outputs", () => {
    const set = buildPolicies(["oracle-gain", "oracle-quality"], inputs());
    expect(routedIds(only(set, "oracle-gain"), 0.4)).toEqual(["a", "d"]);
    expect(routedIds(only(set, "oracle-quality"), 0.4)).toEqual(["b", "d"]);
  });

  it("random has 20 seeded realizations, reproducible and different from each other", () => {
    const first = only(buildPolicies(["random"], inputs()), "random");
    const again = only(buildPolicies(["random"], inputs()), "random");
    expect(first.realizations).toHaveLength(RANDOM_SEEDS);
    expect(first.realizations[3]!.scores).toEqual(again.realizations[3]!.scores);
    expect(first.realizations[0]!.scores).not.toEqual(first.realizations[1]!.scores);
    const otherSeed = only(buildPolicies(["random"], inputs({ seed: 8 })), "random");
    expect(otherSeed.realizations[0]!.scores).toEqual(first.realizations[1]!.scores);
  });

  it("entropy is skipped when unknown everywhere and routes unknown entropies last otherwise", () => {
    const none = buildPolicies(["entropy"], inputs());
    expect(none.policies).toEqual([]);
    expect(none.skipped).toEqual([{ name: "entropy", reason: "no segment has an entropy value" }]);
    const partial = records().map((item, index) => ({ ...item, entropy: index === 3 ? null : index }));
    const set = buildPolicies(["entropy"], inputs({ segments: evalSegmentsFromDataset(meta(), partial) }));
    expect(routedIds(only(set, "entropy"), 0.8)).toEqual(["a", "b", "c", "e"]);
    expect(set.notes[0]).toMatch(/1 segments without entropy/);
  });

  it("skips every router policy with a reason when no router is given", () => {
    const set = buildPolicies(["routelmt", "routelmt-q", "guarded", "length"], inputs());
    expect(set.policies.map((policy) => policy.name)).toEqual(["length"]);
    expect(set.skipped.map((skip) => skip.name)).toEqual(["routelmt", "routelmt-q", "guarded"]);
    expect(set.skipped[0]!.reason).toMatch(/no --router/);
  });
});

describe("router policies", () => {
  const gain = Float64Array.from([0.9, 0.8, 0.7, 0.6, 0.5]);
  const quality = Float64Array.from([95, 50, 50, 50, 50]);
  const risk = Float64Array.from([0, 0.7, 0, 0, 0]);
  const fullRouter = router({
    gain: head([...PERCENT_QUANTILES]),
    quality: head([...PERCENT_QUANTILES]),
    risk: { ...head(PERCENT_QUANTILES.map((value) => value / 100)), delta: 10 },
  });

  it("routelmt ranks by the gain head and routelmt-q by the lowest predicted quality", () => {
    const set = buildPolicies(
      ["routelmt", "routelmt-q"],
      inputs({ router: fullRouter, heads: { gain, quality: Float64Array.from([60, 10, 40, 20, 30]) } }),
    );
    expect(routedIds(only(set, "routelmt"), 0.4)).toEqual(["a", "b"]);
    expect(routedIds(only(set, "routelmt-q"), 0.4)).toEqual(["b", "d"]);
    expect(only(set, "routelmt").streamingStartScores).toEqual(PERCENT_QUANTILES);
    expect(only(set, "routelmt-q").streamingStartScores?.[100]).toBe(-100);
  });

  it("guarded drops high predicted quality (≥ the 90th training percentile) and high risk, refilling", () => {
    const set = buildPolicies(["guarded"], inputs({ router: fullRouter, heads: { gain, quality, risk } }));
    const guarded = only(set, "guarded");
    expect(guarded.realizations[0]!.scores).toBeNull();
    expect(routedIds(guarded, 0.4)).toEqual(["c", "d"]);
    expect(guarded.realizations[0]!.allocate(0.4).guarded).toBe(2);
    // Only three pass: the rest of the budget is left unspent.
    expect(routedIds(guarded, 1)).toEqual(["c", "d", "e"]);
    expect(guarded.description).toMatch(/≥ 90 .*risk probability ≥ 0.5/);
  });

  it("guarded honours explicit thresholds", () => {
    const set = buildPolicies(
      ["guarded"],
      inputs({ router: fullRouter, heads: { gain, quality, risk }, guardQuality: 99, guardRisk: 0.75 }),
    );
    expect(routedIds(only(set, "guarded"), 0.4)).toEqual(["a", "b"]);
    expect(() =>
      buildPolicies(["guarded"], inputs({ router: fullRouter, heads: { gain }, guardRisk: 1.5 })),
    ).toThrow(UsageError);
  });

  it("guarded ranks by the router's risk-adjusted score, gain − λ·risk, and streams from its quantiles", () => {
    // λ = 0.5: a 0.9, b 0.8 − 0.35 = 0.45, c 0.7, d 0.6, e 0.5 → order a c d e b.
    const guard = {
      method: "risk-adjusted" as const,
      rule: "test",
      lambda: 0.5,
      tolerance: 0.05,
      severe_delta: 10,
      budgets: [0.4],
      grid: [],
      score_quantiles: PERCENT_QUANTILES.map((value) => value / 100),
    };
    const guardedRouter = { ...fullRouter, guard };
    const set = buildPolicies(["guarded"], inputs({ router: guardedRouter, heads: { gain, quality, risk } }));
    const guarded = only(set, "guarded");
    expect(Array.from(guarded.realizations[0]!.scores!)).toEqual([0.9, 0.8 - 0.35, 0.7, 0.6, 0.5]);
    expect(routedIds(guarded, 0.4)).toEqual(["a", "c"]);
    expect(routedIds(guarded, 0.8)).toEqual(["a", "c", "d", "e"]);
    expect(guarded.streamingStartScores).toEqual(guard.score_quantiles);
    expect(guarded.description).toMatch(/λ = 0.5/);
    // Explicit veto thresholds still ask for the veto guard.
    const vetoes = buildPolicies(
      ["guarded"],
      inputs({ router: guardedRouter, heads: { gain, quality, risk }, guardRisk: 0.5 }),
    );
    expect(only(vetoes, "guarded").realizations[0]!.scores).toBeNull();
  });

  it("guarded needs a quality or risk head", () => {
    const set = buildPolicies(
      ["guarded"],
      inputs({ router: router({ gain: head(PERCENT_QUANTILES) }), heads: { gain } }),
    );
    expect(set.skipped[0]?.reason).toMatch(/neither a quality nor a risk head/);
  });

  it("for an error-like metric the quality guard drops the lowest predicted error", () => {
    const lowerRecords = records().map((item) => ({
      ...item,
      q_small: -item.q_small!,
      q_large: -item.q_large!,
    }));
    const segments = evalSegmentsFromDataset(meta(false), lowerRecords);
    // Errors: a is predicted best (error 1), at or below the 10th percentile (10) of training errors.
    const errors = Float64Array.from([1, 50, 50, 50, 50]);
    const set = buildPolicies(
      ["guarded", "routelmt-q"],
      inputs({
        segments,
        router: router({ gain: head(PERCENT_QUANTILES), quality: head(PERCENT_QUANTILES) }),
        heads: { gain, quality: errors },
      }),
    );
    expect(routedIds(only(set, "guarded"), 0.4)).toEqual(["b", "c"]);
    // Highest predicted error first; ties by id.
    expect(routedIds(only(set, "routelmt-q"), 0.2)).toEqual(["b"]);
  });
});

describe("guarded-qe", () => {
  it("without a router ranks by the lowest QE and vetoes QE ≥ the threshold", () => {
    const set = buildPolicies(["guarded-qe"], inputs({ qeScore: "kiwi", qeThreshold: 0.8 }));
    const policy = only(set, "guarded-qe");
    expect(policy.family).toBe("baseline");
    expect(routedIds(policy, 0.6)).toEqual(["b", "c", "d"]);
    expect(routedIds(policy, 0.8)).toEqual(["b", "c", "d"]);
    expect(policy.cost).toBe(GUARDED_QE_COST);
  });

  it("defaults the threshold to the 90th percentile of the QE score over the data", () => {
    // 90th percentile of 0.1, 0.2, 0.5, 0.9, 0.95 is 0.93: a passes, e is vetoed.
    const policy = only(buildPolicies(["guarded-qe"], inputs({ qeScore: "kiwi" })), "guarded-qe");
    expect(routedIds(policy, 1)).toEqual(["a", "b", "c", "d"]);
    expect(policy.description).toMatch(/0\.93/);
  });

  it("with a router ranks candidates by the gain head", () => {
    const gain = Float64Array.from([0.1, 0.2, 0.3, 0.4, 0.5]);
    const set = buildPolicies(
      ["guarded-qe"],
      inputs({
        router: router({ gain: head(PERCENT_QUANTILES) }),
        heads: { gain },
        qeScore: "kiwi",
        qeThreshold: 0.8,
      }),
    );
    const policy = only(set, "guarded-qe");
    expect(policy.family).toBe("router");
    expect(routedIds(policy, 0.4)).toEqual(["c", "d"]);
  });

  it("is skipped without --qe or a post-hoc guard, naming both, and rejects an unknown score", () => {
    const reason = buildPolicies(["guarded-qe"], inputs()).skipped[0]?.reason;
    expect(reason).toMatch(/needs a router with a post-hoc guard .* or --qe SCORE/);
    expect(() => buildPolicies(["guarded-qe"], inputs({ qeScore: "comet" }))).toThrow(
      /available: chrf, kiwi/,
    );
  });
});

describe("guarded-qe with the router's post-hoc guard", () => {
  const guardQe = {
    method: "qe-adjusted" as const,
    signal: "small-confidence" as const,
    rule: "test",
    lambda: 10,
    tolerance: 0.05,
    severe_delta: 10,
    budgets: [0.3],
    grid: [],
    score_quantiles: PERCENT_QUANTILES,
  };
  const withConfidence = (missing: number) =>
    records().map((entry, index) => ({ ...entry, small_mean_logprob: index < missing ? null : -0.5 }));

  /** guarded-qe on records of which the first `missing` lack the small model's confidence. */
  const guardedQeWith = (missing: number) =>
    buildPolicies(
      ["guarded-qe"],
      inputs({
        segments: evalSegmentsFromDataset(meta(), withConfidence(missing)),
        router: { ...router({ gain: head(PERCENT_QUANTILES) }), guard_qe: guardQe },
        heads: { gain: Float64Array.from([0.1, 0.2, 0.3, 0.4, 0.5]) },
      }),
    );

  it("ranks by the guarded score when every record has the signal", () => {
    expect(only(guardedQeWith(0), "guarded-qe").family).toBe("router");
  });

  it("is what guarded ranks by when the router's guard is post-hoc, and the in-model guard where records lack it", () => {
    const postHocRouter = {
      ...router({ gain: head(PERCENT_QUANTILES), risk: head(PERCENT_QUANTILES) }),
      guard_qe: guardQe,
      guarded_by: "post-hoc" as const,
    };
    // The most promising segment comes from a confident small model: the post-hoc guard ranks it last.
    const varied = (missing: number) =>
      withConfidence(missing).map((entry, index) =>
        index === 4 ? { ...entry, small_mean_logprob: -0.01 } : entry,
      );
    const build = (missing: number) =>
      buildPolicies(
        ["routelmt", "guarded", "guarded-qe"],
        inputs({
          segments: evalSegmentsFromDataset(meta(), varied(missing)),
          router: postHocRouter,
          heads: {
            gain: Float64Array.from([0.1, 0.2, 0.3, 0.4, 0.5]),
            risk: Float64Array.from([0.9, 0.1, 0.1, 0.1, 0.1]),
          },
        }),
      );
    const both = build(0);
    const guarded = only(both, "guarded");
    expect(guarded.description).toMatch(/^Guarded RouteLMT by the router's guard, the post-hoc one/);
    for (const budget of [0.2, 0.4, 0.6])
      expect(routedIds(guarded, budget)).toEqual(routedIds(only(both, "guarded-qe"), budget));
    expect(routedIds(guarded, 0.2)).not.toEqual(routedIds(only(both, "routelmt"), 0.2));
    // Two records without the small model's confidence: guarded falls back to the vetoes, and says so.
    const lacking = build(2);
    expect(lacking.notes).toContainEqual(
      expect.stringMatching(
        /^guarded: the router's guard is post-hoc, but .*2 of 5 records lack.*in-model guard instead$/,
      ),
    );
    expect(only(lacking, "guarded").description).not.toMatch(/post-hoc/);
  });

  it("names the field the records lack instead of asking for --qe alone", () => {
    expect(guardedQeWith(2).skipped).toEqual([
      {
        name: "guarded-qe",
        reason: expect.stringMatching(/reads small_mean_logprob of each record, which 2 of 5 records lack/),
      },
    ]);
  });
});

describe("external scores", () => {
  async function scoreFile(lines: string[]): Promise<string> {
    const directory = await mkdtemp(path.join(tmpdir(), "routelmt-external-"));
    const file = path.join(directory, "scores.jsonl");
    await writeFile(file, `${lines.join("\n")}\n`);
    return file;
  }

  it("reads id/score lines and ranks by them, ignoring ids the dataset does not hold", async () => {
    const file = await scoreFile([
      ...IDS.map((id, index) => JSON.stringify({ id, score: index % 2 === 0 ? index : -index })),
      JSON.stringify({ id: "zz", score: 100 }),
    ]);
    const external = await readExternalScores("mine", file);
    const set = buildPolicies(["external:mine"], inputs({ externals: [external] }));
    expect(routedIds(only(set, "external:mine"), 0.4)).toEqual(["c", "e"]);
    expect(set.notes[0]).toMatch(/1 ids .* not in the dataset/);
  });

  it("names the file and line of a bad line or a duplicate id", async () => {
    const malformed = await scoreFile(['{"id":"a","score":1}', '{"id":"b","score":"high"}']);
    await expect(readExternalScores("x", malformed)).rejects.toThrow(`${malformed}:2:`);
    const duplicate = await scoreFile(['{"id":"a","score":1}', "", '{"id":"a","score":2}']);
    await expect(readExternalScores("x", duplicate)).rejects.toThrow(`${duplicate}:3: id "a" occurs twice`);
    const notJson = await scoreFile(["{oops"]);
    await expect(readExternalScores("x", notJson)).rejects.toThrow(`${notJson}:1:`);
    const noId = await scoreFile(['{"id":["a"],"score":1}']);
    await expect(readExternalScores("x", noId)).rejects.toThrow(
      `${noId}:1: expected an "id" (a string or number)`,
    );
  });

  it("reads a number id as the record id that reads the same, as collect and import do", async () => {
    const file = await scoreFile(['{"id":7,"score":0.5}', '{"id":"8","score":0.25}']);
    const external = await readExternalScores("numbers", file);
    expect([...external.scores]).toEqual([
      ["7", 0.5],
      ["8", 0.25],
    ]);
    const twice = await scoreFile(['{"id":7,"score":0.5}', '{"id":"7","score":0.25}']);
    await expect(readExternalScores("x", twice)).rejects.toThrow(`${twice}:2: id "7" occurs twice`);
  });

  it("requires a score for every dataset id", async () => {
    const file = await scoreFile(IDS.slice(0, 3).map((id) => JSON.stringify({ id, score: 1 })));
    const external = await readExternalScores("partial", file);
    expect(() => buildPolicies(["external:partial"], inputs({ externals: [external] }))).toThrow(
      `${file}: no score for 2 dataset ids ("d", "e")`,
    );
  });

  it("parses NAME=FILE", () => {
    expect(parseExternalFlag("comet=/tmp/a=b.jsonl")).toEqual({ name: "comet", file: "/tmp/a=b.jsonl" });
    expect(() => parseExternalFlag("=x")).toThrow(UsageError);
    expect(() => parseExternalFlag("name")).toThrow(UsageError);
  });
});
