/**
 * Collect throughput on the tinymt pair: segments per second with the two models decoding one
 * sequence each (the deterministic default) versus 4 parallel sequences per model (batched), and
 * what reading the large model's likelihood of each small translation costs (the default, against
 * `--no-large-likelihood`, one sequence each), in one run. Prints one JSON object. Run: `npx tsx bench/collect-throughput.ts`.
 *
 * Models and data come from `../shared` unless ROUTELMT_BENCH_SMALL, ROUTELMT_BENCH_LARGE,
 * ROUTELMT_BENCH_TEMPLATE and ROUTELMT_BENCH_SOURCES (JSONL with id/src/ref) say otherwise;
 * ROUTELMT_BENCH_SEGMENTS sets how many (default 48). Without them the result is a skip note.
 */
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { collectDataset, readCollectInput } from "../src/collect/index.js";
import { createMetric } from "../src/metrics/index.js";
import { openProbedTranslator, openTranslator } from "../src/translators/open.js";
import { loadPromptTemplate } from "../src/translators/prompt-template.js";
import { runIfMain } from "./run-if-main.js";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const shared = path.resolve(repoRoot, "../shared");

async function collectOnce(
  concurrency: number,
  paths: Record<string, string>,
  segments: number,
  largeLikelihood = true,
) {
  const template = await loadPromptTemplate(paths.template as string);
  const { segments: input, sha256: inputSha256 } = await readCollectInput(paths.sources as string, {
    needsReference: true,
    srcLang: "en",
    tgtLang: "de",
    limit: segments,
  });
  const common = { threads: 1, template, concurrency, maxTokens: 64 };
  const small = await openProbedTranslator(paths.small as string, common);
  const large = await openTranslator(paths.large as string, common);
  const out = await mkdtemp(path.join(tmpdir(), "routelmt-bench-collect-"));
  try {
    const started = performance.now();
    const summary = await collectDataset({
      segments: input,
      input: paths.sources as string,
      inputSha256,
      out,
      small,
      smallSpec: paths.small as string,
      large,
      largeSpec: paths.large as string,
      largeFingerprint: null,
      metric: createMetric("chrf"),
      maxTokens: 64,
      chunkSize: 16,
      largeLikelihood,
    });
    const seconds = (performance.now() - started) / 1000;
    return {
      concurrency,
      large_likelihood: largeLikelihood,
      segments: summary.n,
      seconds: Number(seconds.toFixed(3)),
      segments_per_second: Number((summary.n / seconds).toFixed(3)),
    };
  } finally {
    await small.dispose();
    await large.dispose();
    await rm(out, { recursive: true, force: true });
  }
}

export async function run(): Promise<Record<string, unknown>> {
  const paths = {
    small: process.env.ROUTELMT_BENCH_SMALL ?? path.join(shared, "models/tinymt-small.gguf"),
    large: process.env.ROUTELMT_BENCH_LARGE ?? path.join(shared, "models/tinymt-large.gguf"),
    template: process.env.ROUTELMT_BENCH_TEMPLATE ?? path.join(shared, "models/tinymt.template"),
    sources: process.env.ROUTELMT_BENCH_SOURCES ?? path.join(shared, "data/multi30k-en-de/val.jsonl"),
  };
  const missing = Object.values(paths).filter((file) => !existsSync(file));
  if (missing.length > 0) return { bench: "collect-throughput", skipped: `missing ${missing.join(", ")}` };
  const segments = Number(process.env.ROUTELMT_BENCH_SEGMENTS ?? 48);
  const sequential = await collectOnce(1, paths, segments);
  const batched = await collectOnce(4, paths, segments);
  const withoutLikelihood = await collectOnce(1, paths, segments, false);
  return {
    bench: "collect-throughput",
    pair: "tinymt-small / tinymt-large, chrF labels, greedy, max 64 tokens, 1 thread per model",
    sequential,
    batched,
    ratio_batched_vs_sequential: Number(
      (batched.segments_per_second / sequential.segments_per_second).toFixed(3),
    ),
    without_large_likelihood: withoutLikelihood,
    ratio_with_vs_without_large_likelihood: Number(
      (sequential.segments_per_second / withoutLikelihood.segments_per_second).toFixed(3),
    ),
  };
}

runIfMain(import.meta.url, run);
