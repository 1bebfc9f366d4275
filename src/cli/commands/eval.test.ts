import { existsSync } from "node:fs";
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { DatasetWriter } from "../../dataset/index.js";
import type { DatasetMeta, DatasetRecord } from "../../dataset/types.js";
import type { EvalSummary } from "../../eval/run-eval.js";
import { fitLogistic } from "../../probe/logistic.js";
import type { ProbeModel } from "../../probe/probe-model.js";
import { predictRows } from "../../probe/probe-model.js";
import { fitRidge } from "../../probe/ridge.js";
import type { RouterFile, RouterHead } from "../../probe/router-file.js";
import { createRandom, normal } from "../../stats/random.js";
import type { CliIo } from "../io.js";
import { runCli } from "../main.js";

const DIM = 6;
const COUNT = 240;

interface Captured {
  code: number;
  stdout: string;
  stderr: string;
}

async function cli(args: string[]): Promise<Captured> {
  let stdout = "";
  let stderr = "";
  const io: CliIo = {
    stdout: (text) => {
      stdout += text;
    },
    stderr: (text) => {
      stderr += text;
    },
    isTty: false,
  };
  const code = await runCli(args, io);
  return { code, stdout, stderr };
}

function datasetMeta(withFeatures: boolean): DatasetMeta {
  return {
    n: COUNT,
    dim: withFeatures ? DIM : null,
    label_metric: "chrf",
    label_higher_is_better: true,
    metric_signatures: { chrf: "nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.5.1" },
    small: withFeatures
      ? { spec: "small.gguf", fingerprint: "sha256:small", arch: "llama", layer: "final" }
      : { spec: null, fingerprint: null, arch: null, layer: null, field: "systems.small" },
    large: { spec: withFeatures ? "large.gguf" : null },
    template: withFeatures ? "Translate: {text}" : null,
    src_lang: "en",
    tgt_lang: "de",
    created: "2026-01-01T00:00:00.000Z",
    routelmt_version: "0.0.0",
    source: withFeatures
      ? { kind: "collect", input: "in.jsonl", decoding: {} }
      : { kind: "import", input: "in.jsonl", fields: {}, skipped_null_label: 0 },
  };
}

/** Features x ~ N(0, 1); gain and small quality are linear in x plus noise, so ridge heads can learn them. */
function syntheticRows(seed: number) {
  const random = createRandom(seed);
  const features = new Float32Array(COUNT * DIM);
  const records: DatasetRecord[] = [];
  for (let row = 0; row < COUNT; row++) {
    for (let column = 0; column < DIM; column++) features[row * DIM + column] = normal(random);
    const x = (column: number) => features[row * DIM + column]!;
    const gain = 2 + 6 * x(0) - 3 * x(1) + normal(random, 0, 3);
    const small = 50 + 8 * x(2) + normal(random, 0, 3);
    records.push({
      id: `seg-${row}`,
      src: `source <${row}> & "quoted"`,
      ref: null,
      src_lang: "en",
      tgt_lang: "de",
      small: "s",
      large: "l",
      scores: {
        chrf: { small, large: small + gain },
        kiwi: { small: 0.5 + small / 200 + normal(random, 0, 0.02), large: null },
      },
      q_small: small,
      q_large: small + gain,
      gain,
      src_chars: 20 + Math.round(Math.abs(normal(random, 0, 40))),
      prompt_tokens: null,
      entropy: null,
    });
  }
  return { features, records };
}

async function writeDataset(directory: string, withFeatures: boolean, seed: number) {
  const { features, records } = syntheticRows(seed);
  const { writer } = await DatasetWriter.open(directory, { test: seed }, withFeatures ? DIM : null);
  await writer.append(records, withFeatures ? features : null);
  await writer.finish(datasetMeta(withFeatures));
  return { features, records };
}

function head(model: ProbeModel, features: Float32Array, target: string): RouterHead {
  const scores = Array.from(predictRows(model, features, COUNT)).sort((a, b) => a - b);
  return {
    model,
    report: {
      target,
      probe: model.kind === "logistic" ? "logistic" : "ridge",
      folds: 1,
      n: COUNT,
      cv_spearman: null,
      cv_pearson: null,
      cv_spearman_gain: null,
      cv_mse: null,
      lambda: 1,
    },
    score_quantiles: Array.from(
      { length: 101 },
      (_, index) => scores[Math.round((index / 100) * (COUNT - 1))]!,
    ),
  };
}

function fitRouter(
  features: Float32Array,
  records: DatasetRecord[],
  fingerprint = "sha256:small",
): RouterFile {
  const matrix = { features, rows: COUNT, dim: DIM };
  const gains = records.map((record) => record.gain!);
  const gainModel = fitRidge(matrix, gains, { lambda: 1 });
  const qualityModel = fitRidge(
    matrix,
    records.map((record) => record.q_small!),
    { lambda: 1 },
  );
  const riskModel = fitLogistic(
    matrix,
    gains.map((gain) => (gain < -10 ? 1 : 0)),
    { lambda: 1 },
  );
  return {
    format: 1,
    routelmt_version: "0.0.0",
    created: "2026-01-01T00:00:00.000Z",
    label_metric: "chrf",
    label_signature: null,
    label_higher_is_better: true,
    feature: {
      fingerprint,
      arch: "llama",
      layer: "final",
      dim: DIM,
      template: "Translate: {text}",
      spec: "small.gguf",
    },
    src_lang: "en",
    tgt_lang: "de",
    language_pairs: [["en", "de"]],
    training: { n: COUNT, datasets: ["train"], seed: 0, folds: 1 },
    heads: {
      gain: head(gainModel, features, "gain"),
      quality: head(qualityModel, features, "q_small"),
      risk: { ...head(riskModel, features, "gain < -10"), delta: 10 },
    },
  };
}

describe("routelmt eval", () => {
  let root: string;
  let collected: string;
  let replay: string;
  let routerFile: string;

  beforeAll(async () => {
    root = await mkdtemp(path.join(tmpdir(), "routelmt-eval-cli-"));
    collected = path.join(root, "collected");
    replay = path.join(root, "replay");
    const { features, records } = await writeDataset(collected, true, 3);
    await writeDataset(replay, false, 4);
    // The router is trained on other data from the same distribution and scored on this one.
    const training = syntheticRows(99);
    routerFile = path.join(root, "router.json");
    await writeFile(routerFile, JSON.stringify(fitRouter(training.features, training.records)));
    expect(records).toHaveLength(COUNT);
    expect(features).toHaveLength(COUNT * DIM);
  });

  it("evaluates a collected dataset with a router and writes the whole report", async () => {
    const out = path.join(root, "report-collected");
    const result = await cli([
      "eval",
      "--data",
      collected,
      "--router",
      routerFile,
      "--out",
      out,
      "--qe",
      "kiwi",
    ]);
    expect(result.stderr).not.toMatch(/unexpected/);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/At p = 30 %:/);
    expect(result.stdout).toMatch(/^routelmt\s+\d/m);
    expect(result.stdout).toMatch(/^oracle-gain\s+\d/m);
    expect(result.stdout).toMatch(/RouteLMT − \S+ MeanDelta: .*95 % CI \[/);
    expect(result.stdout).toContain(`report: ${path.join(out, "report.html")}`);
    // Entropy is unknown in this data: skipped with a note, not an error.
    expect(result.stderr).toContain("note: entropy skipped: no segment has an entropy value");
    for (const file of [
      "summary.json",
      "curves.csv",
      "pareto.svg",
      "pareto.png",
      "report.html",
      "report.md",
    ]) {
      expect(existsSync(path.join(out, file)), file).toBe(true);
    }
    const summary = JSON.parse(await readFile(path.join(out, "summary.json"), "utf8")) as EvalSummary;
    expect(Object.keys(summary.policies)).toEqual([
      "routelmt",
      "routelmt-q",
      "guarded",
      "guarded-qe",
      "length",
      "random",
      "oracle-gain",
      "oracle-quality",
    ]);
    expect(summary.policies.routelmt!.spearman!).toBeGreaterThan(0.6);
    expect(summary.policies["guarded-qe"]!.family).toBe("router");
    expect(summary.ci["0.3"]!.lo).toBeGreaterThan(0);
    expect(summary.severe_delta).toBe(10);
    const csv = (await readFile(path.join(out, "curves.csv"), "utf8")).trim().split("\n");
    expect(csv).toHaveLength(1 + 8 * 21);
  }, 60_000);

  it("evaluates a replay dataset without features: router policies skipped with a note", async () => {
    const externalFile = path.join(root, "external.jsonl");
    const { records } = syntheticRows(4);
    await writeFile(
      externalFile,
      records.map((record) => JSON.stringify({ id: record.id, score: record.gain! })).join("\n"),
    );
    const result = await cli([
      "eval",
      "--data",
      replay,
      "--budgets",
      "0,0.1,0.3,1",
      "--qe",
      "kiwi",
      "--external",
      `cheat=${externalFile}`,
      "--severe-delta",
      "5",
    ]);
    expect(result.code).toBe(0);
    expect(result.stderr).toContain(
      "note: routelmt skipped: needs a router and features (no --router given)",
    );
    expect(result.stderr).toContain("note: guarded skipped:");
    const summary = JSON.parse(
      await readFile(path.join(replay, "eval", "summary.json"), "utf8"),
    ) as EvalSummary;
    expect(Object.keys(summary.policies).sort()).toEqual(
      ["external:cheat", "guarded-qe", "length", "oracle-gain", "oracle-quality", "random"].sort(),
    );
    expect(summary.budgets).toEqual([0, 0.1, 0.3, 1]);
    expect(summary.severe_delta).toBe(5);
    expect(summary.ci).toEqual({});
    expect(summary.policies["guarded-qe"]!.family).toBe("baseline");
    // The external scores are the true gains: it matches the gain oracle.
    expect(summary.policies["external:cheat"]!.curve).toEqual(
      summary.policies["oracle-gain"]!.curve.map((entry, index) => ({
        ...entry,
        streaming: summary.policies["external:cheat"]!.curve[index]!.streaming,
      })),
    );
    const html = await readFile(path.join(replay, "eval", "report.html"), "utf8");
    expect(html).toContain(
      "RouteLMT was not evaluated (it needs a router and features (no --router given)).",
    );
    expect(html).toContain("guarded-qe must decode the small model");
  }, 60_000);

  it("refuses a router trained on another small model, and a router on replay data", async () => {
    const training = syntheticRows(99);
    const otherRouter = path.join(root, "other-router.json");
    await writeFile(
      otherRouter,
      JSON.stringify(fitRouter(training.features, training.records, "sha256:other")),
    );
    const mismatch = await cli([
      "eval",
      "--data",
      collected,
      "--router",
      otherRouter,
      "--out",
      path.join(root, "x"),
    ]);
    expect(mismatch.code).toBe(2);
    expect(mismatch.stderr).toMatch(
      /^routelmt: the router does not match the dataset .*small-model fingerprint: router "sha256:other", .* "sha256:small"/,
    );
    const onReplay = await cli([
      "eval",
      "--data",
      replay,
      "--router",
      routerFile,
      "--out",
      path.join(root, "y"),
    ]);
    expect(onReplay.code).toBe(2);
    expect(onReplay.stderr).toMatch(/has no features \(replay data\)/);
  });

  it("reports bad flags as usage errors", async () => {
    const badBudget = await cli(["eval", "--data", replay, "--budgets", "0.1,2"]);
    expect(badBudget.code).toBe(2);
    expect(badBudget.stderr).toMatch(/--budgets: "2" is not a fraction/);
    const badPolicy = await cli(["eval", "--data", replay, "--policies", "length,magic"]);
    expect(badPolicy.code).toBe(2);
    expect(badPolicy.stderr).toMatch(/unknown policy "magic"/);
    const missingExternal = await cli([
      "eval",
      "--data",
      replay,
      "--external",
      `x=${path.join(root, "missing.jsonl")}`,
    ]);
    expect(missingExternal.code).toBe(2);
    expect(missingExternal.stderr).toMatch(/missing\.jsonl: cannot read file/);
    // A negative delta would count gains above 0 as losses: refused by eval, and by train's risk label.
    for (const args of [
      ["eval", "--data", replay, "--severe-delta", "-5"],
      ["train", "--data", replay, "--out", path.join(root, "never.json"), "--risk-delta", "-1"],
    ]) {
      const negative = await cli(args);
      expect({ args, code: negative.code }).toEqual({ args, code: 2 });
      expect(negative.stderr).toMatch(/--(severe|risk)-delta must be a non-negative number, got "-\d"/);
    }
    expect(existsSync(path.join(root, "never.json"))).toBe(false);
  });
});
