import { createHash } from "node:crypto";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import type { Command } from "commander";
import type { CollectInput, CollectSegment } from "../../collect/collect-input.js";
import { collectDataset, readCollectInput } from "../../collect/index.js";
import { FLORES_LICENSE, floresSplits } from "../../collect/public-data.js";
import { loadDataset } from "../../dataset/index.js";
import { UsageError } from "../../errors/index.js";
import { evaluateDataset, formatEvalSummary } from "../../eval/evaluate-dataset.js";
import { AUTO_FEATURE_VIEWS } from "../../features/index.js";
import { createMetric } from "../../metrics/index.js";
import { severeDeltaFor } from "../../metrics/severe-delta.js";
import { buildRouter } from "../../probe/build-router.js";
import { localModelFingerprint, modelCacheDirectory, parseModelSpec } from "../../translators/model-spec.js";
import { openProbedTranslator, openTranslator } from "../../translators/open.js";
import { defaultPromptTemplate, loadPromptTemplate } from "../../translators/prompt-template.js";
import type { ProbedTranslator, Translator } from "../../translators/types.js";
import { writeFileAtomic } from "../../util/atomic-file.js";
import { makeDirectory } from "../../util/make-directory.js";
import type { CliIo } from "../io.js";
import { defaultThreadsPerModel, positiveInteger } from "../options.js";
import { chunkedProgress, ProgressReporter } from "../progress.js";
import { skippedReport } from "./collect.js";

/**
 * The demo's default pair: Qwen2.5-Instruct 0.5B and 3B (Apache-2.0) — one family and tokenizer, a
 * 6× size gap, instruction-tuned chat models that translate, both small enough for a laptop CPU
 * (≈0.5 GB and ≈2 GB as GGUF).
 */
export const DEMO_SMALL = "hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF/qwen2.5-0.5b-instruct-q8_0.gguf";
export const DEMO_LARGE = "hf:Qwen/Qwen2.5-3B-Instruct-GGUF/qwen2.5-3b-instruct-q4_k_m.gguf";

interface DemoFlags {
  small: string;
  large: string;
  template?: string;
  data?: string;
  train: number;
  test: number;
  out: string;
  srcLang: string;
  tgtLang: string;
  metric: string;
  threads?: number;
  maxTokens: number;
  skipTooLong?: boolean;
}

export function registerDemo(program: Command, io: CliIo): void {
  program
    .command("demo")
    .description(
      "The whole path in one command: collect a training split, train the router, collect a test split, evaluate every policy",
    )
    .option("--small <spec>", "small model", DEMO_SMALL)
    .option("--large <spec>", "large model", DEMO_LARGE)
    .option("--template <file>", "prompt template file with {src}, {tgt}, {text}")
    .option(
      "--data <file>",
      'parallel data, one {"id","src","ref"} per line: the first --train lines train, the next --test lines test (default: FLORES-200 dev/devtest, downloaded once)',
    )
    .option("--train <n>", "training segments", positiveInteger("--train"), 400)
    .option("--test <n>", "test segments", positiveInteger("--test"), 200)
    .option("--out <dir>", "where datasets, router and report go", "routelmt-demo")
    .option("--src-lang <code>", "source language", "en")
    .option("--tgt-lang <code>", "target language", "de")
    .option("--metric <name>", "label metric", "chrf")
    .option(
      "--threads <n>",
      "CPU threads per in-process model (default: half the cores)",
      positiveInteger("--threads"),
    )
    .option("--max-tokens <n>", "maximum new tokens per translation", positiveInteger("--max-tokens"), 128)
    .option(
      "--skip-too-long",
      "leave out segments whose prompt plus --max-tokens does not fit a model's context (default: refuse the run, listing them)",
    )
    .action(async (flags: DemoFlags) => {
      await runDemo(flags, io);
    });
}

async function demoSplits(
  flags: DemoFlags,
  io: CliIo,
): Promise<{ train: CollectSegment[]; test: CollectSegment[]; source: string }> {
  if (flags.data) {
    const { segments: all } = await readCollectInput(flags.data, {
      needsReference: true,
      srcLang: flags.srcLang,
      tgtLang: flags.tgtLang,
    });
    let { train, test } = flags;
    if (train + test > all.length) {
      // Keep the requested proportions on a smaller file.
      const scale = all.length / (train + test);
      train = Math.max(1, Math.floor(train * scale));
      test = all.length - train;
      io.stderr(
        `note: ${flags.data} has ${all.length} segments; using ${train} to train and ${test} to test\n`,
      );
    }
    return { train: all.slice(0, train), test: all.slice(train, train + test), source: flags.data };
  }
  let progress: ProgressReporter | undefined;
  let reported = 0;
  const splits = await floresSplits({
    cacheDirectory: path.join(path.dirname(modelCacheDirectory()), "data"),
    srcLang: flags.srcLang,
    tgtLang: flags.tgtLang,
    onProgress: (received, total) => {
      progress ??= new ProgressReporter(io, { label: "download FLORES-200", total: total ?? 0, unit: "B" });
      progress.advance(received - reported);
      reported = received;
    },
  });
  if (progress) progress.finish();
  return {
    train: splits.train.slice(0, flags.train),
    test: splits.test.slice(0, flags.test),
    source: `FLORES-200 dev/devtest, ${FLORES_LICENSE}`,
  };
}

/**
 * Writes the segments collect reads back from `file`; returns them with their lines in it and the
 * hash of what was written (the collection's identity records it).
 */
async function writeSegments(file: string, segments: CollectSegment[]): Promise<CollectInput> {
  const lines = segments.map((segment) =>
    JSON.stringify({
      id: segment.id,
      src: segment.src,
      ref: segment.ref,
      src_lang: segment.srcLang,
      tgt_lang: segment.tgtLang,
    }),
  );
  const text = `${lines.join("\n")}\n`;
  await writeFile(file, text);
  return {
    segments: segments.map((segment, index) => ({ ...segment, line: index + 1 })),
    sha256: createHash("sha256").update(text, "utf8").digest("hex"),
  };
}

async function runDemo(flags: DemoFlags, io: CliIo): Promise<void> {
  const started = performance.now();
  const metric = createMetric(flags.metric);
  const template = flags.template ? await loadPromptTemplate(flags.template) : defaultPromptTemplate;
  await makeDirectory(flags.out);
  const splits = await demoSplits(flags, io);
  const trainFile = path.join(flags.out, "train.jsonl");
  const testFile = path.join(flags.out, "test.jsonl");
  const train = await writeSegments(trainFile, splits.train);
  const test = await writeSegments(testFile, splits.test);
  const { source } = splits;
  io.stderr(`data: ${source}: ${train.segments.length} training and ${test.segments.length} test segments\n`);

  const threads = flags.threads ?? defaultThreadsPerModel();
  const common = { threads, template, concurrency: 1, maxTokens: flags.maxTokens };
  let small: ProbedTranslator | undefined;
  let large: Translator | undefined;
  try {
    try {
      // The views `collect` reads by default; train chooses among them.
      small = await openProbedTranslator(flags.small, { ...common, layer: AUTO_FEATURE_VIEWS });
      large = await openTranslator(flags.large, common);
    } catch (error) {
      if (error instanceof UsageError && /cannot download|unreachable/.test(error.message)) {
        throw new UsageError(
          `${error.message}\nThe demo's default models come from Hugging Face on first use. Offline, pass local GGUF files and data, e.g.\n  routelmt demo --small small.gguf --large large.gguf --data pairs.jsonl [--template prompt.txt]`,
        );
      }
      throw error;
    }
    const largeSpec = parseModelSpec(flags.large);
    const largeFingerprint = await localModelFingerprint(largeSpec);
    const collectSplit = async (label: string, split: CollectInput, input: string, out: string) => {
      const { segments } = split;
      const progress = chunkedProgress(io, label);
      const { skipped } = await collectDataset({
        segments,
        input,
        inputSha256: split.sha256,
        out,
        small: small as ProbedTranslator,
        smallSpec: flags.small,
        large: large as Translator,
        largeSpec: flags.large,
        largeFingerprint,
        // A metric of its own for each split, as two collect runs would have: a signature records
        // what the metric has scored (sacreBLEU's nrefs), and the run identity must not.
        metric: createMetric(flags.metric),
        maxTokens: flags.maxTokens,
        onProgress: progress.onProgress,
        tooLong: flags.skipTooLong ? "skip" : "refuse",
        onNote: (note) => io.stderr(`note: ${note}\n`),
      });
      progress.finish();
      if (flags.skipTooLong) io.stderr(skippedReport(label, skipped, segments.length, input));
    };

    io.stderr("[1/4] collecting the training split (both models translate, both are scored)\n");
    const trainDirectory = path.join(flags.out, "train");
    await collectSplit("collect train", train, trainFile, trainDirectory);

    io.stderr(
      "[2/4] training the router (gain probe chosen by nested 5-fold CV, then quality, risk and the guard)\n",
    );
    const trainDataset = await loadDataset(trainDirectory);
    const severe = severeDeltaFor(
      metric.name,
      trainDataset.records.flatMap((record) => [record.q_small, record.q_large]),
    );
    if (severe.note) io.stderr(`note: ${severe.note}\n`);
    const { router, notes } = buildRouter([trainDataset], {
      heads: ["gain", "quality", "risk"],
      probe: "ridge",
      folds: 5,
      seed: Number(process.env.ROUTELMT_SEED ?? 0),
      riskDelta: severe.delta,
    });
    for (const note of notes) io.stderr(`note: ${note}\n`);
    const routerFile = path.join(flags.out, "router.json");
    await writeFileAtomic(routerFile, `${JSON.stringify(router)}\n`);
    const gainReport = router.heads.gain?.report;
    io.stderr(
      `router: ${router.feature.blocks?.join("+") ?? router.feature.layer} ${gainReport?.probe ?? ""}, gain head CV Spearman ${gainReport?.cv_spearman?.toFixed(3) ?? "n/a"} on ${router.training.n} segments; guard λ ${router.guard?.lambda.toFixed(2) ?? "n/a"}\n`,
    );

    io.stderr("[3/4] collecting the test split\n");
    const testDirectory = path.join(flags.out, "test");
    await collectSplit("collect test", test, testFile, testDirectory);

    io.stderr("[4/4] evaluating every policy at every budget\n");
    const { summary, files } = await evaluateDataset({
      data: testDirectory,
      router: routerFile,
      out: path.join(flags.out, "report"),
      onNote: (note) => io.stderr(`note: ${note}\n`),
    });
    io.stdout(formatEvalSummary(summary, files.html));
    io.stderr(`demo finished in ${((performance.now() - started) / 1000).toFixed(0)} s\n`);
  } finally {
    await small?.dispose();
    await large?.dispose();
  }
}
