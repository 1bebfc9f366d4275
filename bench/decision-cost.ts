/**
 * What a routing decision costs. RouteLMT decides from the small model's prefill (features at the
 * last prompt token, then a probe); a QE cascade first decodes the small hypothesis and then asks a
 * QE model about it. On one model, in one run, per request: prefill + probe versus prefill + full
 * greedy decode of the hypothesis — the decode-then-QE path before its QE call even starts, so the
 * ratio is a lower bound on the cascade's extra cost. Also what the source-text `words` block adds
 * to a decision: hashing the request's words and the wider probe. Prints one JSON object.
 * Run: `npx tsx bench/decision-cost.ts`.
 *
 * Model and data come from `../shared` unless ROUTELMT_BENCH_SMALL, ROUTELMT_BENCH_TEMPLATE and
 * ROUTELMT_BENCH_SOURCES say otherwise; ROUTELMT_BENCH_SENTENCES sets how many (default 64).
 */
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { SOURCE_WORDS_DIM, sourceWordFeatures } from "../src/features/source-words.js";
import { predict, type RidgeProbeModel } from "../src/probe/probe-model.js";
import { createRandom, normal } from "../src/stats/index.js";
import { LlamaTranslator } from "../src/translators/llama-translator.js";
import { loadPromptTemplate } from "../src/translators/prompt-template.js";
import { runIfMain } from "./run-if-main.js";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const shared = path.resolve(repoRoot, "../shared");

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[middle] as number)
    : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}

/** A ridge head of the right width with random weights: scoring cost does not depend on the values. */
function randomHead(dim: number): RidgeProbeModel {
  const random = createRandom(1);
  return {
    format: 1,
    kind: "ridge",
    dim,
    mean: Array.from({ length: dim }, () => normal(random)),
    std: Array.from({ length: dim }, () => 1 + Math.abs(normal(random))),
    weights: Array.from({ length: dim }, () => normal(random)),
    bias: 0,
    lambda: 1,
  };
}

export async function run(): Promise<Record<string, unknown>> {
  const modelPath = process.env.ROUTELMT_BENCH_SMALL ?? path.join(shared, "models/tinymt-small.gguf");
  const templatePath = process.env.ROUTELMT_BENCH_TEMPLATE ?? path.join(shared, "models/tinymt.template");
  const sourcesPath =
    process.env.ROUTELMT_BENCH_SOURCES ?? path.join(shared, "data/multi30k-en-de/val.jsonl");
  const missing = [modelPath, templatePath, sourcesPath].filter((file) => !existsSync(file));
  if (missing.length > 0) return { bench: "decision-cost", skipped: `missing ${missing.join(", ")}` };
  const count = Number(process.env.ROUTELMT_BENCH_SENTENCES ?? 64);
  const sources = readFileSync(sourcesPath, "utf8")
    .split("\n")
    .filter(Boolean)
    .slice(0, count)
    .map((line) => (JSON.parse(line) as { src: string }).src);
  const translator = await LlamaTranslator.create({
    modelPath,
    threads: 1,
    sequences: 1,
    template: await loadPromptTemplate(templatePath),
    maxTokens: 64,
    entropy: false,
  });
  const head = randomHead(translator.featureIdentity.dim);
  const decideMs: number[] = [];
  const decodeMs: number[] = [];
  const outputTokens: number[] = [];
  try {
    for (const text of sources) {
      const request = { text, srcLang: "en", tgtLang: "de" };
      // Alternate the two paths sentence by sentence so machine load hits both alike.
      let started = performance.now();
      const prefilled = await translator.prefill(request);
      predict(head, prefilled.features);
      decideMs.push(performance.now() - started);
      await prefilled.release();
      started = performance.now();
      const hypothesis = await (await translator.prefill(request)).continue();
      decodeMs.push(performance.now() - started);
      outputTokens.push(hypothesis.outputTokens ?? 0);
    }
  } finally {
    await translator.dispose();
  }
  // The words block: computed from the text after the prefill, then a probe wider by its 1,024 values.
  const wordsHead = randomHead(head.dim + SOURCE_WORDS_DIM);
  const modelFeatures = new Float32Array(head.dim);
  const wordsUs: number[] = [];
  const repeats = 200;
  for (const text of sources) {
    const started = performance.now();
    for (let repeat = 0; repeat < repeats; repeat++) {
      const row = new Float32Array(wordsHead.dim);
      row.set(modelFeatures);
      row.set(sourceWordFeatures(text), head.dim);
      predict(wordsHead, row);
    }
    wordsUs.push(((performance.now() - started) * 1000) / repeats);
  }
  const decide = median(decideMs);
  const decode = median(decodeMs);
  const words = median(wordsUs);
  return {
    bench: "decision-cost",
    model: path.basename(modelPath),
    sentences: sources.length,
    median_output_tokens: median(outputTokens),
    routelmt_decision_ms_p50: Number(decide.toFixed(3)),
    decode_then_qe_before_qe_ms_p50: Number(decode.toFixed(3)),
    ratio_decode_then_qe_vs_routelmt: Number((decode / decide).toFixed(2)),
    words_block_us_p50: Number(words.toFixed(1)),
    ratio_decision_with_words_vs_without: Number(((decide + words / 1000) / decide).toFixed(3)),
    note: "decode-then-QE also pays a QE model call (e.g. CometKiwi) not included here",
  };
}

runIfMain(import.meta.url, run);
