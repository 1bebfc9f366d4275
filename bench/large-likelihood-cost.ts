/**
 * What the large model's likelihood of a translation costs (`scoreTranslation`: one forced-decoding
 * prefill of prompt and translation, reading the next-token distribution at every translation token)
 * against decoding that translation with the same model, one sentence at a time on one context.
 * Prints one JSON object. Run: `npx tsx bench/large-likelihood-cost.ts`.
 *
 * Models and data come from `../shared` unless ROUTELMT_BENCH_MODELS (comma-separated GGUF files),
 * ROUTELMT_BENCH_SOURCES (JSONL with a `src` field) and ROUTELMT_BENCH_SENTENCES (default 30) say
 * otherwise. Greedy, no repeat penalty, at most 32 new tokens, 2 threads.
 */
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { readGgufFileInfo } from "node-llama-cpp";
import { LlamaTranslator } from "../src/translators/llama-translator.js";
import { parsePromptTemplate } from "../src/translators/prompt-template.js";
import type { TranslationRequest } from "../src/translators/types.js";
import { runIfMain } from "./run-if-main.js";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const shared = path.resolve(repoRoot, "../shared");

async function measure(modelPath: string, requests: readonly TranslationRequest[]) {
  const translator = await LlamaTranslator.create({
    modelPath,
    threads: 2,
    maxTokens: 32,
    sequences: 1,
    readsFeatures: false,
    entropy: false,
    template: parsePromptTemplate("English: {text}\nGerman:", "inline"),
  });
  try {
    const texts: string[] = [];
    let tokens = 0;
    let started = performance.now();
    for (const request of requests) {
      const [translation] = await translator.translate([request]);
      texts.push(translation?.text ?? "");
      tokens += translation?.outputTokens ?? 0;
    }
    const decodeMs = (performance.now() - started) / requests.length;
    started = performance.now();
    for (const [index, request] of requests.entries())
      await translator.scoreTranslation(request, texts[index] ?? "");
    const scoreMs = (performance.now() - started) / requests.length;
    const info = await readGgufFileInfo(modelPath, { readTensorInfo: false });
    const vocabulary = info.metadata.tokenizer?.ggml?.tokens?.length ?? null;
    return {
      model: path.basename(modelPath),
      vocabulary,
      mean_output_tokens: Number((tokens / requests.length).toFixed(1)),
      decode_ms_per_sentence: Number(decodeMs.toFixed(1)),
      score_ms_per_sentence: Number(scoreMs.toFixed(1)),
      ratio_score_vs_decode: Number((scoreMs / decodeMs).toFixed(3)),
    };
  } finally {
    await translator.dispose();
  }
}

export async function run(): Promise<Record<string, unknown>> {
  const models = (process.env.ROUTELMT_BENCH_MODELS ?? path.join(shared, "models/tinymt-large.gguf"))
    .split(",")
    .filter(Boolean);
  const sources = process.env.ROUTELMT_BENCH_SOURCES ?? path.join(shared, "data/multi30k-en-de/val.jsonl");
  const missing = [...models, sources].filter((file) => !existsSync(file));
  if (missing.length > 0) return { bench: "large-likelihood-cost", skipped: `missing ${missing.join(", ")}` };
  const count = Number(process.env.ROUTELMT_BENCH_SENTENCES ?? 30);
  const requests: TranslationRequest[] = readFileSync(sources, "utf8")
    .split("\n")
    .filter(Boolean)
    .slice(0, count)
    .map((line, index) => ({
      id: String(index),
      text: (JSON.parse(line) as { src: string }).src,
      srcLang: "en",
      tgtLang: "de",
    }));
  const results = [];
  for (const model of models) results.push(await measure(model, requests));
  return { bench: "large-likelihood-cost", sentences: requests.length, results };
}

runIfMain(import.meta.url, run);
