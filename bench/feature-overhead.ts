/**
 * What reading feature views costs on top of the prefill the translation needs anyway, and what the
 * eval callback that reads them costs every other decode, through the FFI engine
 * (src/features/llama-ffi-engine.ts, called directly on this thread). Prints one JSON object.
 * Run: `npx tsx bench/feature-overhead.ts`.
 *
 * Models: tinymt-small from ../shared (skipped when absent) and a generated random-weight 70 M-parameter,
 * 32k-vocabulary llama (test/helpers/tiny-llama.ts, written to a temporary folder and deleted after).
 * Per model, one run interleaves, round by round and in rotating order, over the same prompts:
 * - prefills (ratio to a plain prefill of the same prompt, the prompt's last token the only output):
 *   `last:final`, `last:N` and `mean:N` (N the middle layer), `norms:0`, `auto` (collect's default
 *   views), `mean:final` (every prompt token an output: logits for all of them), `all` (every view),
 *   and a control, a plain prefill on a second
 *   engine (the noise floor of the ratios);
 * - decode steps (ratio to the same steps on an engine opened without the eval callback): one
 *   sequence decoding `steps` tokens, on the engine whose callback answers "no" to every graph node;
 * - batched decode steps: 1, 2, 4 and 8 sequences decoding `steps` tokens each, one llama_decode per
 *   step for all of them; tokens per CPU second and the ratio to one sequence (what continuous batching
 *   saves where a step is bound by reading the weights rather than by arithmetic).
 * Each variant run is paired with its baseline run on the same prompt right before or after it; the
 * reported ratio is the median over rounds and prompts of variant / baseline CPU time (process CPU
 * time: one compute thread, and steadier than wall time on a machine shared with other jobs).
 */
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { getLlama, LlamaLogLevel } from "node-llama-cpp";
import { featureViewsOf } from "../src/features/feature-views.js";
import { LlamaFfiEngine, type PrefillOptions } from "../src/features/llama-ffi-engine.js";
import { hasShared, sharedPath } from "../test/helpers/shared.js";
import { writeBenchLlamaGguf } from "../test/helpers/tiny-llama.js";
import { runIfMain } from "./run-if-main.js";

const THREADS = 1;

const SENTENCES = [
  "A man is riding a bike.",
  "Two dogs are playing in the snow.",
  "A woman in a red dress is walking down the street.",
  "A group of children are playing soccer on a field.",
  "A little girl is sitting on a bench.",
  "An older man with a gray beard is reading a newspaper at a small table outside a cafe.",
  "Three people are standing near the water.",
  "A young boy in a blue shirt jumps into a swimming pool while his friends watch.",
];

interface BenchModel {
  modelPath: string;
  prompt: (sentence: string) => string;
  rounds: number;
  /** Decode steps per measured generation. */
  steps: number;
}

type Timer = (tokens: readonly number[]) => number;

/** Median of a non-empty list. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[middle] as number)
    : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}

/**
 * CPU time (user + system, all threads) spent in `work`, in ms. With one compute thread this is the
 * decode's own cost; unlike wall time it does not grow when other processes take the cores.
 */
function cpuMilliseconds(work: () => void): number {
  const start = process.cpuUsage();
  work();
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1000;
}

function round3(value: number): number {
  return Math.round(value * 1000) / 1000;
}

interface Variant {
  run: Timer;
  baseline: Timer;
  baselineName: string;
}

/** Runs every variant next to its baseline, round after round, and returns medians and ratios. */
function interleave(
  variants: Record<string, Variant>,
  prompts: readonly (readonly number[])[],
  rounds: number,
) {
  const names = Object.keys(variants);
  const ratios = new Map<string, number[]>(names.map((name) => [name, []]));
  const variantMs = new Map<string, number[]>(names.map((name) => [name, []]));
  const baselineMs = new Map<string, number[]>();
  // Warm-up: graph reservations, page faults of the mmapped weights, first-call JIT of the JS side.
  for (const variant of Object.values(variants)) {
    for (const tokens of prompts) {
      variant.run(tokens);
      variant.baseline(tokens);
    }
  }
  for (let round = 0; round < rounds; round++) {
    for (const [promptIndex, tokens] of prompts.entries()) {
      for (const name of names) {
        const variant = variants[name] as Variant;
        const variantFirst = (round + promptIndex) % 2 === 0;
        const first = variantFirst ? variant.run(tokens) : variant.baseline(tokens);
        const second = variantFirst ? variant.baseline(tokens) : variant.run(tokens);
        const [variantTime, baselineTime] = variantFirst ? [first, second] : [second, first];
        ratios.get(name)?.push(variantTime / baselineTime);
        variantMs.get(name)?.push(variantTime);
        const baselines = baselineMs.get(variant.baselineName) ?? [];
        baselines.push(baselineTime);
        baselineMs.set(variant.baselineName, baselines);
      }
    }
  }
  const perRun = (values: number[] | undefined) => round3(median(values ?? []));
  return {
    median_cpu_ms: {
      ...Object.fromEntries([...baselineMs].map(([name, values]) => [name, perRun(values)])),
      ...Object.fromEntries(names.map((name) => [name, perRun(variantMs.get(name))])),
    },
    // Median over (round, prompt) of variant CPU time / adjacent baseline CPU time.
    ratio_vs_baseline: Object.fromEntries(
      names.map((name) => [name, round3(median(ratios.get(name) ?? []))]),
    ),
    baseline_of: Object.fromEntries(names.map((name) => [name, variants[name]?.baselineName])),
  };
}

/** Tokens per CPU second of batched decode steps with 1, 2, 4 and 8 sequences (median over prompts). */
function batchedSteps(engine: LlamaFfiEngine, prompts: readonly (readonly number[])[], steps: number) {
  const perLevel: Record<string, { tokens_per_cpu_second: number; ratio_vs_1: number }> = {};
  let single: number | undefined;
  for (const level of [1, 2, 4, 8]) {
    const rates: number[] = [];
    for (let round = 0; round < 3; round++) {
      let tokens = Array.from({ length: level }, (_, sequenceId) => {
        const prompt = prompts[(round + sequenceId) % prompts.length] as readonly number[];
        return engine.prefill(sequenceId, prompt).firstToken;
      });
      const elapsed = cpuMilliseconds(() => {
        for (let step = 0; step < steps; step++) {
          const next = engine.decodeBatch(
            tokens.map((token, sequenceId) => ({ sequenceId, tokens: [token], outputLast: true })),
          );
          tokens = next.map((token) => token as number);
        }
      });
      for (let sequenceId = 0; sequenceId < level; sequenceId++) engine.releaseSequence(sequenceId);
      rates.push((level * steps * 1000) / elapsed);
    }
    const rate = median(rates);
    single ??= rate;
    perLevel[String(level)] = { tokens_per_cpu_second: round3(rate), ratio_vs_1: round3(rate / single) };
  }
  return perLevel;
}

async function measureModel(model: BenchModel): Promise<Record<string, unknown>> {
  const open = (readsViews: boolean) =>
    LlamaFfiEngine.open({
      modelPath: model.modelPath,
      threads: THREADS,
      contextSize: 512,
      sequences: 8,
      readsViews,
    });
  const engine = await open(true);
  const twin = await open(true);
  const withoutCallback = await open(false);
  try {
    const middle = Math.floor(engine.layerCount / 2);
    const prompts = SENTENCES.map((sentence) => engine.tokenize(model.prompt(sentence), true));

    const timedPrefill =
      (target: LlamaFfiEngine, options: PrefillOptions): Timer =>
      (tokens) => {
        const elapsed = cpuMilliseconds(() => target.prefill(0, tokens, options));
        target.releaseSequence(0);
        return elapsed;
      };
    // Decode steps only: the prefill is outside the timed part.
    const timedSteps =
      (target: LlamaFfiEngine): Timer =>
      (tokens) => {
        let token = target.prefill(0, tokens).firstToken;
        const elapsed = cpuMilliseconds(() => {
          for (let step = 0; step < model.steps; step++) {
            token = target.decodeBatch([{ sequenceId: 0, tokens: [token], outputLast: true }])[0] as number;
          }
        });
        target.releaseSequence(0);
        return elapsed;
      };
    const prefill = timedPrefill(engine, {});
    const viewsOf = (selection: string) => featureViewsOf(selection, engine.layerCount);
    const variant = (selection: string): Variant => ({
      run: timedPrefill(engine, { views: viewsOf(selection) }),
      baseline: prefill,
      baselineName: "prefill",
    });
    const variants: Record<string, Variant> = {
      "last:final": variant("last:final"),
      [`last:${middle}`]: variant(`last:${middle}`),
      [`mean:${middle}`]: variant(`mean:${middle}`),
      "norms:0": variant("norms:0"),
      auto: variant("auto"),
      "mean:final": variant("mean:final"),
      all: variant("all"),
      prefill_other_engine: { run: timedPrefill(twin, {}), baseline: prefill, baselineName: "prefill" },
      decode_steps_with_callback: {
        run: timedSteps(engine),
        baseline: timedSteps(withoutCallback),
        baselineName: "decode_steps_without_callback",
      },
      prefill_with_callback: {
        run: prefill,
        baseline: timedPrefill(withoutCallback, {}),
        baselineName: "prefill_without_callback",
      },
    };
    return {
      architecture: engine.architecture,
      layers: engine.layerCount,
      embedding_size: engine.embeddingSize,
      vocabulary_size: engine.vocabularySize,
      prompts: prompts.length,
      prompt_tokens_mean: round3(prompts.reduce((sum, tokens) => sum + tokens.length, 0) / prompts.length),
      rounds: model.rounds,
      decode_steps_per_run: model.steps,
      ...interleave(variants, prompts, model.rounds),
      batched_decode_steps: batchedSteps(engine, prompts, model.steps * 4),
    };
  } finally {
    engine.dispose();
    twin.dispose();
    withoutCallback.dispose();
  }
}

/** Runs the benchmark on every available model and returns the figures. */
export async function run(): Promise<Record<string, unknown>> {
  // Loading node-llama-cpp first installs its logger in the shared libllama (errors only on stderr).
  await getLlama({ gpu: false, logLevel: LlamaLogLevel.error });
  const results: Record<string, unknown> = {};
  const tinymtParts = ["models", "tinymt-small.gguf"];
  if (hasShared(tinymtParts)) {
    results["tinymt-small"] = await measureModel({
      modelPath: sharedPath(...tinymtParts),
      prompt: (sentence) => `English: ${sentence}\nGerman:`,
      rounds: 30,
      steps: 32,
    });
  } else {
    results["tinymt-small"] = { skipped: "needs ../shared/models/tinymt-small.gguf" };
  }

  const directory = await mkdtemp(path.join(os.tmpdir(), "routelmt-feature-bench-"));
  try {
    const generatedAt = performance.now();
    const generated = writeBenchLlamaGguf(path.join(directory, "bench-llama.gguf"));
    const generationSeconds = (performance.now() - generatedAt) / 1000;
    results["generated-llama-70m"] = {
      generation_seconds: round3(generationSeconds),
      ...(await measureModel({
        modelPath: generated.path,
        prompt: (sentence) =>
          `Translate the following sentence from English into German.\nEnglish: ${sentence}\nGerman:`,
        rounds: 8,
        steps: 8,
      })),
    };
  } finally {
    await rm(directory, { recursive: true, force: true });
  }

  return {
    benchmark: "feature-overhead",
    threads: THREADS,
    cpus: os.cpus().length,
    node: process.version,
    models: results,
  };
}

runIfMain(import.meta.url, run);
