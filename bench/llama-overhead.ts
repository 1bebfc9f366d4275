/**
 * What reading the router's features costs on the in-process GGUF translator, and what batching
 * buys on both in-process engines. Prints one JSON object. Run: `npx tsx bench/llama-overhead.ts`.
 *
 * Model and data come from `../shared` (relative to the repo root) unless overridden:
 * ROUTELMT_BENCH_MODEL (GGUF), ROUTELMT_BENCH_TEMPLATE (prompt template), ROUTELMT_BENCH_SOURCES
 * (JSONL with a `src` field), ROUTELMT_BENCH_SENTENCES (how many, default 32). Without a model the
 * result is a JSON note saying it was skipped.
 *
 * All figures come from one run on one thread, so ratios compare like with like:
 * - prefill: the prompt evaluated on a plain node-llama-cpp context (greedy next token only), versus
 *   `LlamaTranslator.prefill` (features + full-vocabulary distribution on the feature context);
 * - kept request: `prefill()` + `continue()` versus `translate([request])`, one sentence at a time;
 * - batching: `translate(all)` versus one `translate([request])` after another;
 * - batched throughput of each engine (`LlamaTranslator`, `LlamaFfiTranslator`) with 1, 2, 4 and 8
 *   sequences: every sentence submitted at once, segments per wall second and per CPU second, the
 *   ratios to 1 sequence of the same engine, and whether every translation equals the one-sequence one.
 */
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { type ControlledEvaluateInputItem, getLlama, LlamaLogLevel } from "node-llama-cpp";
import { LlamaFfiTranslator } from "../src/translators/llama-ffi-translator.js";
import { LlamaTranslator } from "../src/translators/llama-translator.js";
import { defaultPromptTemplate, loadPromptTemplate } from "../src/translators/prompt-template.js";
import type { TranslationRequest, Translator } from "../src/translators/types.js";
import { runIfMain } from "./run-if-main.js";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const sharedModels = path.resolve(repoRoot, "../shared/models");
const SEQUENCES = 4;

function loadSources(file: string, count: number): string[] {
  if (!existsSync(file)) {
    const fallback = [
      "A man is riding a bike.",
      "Two dogs play in the snow.",
      "A woman in a red dress is singing.",
    ];
    return Array.from({ length: count }, (_, index) => fallback[index % fallback.length] ?? "");
  }
  return readFileSync(file, "utf8")
    .split("\n")
    .filter((line) => line.trim() !== "")
    .slice(0, count)
    .map((line) => (JSON.parse(line) as { src: string }).src);
}

async function timed<T>(work: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const startedAt = performance.now();
  const value = await work();
  return { ms: performance.now() - startedAt, value };
}

function round(value: number, digits = 3): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

const LEVELS = [1, 2, 4, 8] as const;

/** Repetitions of each throughput measurement; the median is reported. */
const THROUGHPUT_REPEATS = 3;

/** Median of a non-empty list. */
function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[middle] as number)
    : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}

/**
 * Segments per second of one engine with 1, 2, 4 and 8 sequences, every request submitted at once
 * (each translator warmed up by one untimed pass; the median of {@link THROUGHPUT_REPEATS} passes),
 * per wall second and per CPU second of the whole process (worker threads included, and steadier
 * than wall time on a shared machine), with ratios to one sequence of the same engine.
 */
async function batchedThroughput(
  open: (sequences: number) => Promise<Translator>,
  requests: readonly TranslationRequest[],
): Promise<Record<string, unknown>> {
  const perLevel: Record<string, unknown> = {};
  let baseline: { perSecond: number; perCpuSecond: number; texts: string[] } | undefined;
  for (const level of LEVELS) {
    const translator = await open(level);
    try {
      const translateAll = async () =>
        await Promise.all(
          requests.map(async (request) => (await translator.translate([request]))[0]?.text ?? ""),
        );
      await translateAll();
      const wallMs: number[] = [];
      const cpuMs: number[] = [];
      let texts: string[] = [];
      for (let repeat = 0; repeat < THROUGHPUT_REPEATS; repeat++) {
        const cpuBefore = process.cpuUsage();
        const pass = await timed(translateAll);
        const cpu = process.cpuUsage(cpuBefore);
        wallMs.push(pass.ms);
        cpuMs.push((cpu.user + cpu.system) / 1000);
        texts = pass.value;
      }
      const perSecond = (requests.length * 1000) / median(wallMs);
      const perCpuSecond = (requests.length * 1000) / median(cpuMs);
      baseline ??= { perSecond, perCpuSecond, texts };
      perLevel[String(level)] = {
        segments_per_second: round(perSecond),
        ratio_vs_1: round(perSecond / baseline.perSecond),
        segments_per_cpu_second: round(perCpuSecond),
        cpu_ratio_vs_1: round(perCpuSecond / baseline.perCpuSecond),
        outputs_identical_to_1: texts.every((text, index) => text === baseline?.texts[index]),
      };
    } finally {
      await translator.dispose();
    }
  }
  return perLevel;
}

export async function run(): Promise<Record<string, unknown>> {
  const modelPath = process.env.ROUTELMT_BENCH_MODEL ?? path.join(sharedModels, "tinymt-small.gguf");
  const templatePath = process.env.ROUTELMT_BENCH_TEMPLATE ?? path.join(sharedModels, "tinymt.template");
  const sourcesPath =
    process.env.ROUTELMT_BENCH_SOURCES ?? path.resolve(repoRoot, "../shared/data/multi30k-en-de/val.jsonl");
  const count = Number(process.env.ROUTELMT_BENCH_SENTENCES ?? 32);
  if (!existsSync(modelPath)) {
    return {
      bench: "llama-overhead",
      skipped: true,
      note: `model ${modelPath} not found; set ROUTELMT_BENCH_MODEL`,
    };
  }
  const template = existsSync(templatePath) ? await loadPromptTemplate(templatePath) : defaultPromptTemplate;
  const requests: TranslationRequest[] = loadSources(sourcesPath, count).map((text) => ({
    text,
    srcLang: "en",
    tgtLang: "de",
  }));

  const translator = await LlamaTranslator.create({ modelPath, threads: 1, template, sequences: SEQUENCES });
  const noEntropy = await LlamaTranslator.create({
    modelPath,
    threads: 1,
    template,
    sequences: 1,
    entropy: false,
  });
  const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
  const plainModel = await llama.loadModel({ modelPath });
  const plainContext = await plainModel.createContext({ contextSize: translator.contextSize, threads: 1 });
  const plainSequence = plainContext.getSequence();
  try {
    const prompts = requests.map((request) => translator.tokenizePrompt(request));
    const plainPrefillAll = async () => {
      for (const tokens of prompts) {
        const input: ControlledEvaluateInputItem[] = tokens.map((token, index) =>
          index === tokens.length - 1 ? [token, { generateNext: { token: true } }] : token,
        );
        await plainSequence.controlledEvaluate(input);
        await plainSequence.clearHistory();
      }
    };
    const featurePrefillAll = (source: LlamaTranslator) => async () => {
      for (const request of requests) await (await source.prefill(request)).release();
    };
    // One untimed round of every path, so first-call allocations and caches do not count.
    await plainPrefillAll();
    await featurePrefillAll(translator)();
    await featurePrefillAll(noEntropy)();
    await translator.translate(requests);

    const plainPrefill = await timed(plainPrefillAll);
    const featurePrefill = await timed(featurePrefillAll(translator));
    const featureOnlyPrefill = await timed(featurePrefillAll(noEntropy));
    const kept = await timed(async () => {
      const outputs: string[] = [];
      for (const request of requests)
        outputs.push((await (await translator.prefill(request)).continue()).text);
      return outputs;
    });
    const sequential = await timed(async () => {
      const outputs: string[] = [];
      for (const request of requests) outputs.push((await translator.translate([request]))[0]?.text ?? "");
      return outputs;
    });
    const batched = await timed(async () =>
      (await translator.translate(requests)).map((translation) => translation.text),
    );
    const outputTokens = (await translator.translate(requests)).reduce(
      (sum, item) => sum + (item.outputTokens ?? 0),
      0,
    );
    const promptTokens = prompts.reduce((sum, tokens) => sum + tokens.length, 0);

    const batchedThroughputs = {
      llama: await batchedThroughput(
        (sequences) =>
          LlamaTranslator.create({ modelPath, threads: 1, template, sequences, readsFeatures: false }),
        requests,
      ),
      ffi: await batchedThroughput(
        (sequences) => LlamaFfiTranslator.create({ modelPath, threads: 1, template, sequences }),
        requests,
      ),
    };

    return {
      bench: "llama-overhead",
      model: path.basename(modelPath),
      threads: 1,
      sequences: SEQUENCES,
      sentences: requests.length,
      prompt_tokens: promptTokens,
      output_tokens: outputTokens,
      prefill_plain_ms_per_request: round(plainPrefill.ms / requests.length),
      prefill_with_features_ms_per_request: round(featurePrefill.ms / requests.length),
      prefill_features_ratio: round(featurePrefill.ms / plainPrefill.ms),
      prefill_features_no_entropy_ms_per_request: round(featureOnlyPrefill.ms / requests.length),
      prefill_features_no_entropy_ratio: round(featureOnlyPrefill.ms / plainPrefill.ms),
      kept_request_ms_per_request: round(kept.ms / requests.length),
      plain_translate_ms_per_request: round(sequential.ms / requests.length),
      kept_vs_plain_ratio: round(kept.ms / sequential.ms),
      kept_outputs_identical: kept.value.every((text, index) => text === sequential.value[index]),
      batched_sentences_per_second: round((requests.length * 1000) / batched.ms),
      sequential_sentences_per_second: round((requests.length * 1000) / sequential.ms),
      batched_speedup: round(sequential.ms / batched.ms),
      batched_outputs_identical: batched.value.every((text, index) => text === sequential.value[index]),
      batched_throughput_by_sequences: batchedThroughputs,
    };
  } finally {
    await plainContext.dispose();
    await plainModel.dispose();
    await translator.dispose();
    await noEntropy.dispose();
  }
}

runIfMain(import.meta.url, run);
