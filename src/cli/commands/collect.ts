import { type Command, Option } from "commander";
import {
  collectDataset,
  METRIC_RENAME,
  readCollectInput,
  refuseDuplicateScoreNames,
} from "../../collect/index.js";
import type { SkippedTooLong } from "../../dataset/index.js";
import { createMetric } from "../../metrics/index.js";
import { localModelFingerprint, parseModelSpec } from "../../translators/model-spec.js";
import {
  type FeatureEngine,
  featureEngines,
  openProbedTranslator,
  openTranslator,
} from "../../translators/open.js";
import { describeTooLongPrompt } from "../../translators/prompt-fit.js";
import { defaultPromptTemplate, loadPromptTemplate } from "../../translators/prompt-template.js";
import type { ProbedTranslator, Translator } from "../../translators/types.js";
import { makeDirectory } from "../../util/make-directory.js";
import type { CliIo } from "../io.js";
import { defaultThreadsPerModel, positiveInteger } from "../options.js";
import { chunkedProgress } from "../progress.js";

interface CollectFlags {
  small: string;
  large: string;
  in: string;
  out: string;
  metric: string;
  extraMetric: string[];
  srcLang?: string;
  tgtLang?: string;
  template?: string;
  layer: string;
  featureEngine: FeatureEngine;
  threads?: number;
  concurrency: number;
  limit?: number;
  maxTokens: number;
  chunkSize: number;
  smallDim?: number;
  skipTooLong?: boolean;
  largeLikelihood: boolean;
}

export function registerCollect(program: Command, io: CliIo): void {
  program
    .command("collect")
    .description(
      "Translate a training set with both models, score both, and write gain labels with the small model's features",
    )
    .requiredOption(
      "--small <spec>",
      "small model: path.gguf, hf:<user>/<repo>/<file>.gguf or openai:<baseURL>#<model>",
    )
    .requiredOption("--large <spec>", "large model spec")
    .requiredOption(
      "--in <file>",
      'input JSONL, one {"id","src","ref"} per line (optional src_lang/tgt_lang)',
    )
    .requiredOption("--out <dir>", "dataset directory (created; an interrupted run in it is resumed)")
    .option("--metric <name>", "label metric: chrf, chrf++, bleu or http:<URL>[#<name>]", "chrf")
    .option(
      "--extra-metric <name>",
      "another metric to keep under scores (repeatable)",
      (v, prev: string[]) => [...prev, v],
      [],
    )
    .option("--src-lang <code>", "source language for lines without src_lang")
    .option("--tgt-lang <code>", "target language for lines without tgt_lang")
    .option("--template <file>", "prompt template file with {src}, {tgt}, {text}")
    .option(
      "--layer <views>",
      "feature views, a comma list of last:LAYER / mean:LAYER / norms:LAYER (LAYER an index or final; final and N alone mean last:), all, or auto (last:final,mean:0,mean:L/2,norms:0 where the engine reads views, else last:final)",
      "auto",
    )
    .addOption(
      new Option(
        "--feature-engine <engine>",
        "engine reading the small model's features: llama (node-llama-cpp, last:final only), ffi (every view, linux-x64) or auto (ffi where available, else llama); both batch",
      )
        .choices(featureEngines)
        .default("auto"),
    )
    .option(
      "--threads <n>",
      "CPU threads per in-process model (default: half the cores)",
      positiveInteger("--threads"),
    )
    .option(
      "--concurrency <n>",
      "segments decoded in parallel per model (llama.cpp sequences sharing batches, or HTTP requests in flight)",
      positiveInteger("--concurrency"),
      1,
    )
    .option("--limit <n>", "only the first N input lines", positiveInteger("--limit"))
    .option("--max-tokens <n>", "maximum new tokens per translation", positiveInteger("--max-tokens"), 256)
    .option("--chunk-size <n>", "segments written per durable chunk", positiveInteger("--chunk-size"), 16)
    .option(
      "--small-dim <n>",
      "hidden size of a remote (openai:) small model",
      positiveInteger("--small-dim"),
    )
    .option(
      "--skip-too-long",
      "leave out segments whose prompt plus --max-tokens does not fit a model's context, recording them in meta.json (default: refuse the run, listing them)",
    )
    .option(
      "--no-large-likelihood",
      "do not record the large model's likelihood of each small translation (large_logprob_of_small, the signal guarded-qe can rank with: one large-model prefill per segment, in-process large models only)",
    )
    .action(async (flags: CollectFlags) => {
      const metric = createMetric(flags.metric);
      const extraMetrics = flags.extraMetric.map(createMetric);
      refuseDuplicateScoreNames(
        [
          { name: metric.name, source: `--metric ${flags.metric}` },
          ...extraMetrics.map((extra, index) => ({
            name: extra.name,
            source: `--extra-metric ${flags.extraMetric[index]}`,
          })),
        ],
        METRIC_RENAME,
      );
      const { segments, sha256: inputSha256 } = await readCollectInput(flags.in, {
        needsReference: [metric, ...extraMetrics].some((m) => m.needsReference),
        srcLang: flags.srcLang,
        tgtLang: flags.tgtLang,
        limit: flags.limit,
      });
      const template = flags.template ? await loadPromptTemplate(flags.template) : defaultPromptTemplate;
      // Before the models load, so an unusable --out fails at once.
      await makeDirectory(flags.out);
      const threads = flags.threads ?? defaultThreadsPerModel();
      const common = { threads, template, concurrency: flags.concurrency, maxTokens: flags.maxTokens };
      const largeSpec = parseModelSpec(flags.large);
      let small: ProbedTranslator | undefined;
      let large: Translator | undefined;
      try {
        small = await openProbedTranslator(flags.small, {
          ...common,
          layer: flags.layer,
          featureEngine: flags.featureEngine,
          remoteDim: flags.smallDim,
        });
        large = await openTranslator(largeSpec, common);
        const largeFingerprint = await localModelFingerprint(largeSpec);
        const progress = chunkedProgress(io, "collect", (alreadyDone, total) =>
          io.stderr(`resuming: ${alreadyDone} of ${total} segments were already collected\n`),
        );
        const summary = await collectDataset({
          segments,
          input: flags.in,
          inputSha256,
          out: flags.out,
          small,
          smallSpec: flags.small,
          large,
          largeSpec: flags.large,
          largeFingerprint,
          metric,
          extraMetrics,
          maxTokens: flags.maxTokens,
          chunkSize: flags.chunkSize,
          concurrency: flags.concurrency,
          largeLikelihood: flags.largeLikelihood,
          onProgress: progress.onProgress,
          tooLong: flags.skipTooLong ? "skip" : "refuse",
          onNote: (note) => io.stderr(`note: ${note}\n`),
        });
        progress.finish();
        if (flags.skipTooLong)
          io.stderr(skippedReport("collect", summary.skipped, segments.length, flags.in));
        if (summary.alreadyComplete) io.stderr(`${flags.out} already holds this collection; nothing to do\n`);
        if (summary.n > 0 && summary.fractionZero === 1) {
          io.stderr(
            `note: both models score alike on every segment (g = 0 throughout): a router learns nothing from these labels (are --small and --large the same model?)\n`,
          );
        }
        const format = (value: number | null) => (value === null ? "n/a" : value.toFixed(2));
        const percent = (value: number) => `${(100 * value).toFixed(1)}%`;
        io.stdout(
          `collected ${summary.n} segments into ${flags.out} (${summary.fresh} this run, ${summary.seconds.toFixed(1)} s)\n` +
            `${metric.name}: small ${format(summary.meanSmall)}  large ${format(summary.meanLarge)}  gain ${format(summary.meanGain)}` +
            `  (g>0 ${percent(summary.fractionPositive)}, g=0 ${percent(summary.fractionZero)}, g<0 ${percent(summary.fractionNegative)})\n`,
        );
      } finally {
        await small?.dispose();
        await large?.dispose();
      }
    });
}

/** How many segments --skip-too-long left out, and the first of them (meta.json lists every one). */
export function skippedReport(
  label: string,
  skipped: readonly SkippedTooLong[],
  total: number,
  input: string,
): string {
  const shown = 20;
  const lines = skipped.slice(0, shown).map((segment) => {
    const overflows = segment.too_long_for.map((model) => ({
      model: model.model,
      promptTokens: model.prompt_tokens,
      maxPromptTokens: model.max_prompt_tokens,
      contextSize: model.context_size,
    }));
    const origin = { file: input, line: segment.line, id: segment.id };
    return `  ${describeTooLongPrompt(overflows, origin)}\n`;
  });
  if (skipped.length > shown) lines.push(`  … ${skipped.length - shown} more\n`);
  const where = skipped.length > 0 ? " (all in meta.json, source.skipped_too_long)" : "";
  return `${label}: skipped ${skipped.length} of ${total} segments too long for the context (--skip-too-long)${where}${skipped.length > 0 ? ":" : ""}\n${lines.join("")}`;
}
