/**
 * What reading the small model's hidden state at the last prompt token costs on top of the prefill the
 * translation needs anyway, through the FFI engine (src/features/llama-ffi-engine.ts). Prints one JSON
 * object. Run: `npx tsx bench/feature-overhead.ts`.
 *
 * Models: tinymt-small from ../shared (skipped when absent) and a generated random-weight 70 M-parameter,
 * 32k-vocabulary llama (test/helpers/tiny-llama.ts, written to a temporary folder and deleted after).
 * Per model, one run interleaves, round by round and in rotating order, over the same prompts:
 * - `prefill`: the prompt in one decode, logits of the last token only;
 * - `final_last_token_decode`: the final-norm state by decoding the last prompt token on its own with
 *   embeddings on (the engine's default);
 * - `final_embeddings_on_all`: the final state with embeddings on for the whole prompt (outputs and
 *   logits for every prompt token, as node-llama-cpp's embedding context does);
 * - `layer_input`: the input of the middle layer, recorded during the normal prefill;
 * - `layer_input_and_final`: both.
 * Layer recording stays on in an engine once asked for, so the layer variants use a second engine on
 * the same file (`prefill_while_recording` is a plain prefill there). Every variant run is paired with
 * a baseline run (`prefill`, or `translate` for `translate_with_final`) of the same prompt right before or
 * after it; the reported ratio is the median over rounds and prompts of variant / baseline CPU time
 * (process CPU time: one compute thread, and stable on a machine shared with other jobs, unlike wall
 * time). `prefill_other_engine` is a control: a plain prefill on a third engine, showing the bias of
 * comparing two engines (the layer variants run on their own engine).
 * `translate_*` add greedy decoding (up to the model's end token or `maxNewTokens`) to show the overhead
 * relative to a whole translation.
 */
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { getLlama, LlamaLogLevel } from "node-llama-cpp";
import {
  argmax,
  type FeatureLayer,
  LlamaFfiEngine,
  type PrefillOptions,
} from "../src/features/llama-ffi-engine.js";
import { hasShared, sharedPath } from "../test/helpers/shared.js";
import { writeBenchLlamaGguf } from "../test/helpers/tiny-llama.js";
import { runIfMain } from "./run-if-main.js";

const THREADS = 1;
/** The ratio the chosen path must stay under (brief: ≤ 1.05× of prefill alone). */
const TARGET_RATIO = 1.05;

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
  name: string;
  modelPath: string;
  prompt: (sentence: string) => string;
  rounds: number;
  maxNewTokens: number;
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

async function measureModel(model: BenchModel): Promise<Record<string, unknown>> {
  const plain = await LlamaFfiEngine.open({ modelPath: model.modelPath, threads: THREADS, contextSize: 512 });
  const recording = await LlamaFfiEngine.open({
    modelPath: model.modelPath,
    threads: THREADS,
    contextSize: 512,
  });
  const twin = await LlamaFfiEngine.open({ modelPath: model.modelPath, threads: THREADS, contextSize: 512 });
  try {
    const middleLayer = Math.floor(plain.layerCount / 2);
    const prompts = SENTENCES.map((sentence) => plain.tokenize(model.prompt(sentence), true));

    const timedPrefill =
      (engine: LlamaFfiEngine, options: PrefillOptions): Timer =>
      (tokens) => {
        const elapsed = cpuMilliseconds(() => engine.prefill(0, tokens, options));
        engine.releaseSequence(0);
        return elapsed;
      };
    const timedTranslation =
      (layers: FeatureLayer[]): Timer =>
      (tokens) => {
        const elapsed = cpuMilliseconds(() => {
          const { logitsLast } = plain.prefill(0, tokens, { layers });
          plain.decodeGreedy(0, argmax(logitsLast), model.maxNewTokens);
        });
        plain.releaseSequence(0);
        return elapsed;
      };

    const prefill = timedPrefill(plain, {});
    const translate = timedTranslation([]);
    // Each variant is timed right next to its own baseline run on the same prompt (A/B, order
    // alternating), so both see the same load of a shared machine.
    const variants: Record<string, { run: Timer; baseline: Timer; baselineName: string }> = {
      final_last_token_decode: {
        run: timedPrefill(plain, { layers: ["final"] }),
        baseline: prefill,
        baselineName: "prefill",
      },
      final_embeddings_on_all: {
        run: timedPrefill(plain, { layers: ["final"], finalStrategy: "embeddings-on-all" }),
        baseline: prefill,
        baselineName: "prefill",
      },
      layer_input: {
        run: timedPrefill(recording, { layers: [middleLayer] }),
        baseline: prefill,
        baselineName: "prefill",
      },
      layer_input_and_final: {
        run: timedPrefill(recording, { layers: [middleLayer, "final"] }),
        baseline: prefill,
        baselineName: "prefill",
      },
      // Control: the same plain prefill on a second engine. The baseline engine runs twice as often and
      // keeps its buffers in cache, which biases every other-engine ratio by about this much.
      prefill_other_engine: {
        run: timedPrefill(twin, {}),
        baseline: prefill,
        baselineName: "prefill",
      },
      // Recording stays on once asked for: a plain prefill on that engine afterwards.
      prefill_while_recording: {
        run: timedPrefill(recording, {}),
        baseline: prefill,
        baselineName: "prefill",
      },
      translate_with_final: {
        run: timedTranslation(["final"]),
        baseline: translate,
        baselineName: "translate",
      },
    };
    const names = Object.keys(variants);
    const ratios = new Map<string, number[]>(names.map((name) => [name, []]));
    const variantMs = new Map<string, number[]>(names.map((name) => [name, []]));
    const baselineMs = new Map<string, number[]>([
      ["prefill", []],
      ["translate", []],
    ]);

    // Warm-up: graph reservations, page faults of the mmapped weights, first-call JIT of the JS side.
    for (const name of names) {
      for (const tokens of prompts) {
        variants[name]?.run(tokens);
        variants[name]?.baseline(tokens);
      }
    }

    for (let round = 0; round < model.rounds; round++) {
      for (const [promptIndex, tokens] of prompts.entries()) {
        for (const name of names) {
          const variant = variants[name] as { run: Timer; baseline: Timer; baselineName: string };
          const variantFirst = (round + promptIndex) % 2 === 0;
          const first = variantFirst ? variant.run(tokens) : variant.baseline(tokens);
          const second = variantFirst ? variant.baseline(tokens) : variant.run(tokens);
          const [variantTime, baselineTime] = variantFirst ? [first, second] : [second, first];
          ratios.get(name)?.push(variantTime / baselineTime);
          variantMs.get(name)?.push(variantTime);
          baselineMs.get(variant.baselineName)?.push(baselineTime);
        }
      }
    }

    const perPrompt = (values: number[] | undefined) => round3(median(values ?? []));
    return {
      architecture: plain.architecture,
      layers: plain.layerCount,
      embedding_size: plain.embeddingSize,
      vocabulary_size: plain.vocabularySize,
      prompts: prompts.length,
      prompt_tokens_mean: round3(prompts.reduce((sum, tokens) => sum + tokens.length, 0) / prompts.length),
      layer_input_index: middleLayer,
      rounds: model.rounds,
      max_new_tokens: model.maxNewTokens,
      median_cpu_ms_per_prompt: {
        prefill: perPrompt(baselineMs.get("prefill")),
        translate: perPrompt(baselineMs.get("translate")),
        ...Object.fromEntries(names.map((name) => [name, perPrompt(variantMs.get(name))])),
      },
      // Median over (round, prompt) of variant CPU time / adjacent baseline CPU time.
      ratio_vs_baseline: Object.fromEntries(
        names.map((name) => [name, round3(median(ratios.get(name) ?? []))]),
      ),
      baseline_of: Object.fromEntries(names.map((name) => [name, variants[name]?.baselineName])),
    };
  } finally {
    plain.dispose();
    recording.dispose();
    twin.dispose();
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
      name: "tinymt-small",
      modelPath: sharedPath(...tinymtParts),
      prompt: (sentence) => `English: ${sentence}\nGerman:`,
      rounds: 30,
      maxNewTokens: 60,
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
        name: "generated-llama-70m",
        modelPath: generated.path,
        prompt: (sentence) =>
          `Translate the following sentence from English into German.\nEnglish: ${sentence}\nGerman:`,
        rounds: 5,
        maxNewTokens: 16,
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
    chosen_path: "final_last_token_decode (final state); layer_input (residual stream entering a layer)",
    target_ratio: TARGET_RATIO,
    models: results,
  };
}

runIfMain(import.meta.url, run);
