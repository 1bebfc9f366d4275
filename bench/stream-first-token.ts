/**
 * Time to the first text of a streamed answer against the time to the whole answer, through
 * `routelmt serve`, on long texts. Prints one JSON object. Run: `npx tsx bench/stream-first-token.ts`.
 *
 * Cases, each a `routelmt serve` process:
 * - `remote-small`: budget 0, the small model remote (a fake OpenAI-compatible engine in this
 *   process decoding one word every TOKEN_DELAY_MS, as a model decodes tokens);
 * - `remote-large`: budget 1, the routed request's large engine the same fake;
 * - `in-process-small`: budget 0, a generated random-weight llama in process (test/helpers/
 *   tiny-llama.ts; it rarely stops, so each answer decodes `--max-tokens` tokens), on the engine
 *   `--small-concurrency 1` selects. Its first text comes early only once the engine streams tokens
 *   (`DecodeOptions.onText`); until then it comes with the last.
 * Per case, REQUESTS requests one after another, each three ways in turn: streamed chat completion
 * (time to the first content chunk, and to `[DONE]`), and the same unstreamed (time to the answer).
 * Medians are reported, and `first_over_whole`: first text / whole streamed answer.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { median, sortScores } from "../src/stats/index.js";
import { startFakeOpenAIServer } from "../test/helpers/fake-openai-server.js";
import { remoteRouter, tinyGgufWithRouter, writeRouter } from "../test/server-fixtures.js";
import { awaitChildOutput } from "./helpers/child-output.js";
import { runIfMain } from "./run-if-main.js";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const REQUESTS = 10;
const TOKEN_DELAY_MS = 10;
const MAX_TOKENS = 256;
const START_TIMEOUT_MS = 120_000;
/** About 150 words: a long paragraph, decoded word by word by the fake. */
const LONG_TEXT = Array.from(
  { length: 12 },
  (_, index) => `The quick brown fox number ${index} jumps over the lazy dog near the river bank.`,
).join(" ");

/** The median, rounded to 0.01 ms. */
const roundedMedian = (values: readonly number[]) => Math.round(median(sortScores(values)) * 100) / 100;

/** A streamed chat completion: ms to the first content chunk and to the end of the stream. */
async function streamed(origin: string): Promise<{ firstMs: number; wholeMs: number }> {
  const started = performance.now();
  const response = await fetch(`${origin}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      model: "routelmt",
      messages: [{ role: "user", content: LONG_TEXT }],
      stream: true,
    }),
  });
  if (!response.ok || response.body === null) throw new Error(`streamed answer: HTTP ${response.status}`);
  const decoder = new TextDecoder();
  let received = "";
  let firstMs: number | undefined;
  for await (const chunk of response.body) {
    received += decoder.decode(chunk, { stream: true });
    if (firstMs === undefined && received.includes('"delta":{"content":'))
      firstMs = performance.now() - started;
  }
  if (!received.includes("data: [DONE]")) throw new Error("streamed answer ended without [DONE]");
  return { firstMs: firstMs ?? Number.NaN, wholeMs: performance.now() - started };
}

async function plain(origin: string): Promise<number> {
  const started = performance.now();
  const response = await fetch(`${origin}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "routelmt", messages: [{ role: "user", content: LONG_TEXT }] }),
  });
  await response.arrayBuffer();
  if (!response.ok) throw new Error(`plain answer: HTTP ${response.status}`);
  return performance.now() - started;
}

async function startServe(flags: string[]): Promise<{ child: ChildProcess; origin: string }> {
  const child = spawn(
    process.execPath,
    [
      "--import",
      "tsx",
      path.join(repoRoot, "src/cli/run.ts"),
      "serve",
      "--port",
      "0",
      "--log-level",
      "warn",
      ...flags,
    ],
    { cwd: repoRoot, stdio: ["ignore", "pipe", "pipe"] },
  );
  const origin = await awaitChildOutput(child, /listening on (http:\/\/127\.0\.0\.1:\d+)/, START_TIMEOUT_MS);
  return { child, origin };
}

async function measureCase(flags: string[]) {
  const { child, origin } = await startServe(flags);
  try {
    await plain(origin);
    const first: number[] = [];
    const whole: number[] = [];
    const unstreamed: number[] = [];
    for (let index = 0; index < REQUESTS; index++) {
      const stream = await streamed(origin);
      first.push(stream.firstMs);
      whole.push(stream.wholeMs);
      unstreamed.push(await plain(origin));
    }
    return {
      first_text_ms: roundedMedian(first),
      whole_streamed_ms: roundedMedian(whole),
      whole_unstreamed_ms: roundedMedian(unstreamed),
      first_over_whole: Math.round((roundedMedian(first) / roundedMedian(whole)) * 1000) / 1000,
    };
  } finally {
    child.kill("SIGTERM");
    await new Promise((resolve) => child.once("exit", resolve));
  }
}

export async function run(): Promise<Record<string, unknown>> {
  const work = await mkdtemp(path.join(tmpdir(), "routelmt-bench-first-token-"));
  const engine = await startFakeOpenAIServer({
    label: "engine",
    models: ["small", "large"],
    embeddingDim: 8,
    behaviour: (request) =>
      request.path === "/v1/embeddings"
        ? { kind: "succeed" }
        : { kind: "succeed", tokenDelayMs: TOKEN_DELAY_MS },
  });
  try {
    const routerFile = await writeRouter(work, remoteRouter(engine.url));
    const remote = [
      "--small",
      `openai:${engine.url}#small`,
      "--small-dim",
      "8",
      "--large",
      `openai:${engine.url}#large`,
      "--router",
      routerFile,
      "--max-tokens",
      String(MAX_TOKENS),
    ];
    const fixture = await tinyGgufWithRouter(work, 12, { contextLength: 1024, name: "tiny-first-token" });
    return {
      benchmark: "stream-first-token",
      node: process.version,
      requests: REQUESTS,
      text_words: LONG_TEXT.split(" ").length,
      remote_token_delay_ms: TOKEN_DELAY_MS,
      max_tokens: MAX_TOKENS,
      cases: {
        "remote-small": await measureCase([...remote, "--budget", "0"]),
        "remote-large": await measureCase([...remote, "--budget", "1"]),
        "in-process-small": await measureCase([
          "--small",
          fixture.modelPath,
          "--threads",
          "1",
          "--small-concurrency",
          "1",
          "--large",
          `openai:${engine.url}#large`,
          "--router",
          fixture.routerFile,
          "--budget",
          "0",
          "--max-tokens",
          String(MAX_TOKENS),
        ]),
      },
    };
  } finally {
    await engine.close();
    await rm(work, { recursive: true, force: true });
  }
}

runIfMain(import.meta.url, run);
