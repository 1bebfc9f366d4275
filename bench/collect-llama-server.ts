/**
 * Collect throughput against llama.cpp's real server (scripts/build-llama-server.sh): the tinymt
 * pair served remotely — the small model through `/v1/embeddings` (last-token pooling) and
 * `/v1/completions`, the large one through `/v1/completions` — with 1, 4 and 8 server slots and
 * `collect --concurrency` matching, in one run. Each server gets one thread. Prints one JSON object
 * with segments per second and ratios against the 1-slot run. Run: `npx tsx bench/collect-llama-server.ts`.
 *
 * ROUTELMT_BENCH_SEGMENTS sets how many Multi30k validation segments (default 200). Without the
 * server binary or ../shared the result is a skip note.
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
import { llamaServerBinary, llamaServerPath, startLlamaServer } from "../test/helpers/llama-server.js";
import { runIfMain } from "./run-if-main.js";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const shared = process.env.ROUTELMT_SHARED ?? path.resolve(repoRoot, "../shared");
const MAX_TOKENS = 64;

async function collectAt(slots: number, segments: number): Promise<Record<string, number>> {
  const sources = path.join(shared, "data/multi30k-en-de/val.jsonl");
  const template = await loadPromptTemplate(path.join(shared, "models/tinymt.template"));
  const { segments: input, sha256: inputSha256 } = await readCollectInput(sources, {
    needsReference: true,
    srcLang: "en",
    tgtLang: "de",
    limit: segments,
  });
  const [smallServer, largeServer] = await Promise.all([
    startLlamaServer({
      model: path.join(shared, "models/tinymt-small.gguf"),
      parallel: slots,
      embeddingsPooling: "last",
    }),
    startLlamaServer({ model: path.join(shared, "models/tinymt-large.gguf"), parallel: slots }),
  ]);
  const common = { threads: 1, template, concurrency: slots, maxTokens: MAX_TOKENS };
  const small = await openProbedTranslator(`openai:${smallServer.url}#tinymt-small`, {
    ...common,
    remoteDim: 128,
  });
  const large = await openTranslator(`openai+completions:${largeServer.url}#tinymt-large`, common);
  const out = await mkdtemp(path.join(tmpdir(), "routelmt-bench-collect-server-"));
  try {
    const started = performance.now();
    const summary = await collectDataset({
      segments: input,
      input: sources,
      inputSha256,
      out,
      small,
      smallSpec: "tinymt-small (llama-server)",
      large,
      largeSpec: "tinymt-large (llama-server)",
      largeFingerprint: null,
      metric: createMetric("chrf"),
      maxTokens: MAX_TOKENS,
      chunkSize: 16,
      concurrency: slots,
    });
    const seconds = (performance.now() - started) / 1000;
    return {
      slots,
      concurrency: slots,
      segments: summary.n,
      seconds: Number(seconds.toFixed(3)),
      segments_per_second: Number((summary.n / seconds).toFixed(3)),
    };
  } finally {
    await small.dispose();
    await large.dispose();
    await Promise.all([smallServer.stop(), largeServer.stop()]);
    await rm(out, { recursive: true, force: true });
  }
}

export async function run(): Promise<Record<string, unknown>> {
  if (llamaServerBinary() === null) {
    return { bench: "collect-llama-server", skipped: `no llama-server at ${llamaServerPath()}` };
  }
  if (!existsSync(path.join(shared, "models/tinymt-large.gguf"))) {
    return { bench: "collect-llama-server", skipped: `no tinymt models under ${shared}` };
  }
  const segments = Number(process.env.ROUTELMT_BENCH_SEGMENTS ?? 200);
  const runs = [];
  for (const slots of [1, 4, 8]) runs.push(await collectAt(slots, segments));
  const baseline = runs[0]!.segments_per_second!;
  return {
    bench: "collect-llama-server",
    pair: "tinymt-small (embeddings + completions) / tinymt-large (completions) on llama-server, one thread each, chrF labels, greedy, max 64 tokens",
    runs,
    ratio_vs_1_slot: Object.fromEntries(
      runs.map((entry) => [`${entry.slots}`, Number((entry.segments_per_second! / baseline).toFixed(3))]),
    ),
  };
}

runIfMain(import.meta.url, run);
