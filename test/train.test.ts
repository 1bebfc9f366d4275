import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import {
  type DatasetMeta,
  type DatasetRecord,
  DatasetWriter,
  datasetFeatures,
  loadDataset,
} from "../src/dataset/index.js";
import {
  assertRouterMatches,
  loadRouter,
  parseRouter,
  predictHeads,
  qeGuardAdjusts,
  qeGuardReads,
  qeGuardWithoutLargeLikelihood,
  routerBlocks,
  routerFeatureSelection,
} from "../src/probe/router-file.js";
import { createRandom, normal, spearman } from "../src/stats/index.js";
import { collectText, runCliCaptured, spawnCli } from "./helpers/cli.js";

const DIM = 16;
let work: string;

/** A dataset whose gain is a known linear function of the features plus noise. */
async function writeSyntheticDataset(
  directory: string,
  {
    n,
    seed,
    fingerprint = "sha256:abc",
    withFeatures = true,
    tgtLang = "de",
    blocks = false,
    noGain = false,
    wordGain = false,
    lengthGain = false,
    confidenceLoss = false,
    largeLikelihoodLoss = false,
    truncationLoss = false,
  }: {
    n: number;
    seed: number;
    fingerprint?: string;
    withFeatures?: boolean;
    tgtLang?: string;
    /** Two named blocks, `last:final` (columns 0–7) and `mean:1` (8–15), the gain in `mean:1` only. */
    blocks?: boolean;
    /** Both models score alike on every segment: every gain is 0. */
    noGain?: boolean;
    /** Sources are sentences of a small vocabulary; the gain is +15 where one contains "zebra", features carry none. */
    wordGain?: boolean;
    /** Sources of 2–14 words; the gain is 2 per word, features carry none. */
    lengthGain?: boolean;
    /**
     * Records carry the small model's confidence; where it is high (the top sixth), the large model
     * loses 30 points on two segments in three — a loss the features do not show.
     */
    confidenceLoss?: boolean;
    /**
     * Records carry the small model's confidence (noise here) and the large model's likelihood of
     * the small translation; where the latter is high (the top sixth), the large model loses 30
     * points.
     */
    largeLikelihoodLoss?: boolean;
    /**
     * Records carry the small model's confidence (noise here); where the small translation came out
     * long for its source (a third of the segments), the large model loses 30 points — a loss only
     * the translation's length shows, so only the gain re-estimate can see it.
     */
    truncationLoss?: boolean;
  },
): Promise<void> {
  const random = createRandom(seed);
  const gainWeights = Array.from({ length: DIM }, (_, i) =>
    wordGain || lengthGain ? 0 : blocks ? (i >= 8 && i < 12 ? 3 - (i - 8) : 0) : i < 4 ? 3 - i : 0,
  );
  const vocabulary = ["a", "dog", "runs", "the", "park", "zebra", "man", "red", "car", "sits", "on", "grass"];
  const qualityWeights = Array.from({ length: DIM }, (_, i) => (i >= 4 && i < 8 ? 2 : 0));
  const records: DatasetRecord[] = [];
  const features = new Float32Array(n * DIM);
  for (let row = 0; row < n; row++) {
    let gain = 5;
    let quality = 50;
    for (let column = 0; column < DIM; column++) {
      const value = normal(random);
      features[row * DIM + column] = value;
      gain += gainWeights[column]! * value;
      quality += qualityWeights[column]! * value;
    }
    // Drawn only for word datasets, so the other datasets keep their values.
    const wordCount = lengthGain ? 2 + (random.nextUint32() % 13) : 5;
    const words =
      wordGain || lengthGain
        ? Array.from({ length: wordCount }, () => vocabulary[random.nextUint32() % vocabulary.length]!)
        : [];
    if (wordGain && words.includes("zebra")) gain += 15;
    if (lengthGain) gain += 2 * wordCount;
    // Drawn only for confidence datasets, so the other datasets keep their values.
    const confidence = confidenceLoss ? normal(random, -1, 0.4) : null;
    if (confidence !== null && confidence > -0.6 && random.nextUint32() % 3 !== 0) gain -= 30;
    const likelihood = largeLikelihoodLoss ? normal(random, -1, 0.4) : null;
    const noise = largeLikelihoodLoss ? normal(random, -1, 0.4) : null;
    if (likelihood !== null && likelihood > -0.6) gain -= 30;
    const smallWords = truncationLoss ? 2 + (random.nextUint32() % 6) : null;
    if (smallWords !== null && smallWords >= 6) gain -= 30;
    gain += normal(random, 0, 0.5);
    if (noGain) gain = 0;
    records.push({
      // Ids differ between datasets: one id with the same source and pair in two datasets is one segment twice.
      id: `d${seed}-r${row}`,
      src:
        wordGain || lengthGain
          ? `${words.join(" ")}.`
          : truncationLoss
            ? "x".repeat(20)
            : "x".repeat(1 + (row % 30)),
      ref: "y",
      src_lang: "en",
      tgt_lang: tgtLang,
      small: smallWords === null ? "s" : Array.from({ length: smallWords }, () => "wort").join(" "),
      large: "l",
      scores: { chrf: { small: quality, large: quality + gain } },
      q_small: quality,
      q_large: quality + gain,
      gain,
      src_chars: 1 + (row % 30),
      prompt_tokens: 10,
      entropy: 1,
      ...(confidence === null ? {} : { small_mean_logprob: confidence }),
      ...(likelihood === null ? {} : { small_mean_logprob: noise, large_logprob_of_small: likelihood }),
      ...(smallWords === null ? {} : { small_mean_logprob: normal(random, -1, 0.4) }),
    });
  }
  const meta: DatasetMeta = {
    n,
    dim: withFeatures ? DIM : null,
    label_metric: "chrf",
    label_higher_is_better: true,
    metric_signatures: { chrf: "nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:routelmt-test" },
    small: { spec: "small.gguf", fingerprint, arch: "llama", layer: "final" },
    large: { spec: "large.gguf" },
    template: "{src}: {text}\n{tgt}:",
    src_lang: "en",
    tgt_lang: tgtLang,
    created: new Date(0).toISOString(),
    routelmt_version: "test",
    source: { kind: "collect", input: "synthetic", decoding: {} },
    ...(blocks
      ? {
          feature_blocks: [
            { name: "last:final", pooling: "last" as const, layer: "final", dim: 8, offset: 0 },
            { name: "mean:1", pooling: "mean" as const, layer: 1, dim: 8, offset: 8 },
          ],
        }
      : {}),
  };
  const { writer } = await DatasetWriter.open(directory, { synthetic: seed }, withFeatures ? DIM : null);
  await writer.append(records, withFeatures ? features : null);
  await writer.finish(meta);
}

type CurvePolicy = { curve: { budget: number; severe_loss: number; mean_delta: number }[] };

/**
 * Held out at p = 0.3, guarded-qe routes fewer of the segments the large model ruins than RouteLMT
 * and loses no more than 5 % of its gain doing it; the report names the λ train chose.
 */
function expectGuardedQeHeldOut(
  summary: { policies: Record<string, CurvePolicy>; router: { guard_qe: { chosen_lambda: number } } },
  lambda: number,
): void {
  const at30 = (policy: CurvePolicy) => policy.curve.find((entry) => Math.abs(entry.budget - 0.3) < 1e-9)!;
  const guarded = at30(summary.policies["guarded-qe"]!);
  const plain = at30(summary.policies.routelmt!);
  expect(guarded.severe_loss).toBeLessThan(plain.severe_loss);
  expect(guarded.mean_delta).toBeGreaterThanOrEqual(0.95 * plain.mean_delta);
  expect(summary.router.guard_qe.chosen_lambda).toBe(lambda);
}

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), "routelmt-train-"));
  await writeSyntheticDataset(path.join(work, "a"), { n: 400, seed: 1 });
  await writeSyntheticDataset(path.join(work, "b"), { n: 200, seed: 2 });
  await writeSyntheticDataset(path.join(work, "test"), { n: 300, seed: 3 });
  await writeSyntheticDataset(path.join(work, "other-model"), {
    n: 100,
    seed: 4,
    fingerprint: "sha256:other",
  });
  await writeSyntheticDataset(path.join(work, "replay"), { n: 100, seed: 5, withFeatures: false });
  await writeSyntheticDataset(path.join(work, "blocks"), { n: 400, seed: 8, blocks: true });
  await writeSyntheticDataset(path.join(work, "blocks-test"), { n: 300, seed: 9, blocks: true });
  await writeSyntheticDataset(path.join(work, "no-gain"), { n: 100, seed: 10, noGain: true });
  await writeSyntheticDataset(path.join(work, "words"), { n: 400, seed: 11, wordGain: true });
  await writeSyntheticDataset(path.join(work, "words-test"), { n: 300, seed: 12, wordGain: true });
  await writeSyntheticDataset(path.join(work, "length"), { n: 400, seed: 13, lengthGain: true });
  await writeSyntheticDataset(path.join(work, "length-test"), { n: 300, seed: 14, lengthGain: true });
  await writeSyntheticDataset(path.join(work, "confidence"), { n: 400, seed: 15, confidenceLoss: true });
  await writeSyntheticDataset(path.join(work, "confidence-test"), { n: 300, seed: 16, confidenceLoss: true });
  await writeSyntheticDataset(path.join(work, "likelihood"), { n: 400, seed: 17, largeLikelihoodLoss: true });
  await writeSyntheticDataset(path.join(work, "truncation"), { n: 400, seed: 19, truncationLoss: true });
  await writeSyntheticDataset(path.join(work, "truncation-test"), { n: 300, seed: 20, truncationLoss: true });
  await writeSyntheticDataset(path.join(work, "likelihood-test"), {
    n: 300,
    seed: 18,
    largeLikelihoodLoss: true,
  });
});

/** Evaluates a router on a dataset of the work folder into report folder `name`, expects success, and reads the summary. */
async function evaluateOn(dataset: string, routerFile: string, name: string) {
  const report = path.join(work, name);
  const run = await runCliCaptured([
    "eval",
    "--data",
    path.join(work, dataset),
    "--router",
    routerFile,
    "--out",
    report,
  ]);
  expect(run.code).toBe(0);
  return { report, summary: JSON.parse(await readFile(path.join(report, "summary.json"), "utf8")) };
}

/** Trains on a dataset of the work folder with extra flags, expects success, and loads the router. */
async function trainOn(dataset: string, name: string, flags: string[] = []) {
  const out = path.join(work, name);
  const run = await runCliCaptured(["train", "--data", path.join(work, dataset), "--out", out, ...flags]);
  expect(run.code).toBe(0);
  return { out, run, router: await loadRouter(out) };
}

describe("routelmt train", () => {
  it("fits gain, quality and risk heads that rank held-out segments, from several datasets", async () => {
    const out = path.join(work, "router.json");
    const run = await runCliCaptured([
      "train",
      "--data",
      path.join(work, "a"),
      "--data",
      path.join(work, "b"),
      "--out",
      out,
      "--risk-delta",
      "2",
    ]);
    expect(run.stderr).not.toMatch(/error/);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/trained on 600 segments/);
    expect(run.stdout).toMatch(/^chosen \(\*\): last:final, /m);
    expect(run.stdout).toMatch(/^(More labels|The folds cannot tell)/m);
    const router = await loadRouter(out);
    expect(router.training.n).toBe(600);
    // A dataset from before blocks reads as one block named after its layer.
    expect(router.feature).toMatchObject({
      fingerprint: "sha256:abc",
      layer: "last:final",
      blocks: ["last:final"],
      dim: DIM,
    });
    expect(router.selection?.candidates.length).toBeGreaterThanOrEqual(3);
    expect(router.learning_curve?.points.map((point) => point.share)).toEqual([0.25, 0.5, 1]);
    expect(router.guard?.score_quantiles).toHaveLength(101);
    expect(router.heads.gain?.report.cv_spearman).toBeGreaterThan(0.9);
    expect(router.heads.quality?.report.cv_spearman).toBeGreaterThan(0.9);
    expect(router.heads.risk?.delta).toBe(2);
    expect(router.heads.gain?.score_quantiles).toHaveLength(101);

    const test = await loadDataset(path.join(work, "test"));
    assertRouterMatches(
      router,
      { fingerprint: "sha256:abc", layer: "final", dim: DIM, template: test.meta.template },
      "test",
    );
    const scores = predictHeads(router, test.features as Float32Array, test.records.length);
    const gains = test.records.map((record) => record.gain as number);
    expect(spearman(scores.gain as Float64Array, gains)).toBeGreaterThan(0.9);
    // The risk head's probability falls as gain rises.
    expect(spearman(scores.risk as Float64Array, gains)).toBeLessThan(-0.5);
  });

  it("is deterministic for a seed, including the MLP probe", async () => {
    const outputs = [];
    for (const name of ["m1.json", "m2.json"]) {
      const out = path.join(work, name);
      const run = await runCliCaptured([
        "train",
        "--data",
        path.join(work, "a"),
        "--out",
        out,
        "--probe",
        "mlp",
        "--select",
        "off",
        "--heads",
        "gain",
        "--seed",
        "7",
      ]);
      expect(run.code).toBe(0);
      outputs.push(await loadRouter(out));
    }
    expect(outputs[0]?.heads.gain?.model.kind).toBe("mlp");
    expect(outputs[0]?.heads.gain?.model).toEqual(outputs[1]?.heads.gain?.model);
    expect(outputs[0]?.learning_curve).toEqual({
      ...outputs[1]?.learning_curve,
      seconds: outputs[0]?.learning_curve?.seconds,
    });
    expect(outputs[0]?.heads.gain?.report.cv_spearman).toBeGreaterThan(0.8);
    // Twenty-odd MLP fits per run (CV, nested CV, learning curve): minutes on a loaded machine.
  }, 240_000);

  it("refuses datasets from another small model and replay data without features", async () => {
    const mixed = await runCliCaptured([
      "train",
      "--data",
      path.join(work, "a"),
      "--data",
      path.join(work, "other-model"),
      "--out",
      path.join(work, "x.json"),
    ]);
    expect(mixed.code).toBe(2);
    expect(mixed.stderr).toMatch(/cannot be trained with .*small-model fingerprint/);
    const replay = await runCliCaptured([
      "train",
      "--data",
      path.join(work, "replay"),
      "--out",
      path.join(work, "y.json"),
    ]);
    expect(replay.code).toBe(2);
    expect(replay.stderr).toMatch(/has no features \(replay data\)/);
    const heads = await runCliCaptured([
      "train",
      "--data",
      path.join(work, "a"),
      "--out",
      path.join(work, "z.json"),
      "--heads",
      "gain,speed",
    ]);
    expect(heads.stderr).toMatch(/unknown head "speed"/);
  });

  it("refuses an unusable --out with one line naming it and leaves no temporary file", async () => {
    const folder = path.join(work, "outputs");
    await mkdir(path.join(folder, "a-directory"), { recursive: true });
    await writeFile(path.join(folder, "a-file"), "x");
    for (const [out, code] of [
      [path.join(folder, "a-directory"), "EISDIR"],
      [path.join(folder, "a-file", "router.json"), "ENOTDIR"],
      [path.join(folder, "missing", "router.json"), "ENOENT"],
    ] as const) {
      const run = await runCliCaptured([
        "train",
        ...["--data", path.join(work, "b"), "--out", out],
        "--heads",
        "gain",
      ]);
      expect(run.code).toBe(2);
      expect(run.stderr.trimEnd().split("\n")).toEqual([
        expect.stringContaining(`${out}: cannot write (${code}`),
      ]);
    }
    expect((await readdir(folder)).sort()).toEqual(["a-directory", "a-file"]);
  });

  it("writes no router when no head it was asked for could be trained", async () => {
    const out = path.join(work, "no-heads.json");
    // No training gain is below −10⁹: the risk head has no positive to learn from.
    const run = await runCliCaptured([
      "train",
      ...["--data", path.join(work, "b"), "--out", out],
      ...["--heads", "risk", "--risk-delta", "1e9"],
    ]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/note: risk head skipped: 0 of \d+ training segments have g < -1000000000/);
    expect(run.stderr).toMatch(/routelmt: no head could be trained \(asked: risk; see the notes above\)/);
    expect(existsSync(out)).toBe(false);
    // p = 1 routes every segment whatever the probe: no budget to choose one by.
    const everything = await runCliCaptured([
      "train",
      "--data",
      path.join(work, "b"),
      "--out",
      out,
      "--budgets",
      "0.3,1",
    ]);
    expect(everything.code).toBe(2);
    expect(everything.stderr).toMatch(/--budgets: "1" is not a fraction in \(0, 1\)/);
  });

  it("interrupted mid-run, leaves no temporary file and the old --out as it was", async () => {
    const folder = await mkdtemp(path.join(work, "interrupted-"));
    const out = path.join(folder, "router.json");
    await writeFile(out, "the previous router\n");
    const child = spawnCli([
      "train",
      "--data",
      path.join(work, "a"),
      "--data",
      path.join(work, "b"),
      "--out",
      out,
    ]);
    const stderr = collectText(child.stderr);
    const exited = new Promise<NodeJS.Signals | null>((resolve) =>
      child.once("exit", (_, signal) => resolve(signal)),
    );
    // The first candidate line means training is under way.
    while (!stderr().includes("candidate")) await new Promise((resolve) => setTimeout(resolve, 50));
    child.kill("SIGTERM");
    expect(await exited).toBe("SIGTERM");
    expect(await readdir(folder)).toEqual(["router.json"]);
    expect(await readFile(out, "utf8")).toBe("the previous router\n");
  }, 60_000);

  it("refuses an id twice in one dataset and one segment in two datasets, naming both lines", async () => {
    const repeated = path.join(work, "repeated-id");
    await writeSyntheticDataset(repeated, { n: 50, seed: 6 });
    const recordsFile = path.join(repeated, "records.jsonl");
    const records = (await readFile(recordsFile, "utf8")).split("\n");
    records[9] = (records[9] as string).replace('"id":"d6-r9"', '"id":"d6-r3"');
    await writeFile(recordsFile, records.join("\n"));
    const run = await runCliCaptured(["train", "--data", repeated, "--out", path.join(work, "r1.json")]);
    expect(run.code).toBe(2);
    expect(run.stderr).toBe(`routelmt: ${recordsFile}:10: duplicate id "d6-r3" (first on line 4)\n`);

    const a = path.join(work, "a");
    const linked = path.join(work, "a-link");
    await symlink(a, linked);
    for (const second of [a, `${work}/./a`, linked]) {
      const twice = await runCliCaptured([
        "train",
        ...["--data", a, "--data", second],
        "--out",
        path.join(work, "r2.json"),
      ]);
      expect(twice.code).toBe(2);
      expect(twice.stderr).toBe(
        `routelmt: ${path.join(second, "records.jsonl")}:1: segment "d1-r0" (en→de) is also ${path.join(a, "records.jsonl")}:1; pass each dataset once, or collect each input once\n`,
      );
    }
    expect(existsSync(path.join(work, "r1.json")) || existsSync(path.join(work, "r2.json"))).toBe(false);
  });

  it("accepts the same ids in datasets of other language pairs", async () => {
    const german = path.join(work, "pair-de");
    const french = path.join(work, "pair-fr");
    await writeSyntheticDataset(german, { n: 120, seed: 7 });
    await writeSyntheticDataset(french, { n: 120, seed: 7, tgtLang: "fr" });
    const run = await runCliCaptured([
      "train",
      ...["--data", german, "--data", french, "--out", path.join(work, "pairs.json"), "--heads", "gain"],
    ]);
    expect(run.stderr).not.toMatch(/routelmt:/);
    expect(run.code).toBe(0);
    expect((await loadRouter(path.join(work, "pairs.json"))).language_pairs).toEqual([
      ["en", "de"],
      ["en", "fr"],
    ]);
    // A router trained on en→de only says so when evaluated on en→fr, and not on its own pair.
    const germanRouter = path.join(work, "pair-de.json");
    await runCliCaptured(["train", "--data", german, "--out", germanRouter, "--heads", "gain"]);
    const onFrench = await runCliCaptured(["eval", "--data", french, "--router", germanRouter]);
    expect(onFrench.code, onFrench.stderr).toBe(0);
    expect(onFrench.stderr).toContain(
      "note: 120 of 120 segments are of language pairs the router was not trained on (en→fr; trained on en→de)",
    );
    const onGerman = await runCliCaptured(["eval", "--data", german, "--router", germanRouter]);
    expect(onGerman.stderr).not.toMatch(/not trained on/);
  });

  it("chooses the feature block that carries the gain, and eval reads exactly that block", async () => {
    const { out, run, router } = await trainOn("blocks", "blocks.json", ["--probes", "ridge,ridge-rank"]);
    expect(run.stdout).toMatch(/^chosen \(\*\): mean:1, /m);
    expect(router.feature).toMatchObject({ layer: "mean:1", blocks: ["mean:1"], dim: 8 });
    expect(routerFeatureSelection(router)).toBe("mean:1");
    const chosen = router.selection!.candidates[router.selection!.chosen]!;
    const noise = router.selection!.candidates.find((candidate) => candidate.blocks.join() === "last:final")!;
    expect(chosen.score).toBeGreaterThan(noise.score);

    const { summary } = await evaluateOn("blocks-test", out, "blocks-report");
    // The gain lives in mean:1 only: scoring any other columns would rank at random.
    expect(summary.policies.routelmt.spearman).toBeGreaterThan(0.9);
    expect(summary.router.blocks).toEqual(["mean:1"]);
    expect(summary.router.selection.chosen.blocks).toEqual(["mean:1"]);
  });

  it("offers the words block, keeps it where the gain is in the source's words, and eval computes it", async () => {
    const { out, router } = await trainOn("words", "words.json", ["--probes", "ridge"]);
    // The words carry the gain: the router keeps them, and no candidate without them comes close.
    const blocks = router.feature.blocks ?? [];
    expect(blocks).toContain("words");
    const widths: Record<string, number> = { "last:final": DIM, words: 1024, length: 2 };
    expect(router.feature.dim).toBe(blocks.reduce((sum, name) => sum + widths[name]!, 0));
    const selection = router.selection!;
    const withoutWords = selection.candidates.filter((candidate) => !candidate.blocks.includes("words"));
    const chosenScore = selection.candidates[selection.chosen]!.score;
    expect(Math.max(...withoutWords.map((candidate) => candidate.score))).toBeLessThan(0.9 * chosenScore);
    // The model is opened with the one view every engine gives; the words come from the text.
    expect(routerFeatureSelection(router)).toBe("last:final");
    // A live small model of 16 values: the words block follows them.
    const spans = assertRouterMatches(
      router,
      { fingerprint: "sha256:abc", template: "{src}: {text}\n{tgt}:", dim: DIM, layer: "final" },
      "the small model",
    );
    expect(spans.find((span) => span.name === "words")).toEqual({
      name: "words",
      pooling: "text",
      layer: "source",
      dim: 1024,
      offset: DIM,
    });

    const { summary } = await evaluateOn("words-test", out, "words-report");
    expect(summary.policies.routelmt.spearman).toBeGreaterThan(0.6);

    const { router: noWords } = await trainOn("words", "no-words.json", [
      ...["--probes", "ridge", "--source-blocks", "off"],
    ]);
    expect(
      noWords.selection!.candidates.some((candidate) =>
        candidate.blocks.some((block) => block === "words" || block === "length"),
      ),
    ).toBe(false);

    // Serving appends the words after the model's values, so a router naming it elsewhere is refused.
    const misplaced = {
      ...router,
      feature: { ...router.feature, blocks: ["words", "last:final"], layer: "words,last:final" },
    };
    expect(() => parseRouter(JSON.stringify(misplaced), "r.json")).toThrow(
      /source-text blocks must come last, in this order: words/,
    );
  });

  it("offers the length block, keeps it where the gain follows the source's length", async () => {
    const { router } = await trainOn("length", "length.json", ["--probes", "ridge"]);
    // Two values carry it all: the simplest candidate within noise of the best.
    expect(router.feature.blocks).toEqual(["length"]);
    expect(router.feature.dim).toBe(2);
    const test = await loadDataset(path.join(work, "length-test"));
    const scores = predictHeads(router, datasetFeatures(test, ["length"]).features, test.records.length);
    const gains = test.records.map((record) => record.gain as number);
    expect(spearman(scores.gain as Float64Array, gains)).toBeGreaterThan(0.9);
  });

  it("fits the post-hoc guard on the small model's confidence, and eval's guarded-qe ranks with it", async () => {
    const { out, run, router } = await trainOn("confidence", "confidence.json", ["--probes", "ridge"]);
    expect(run.stdout).toMatch(
      /^post-hoc guard: rank by gain − λ·\(the small model's mean token log-probability/m,
    );
    const guard = router.guard_qe!;
    expect(guard.method).toBe("qe-adjusted");
    expect(qeGuardAdjusts(guard)).toBe(true);
    expect(guard.score_quantiles).toHaveLength(101);
    // Cross-validated in training: fewer severe losses at the chosen λ than without the guard.
    const chosen = guard.grid.find((point) => point.lambda === guard.lambda)!;
    const mean = (values: readonly (number | null)[]) =>
      values.reduce((sum: number, value) => sum + (value ?? 0), 0) / values.length;
    expect(mean(chosen.severe_loss)).toBeLessThan(mean(guard.grid[0]!.severe_loss));

    // The risk head sees nothing of the confidence: the in-model guard cuts nothing, the post-hoc does,
    // so the guarded policy ranks by the post-hoc guard.
    expect(router.guard?.lambda).toBe(0);
    expect(router.guarded_by).toBe("post-hoc");
    expect(run.stdout).toMatch(/^guarded policy: the post-hoc guard \(the in-model guard cut no/m);

    const { report, summary } = await evaluateOn("confidence-test", out, "confidence-report");
    expect(summary.policies["guarded-qe"].description).toMatch(/small model's confidence/);
    expectGuardedQeHeldOut(summary, guard.lambda);
    expect(summary.policies.guarded.curve).toEqual(summary.policies["guarded-qe"].curve);
    expect(summary.router.guarded_by).toBe("post-hoc");
    expect(await readFile(path.join(report, "report.md"), "utf8")).toContain(
      "Post-hoc guard (the one the guarded policy ranks by): guarded-qe",
    );
    // Asked for, the in-model guard: guarded ranks as RouteLMT here (its λ is 0).
    const { out: inModelOut, router: inModel } = await trainOn("confidence", "confidence-in-model.json", [
      ...["--probes", "ridge", "--guard", "in-model"],
    ]);
    expect(inModel.guarded_by).toBe("in-model");
    const { summary: inModelSummary } = await evaluateOn("confidence-test", inModelOut, "in-model-report");
    expect(inModelSummary.policies.guarded.curve).toEqual(inModelSummary.policies.routelmt.curve);

    // Without the confidence in every record there is no post-hoc guard, and guarded-qe needs --qe;
    // --guard post-hoc is refused before training.
    const { router: plain } = await trainOn("a", "no-confidence.json", ["--probes", "ridge"]);
    expect(plain.guard_qe).toBeUndefined();
    expect(plain.guarded_by ?? "in-model").toBe("in-model");
    const refused = await runCliCaptured([
      ...["train", "--data", path.join(work, "a"), "--out", path.join(work, "refused.json")],
      ...["--guard", "post-hoc"],
    ]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(
      /--guard post-hoc needs every record to carry the small model's confidence/,
    );
    expect(refused.stderr).not.toMatch(/candidate /);
    expect(() => parseRouter(JSON.stringify({ ...plain, guarded_by: "post-hoc" }), "r.json")).toThrow(
      /guarded_by.*is post-hoc, but the router has no post-hoc guard/,
    );
  });

  it("chooses the post-hoc signal that cuts severe losses: the large model's likelihood of the small translation", async () => {
    const { out, run, router } = await trainOn("likelihood", "likelihood.json", ["--probes", "ridge"]);
    expect(run.stdout).toMatch(
      /^post-hoc guard: rank by (gain|the gain re-estimated after the decode from [a-z, -]+) − λ·\(the large model's mean token log-probability/m,
    );
    const guard = router.guard_qe!;
    expect(guard.signal).toBe("large-likelihood");
    expect(qeGuardReads(guard, "large-likelihood")).toBe(true);
    // Both signals were measured, each on the gain head's prediction and on the re-estimated gain;
    // the small model's confidence (noise here) cut nothing.
    const candidates = guard.signal_choice!.candidates;
    expect(
      candidates.map((candidate) => `${candidate.signal}${candidate.restack ? " re-estimated" : ""}`),
    ).toEqual([
      "small-confidence",
      "large-likelihood",
      "small-confidence re-estimated",
      "large-likelihood re-estimated",
    ]);
    expect(candidates[0]!.lambda).toBe(0);
    expect(candidates[3]!.restack!.inputs).toContain("large-likelihood");
    expect(candidates[2]!.restack!.inputs).not.toContain("large-likelihood");
    // Each with its score quantiles, for serving without the large model's likelihood where the engines cannot give it.
    expect(candidates.map((candidate) => candidate.score_quantiles?.length)).toEqual([101, 101, 101, 101]);
    const fallback = qeGuardWithoutLargeLikelihood(router)!;
    expect(qeGuardReads(fallback, "large-likelihood")).toBe(false);
    expect(candidates.some((candidate) => candidate.score_quantiles === fallback.score_quantiles)).toBe(true);
    const { summary } = await evaluateOn("likelihood-test", out, "likelihood-report");
    const qe = summary.policies["guarded-qe"];
    expect(qe.description).toMatch(/large model's likelihood of the small translation|large-likelihood/);
    expect(qe.cost).toMatch(/large-model prefill/);
    expectGuardedQeHeldOut(summary, guard.lambda);
  });

  it("re-estimates the gain after the decode where the small translation's length shows the loss", async () => {
    const { out, run, router } = await trainOn("truncation", "truncation.json", ["--probes", "ridge"]);
    const guard = router.guard_qe!;
    expect(guard.restack?.inputs).toEqual(["gain", "small-confidence", "log-prompt-tokens", "length-ratio"]);
    expect(run.stdout).toMatch(
      /^post-hoc guard: rank by the gain re-estimated after the decode from gain, /m,
    );
    // The plain guard on the small model's confidence (noise here) cut nothing: λ = 0.
    expect(guard.signal_choice!.candidates[0]).toMatchObject({ signal: "small-confidence", lambda: 0 });
    const { summary } = await evaluateOn("truncation-test", out, "truncation-report");
    expect(summary.policies["guarded-qe"].description).toMatch(/re-estimated from the predicted gain and/);
    expectGuardedQeHeldOut(summary, guard.lambda);
  });

  it("restricts the selection to --blocks", async () => {
    const { out, router } = await trainOn("blocks", "restricted.json", [
      ...["--blocks", "mean:1", "--probes", "ridge"],
    ]);
    expect(router.feature.blocks).toEqual(["mean:1"]);
    const candidates = router.selection!.candidates;
    expect(candidates.every((candidate) => candidate.blocks.join() === "mean:1")).toBe(true);
    // Columns 8–15 carry the gain; any other columns would rank at random, in CV and held out.
    expect(candidates[0]!.spearman).toBeGreaterThan(0.9);
    const test = await loadDataset(path.join(work, "blocks-test"));
    const scores = predictHeads(router, datasetFeatures(test, ["mean:1"]).features, test.records.length);
    const gains = test.records.map((record) => record.gain as number);
    expect(spearman(scores.gain as Float64Array, gains)).toBeGreaterThan(0.9);
    const wrong = await runCliCaptured([
      "train",
      ...["--data", path.join(work, "blocks"), "--out", out, "--blocks", "mean:7"],
    ]);
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toMatch(/no feature block mean:7/);
  });

  it("keeps one ridge on every block with --select off", async () => {
    const { router } = await trainOn("blocks", "off.json", ["--select", "off"]);
    expect(router.feature).toMatchObject({
      layer: "last:final,mean:1",
      blocks: ["last:final", "mean:1"],
      dim: DIM,
    });
    expect(router.selection).toBeUndefined();
    expect(router.heads.gain?.report.probe).toBe("ridge");
    expect(router.learning_curve?.verdict).toMatch(/rising|flat|uncertain/);
  });

  it("says so when every training gain is the same, and still writes a router", async () => {
    const out = path.join(work, "no-gain.json");
    const run = await runCliCaptured(["train", "--data", path.join(work, "no-gain"), "--out", out]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toMatch(
      /note: every training gain is 0\.00: the two models score alike on every segment/,
    );
    expect(existsSync(out)).toBe(true);
    const varied = await runCliCaptured([
      "train",
      "--data",
      path.join(work, "b"),
      "--out",
      path.join(work, "b.json"),
    ]);
    expect(varied.stderr).not.toMatch(/every training gain/);
  });

  it("loads a router from before blocks as one block named after its layer", async () => {
    const current = JSON.parse(await readFile(path.join(work, "router.json"), "utf8"));
    const { blocks, ...feature } = current.feature;
    const old = { ...current, feature: { ...feature, layer: "final" } };
    delete old.selection;
    delete old.learning_curve;
    delete old.guard;
    const file = path.join(work, "old-router.json");
    await writeFile(file, JSON.stringify(old));
    const router = await loadRouter(file);
    expect(routerBlocks(router)).toEqual(["last:final"]);
    expect(routerFeatureSelection(router)).toBe("last:final");
    const test = await loadDataset(path.join(work, "test"));
    expect(
      assertRouterMatches(
        router,
        { fingerprint: "sha256:abc", template: test.meta.template, dim: DIM, blocks: test.blocks },
        "test",
      ),
    ).toEqual(test.blocks);
  });

  it("rejects a router used with a different model, layer or template", async () => {
    const router = await loadRouter(path.join(work, "router.json"));
    expect(() =>
      assertRouterMatches(
        router,
        { fingerprint: "sha256:abc", layer: "8", dim: DIM, template: "{src}: {text}\n{tgt}:" },
        "the small model",
      ),
    ).toThrow(/does not match the small model: feature blocks: router last:final, the small model last:8/);
    expect(() =>
      assertRouterMatches(
        router,
        { fingerprint: "sha256:abc", layer: "final", dim: DIM, template: "{text}" },
        "x",
      ),
    ).toThrow(/prompt template/);
  });

  it("matches a router written with a layer list to the views it meant", async () => {
    const current = JSON.parse(await readFile(path.join(work, "router.json"), "utf8"));
    const { blocks, ...feature } = current.feature;
    const file = path.join(work, "layer-list-router.json");
    await writeFile(file, JSON.stringify({ ...current, feature: { ...feature, layer: "final" } }));
    const router = await loadRouter(file);
    expect(router.feature.layer).toBe("final");
    const source = { fingerprint: "sha256:abc", dim: DIM, template: "{src}: {text}\n{tgt}:" };
    expect(() => assertRouterMatches(router, { ...source, layer: "last:final" }, "x")).not.toThrow();
    const view = {
      name: "last:final",
      pooling: "last" as const,
      layer: "final" as const,
      dim: DIM,
      offset: 0,
    };
    expect(() =>
      assertRouterMatches(router, { ...source, layer: "last:final", views: [view] }, "x"),
    ).not.toThrow();
    expect(() => assertRouterMatches(router, { ...source, layer: "mean:final" }, "x")).toThrow(
      /feature blocks/,
    );
  });
});
