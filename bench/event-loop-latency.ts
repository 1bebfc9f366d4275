/**
 * Whether `routelmt serve` keeps its event loop free while it translates: the latency of `GET
 * /healthz` (which does no work of its own) while 64 long translations run, for every choice of
 * small engine. Prints one JSON object. Run: `npx tsx bench/event-loop-latency.ts`.
 *
 * Engines (the small model; the large one is a fake OpenAI-compatible engine, unused at budget 0):
 * - `remote`: an OpenAI-compatible small model (a fake engine in its own process, this file run with
 *   `--fake-engine`, decoding one word every TOKEN_DELAY_MS);
 * - `llama`: in process on node-llama-cpp (`--feature-engine llama`, 4 sequences);
 * - `ffi`: in process on the FFI engine in its worker thread (`--feature-engine ffi`, 4 sequences;
 *   linux-x64 only, skipped elsewhere with a note).
 * In-process models: a generated random-weight llama (test/helpers/tiny-llama.ts; it rarely stops,
 * so every translation decodes `--max-tokens` tokens) — the 0.14 M-parameter tiny model, and the
 * 70 M-parameter, 32k-vocabulary one (`ROUTELMT_BENCH_EVENT_LOOP_MODELS=tiny,bench70m`, the default;
 * its prefills and decode steps take milliseconds, where a blocking engine shows).
 *
 * Per engine and model, in one server process: idle probes first, then LOAD_SECONDS of load — 64
 * clients each sending translations of one long text back to back — while one client probes
 * `/healthz` every PROBE_INTERVAL_MS, one probe at a time. Probes use node:http on a keep-alive
 * agent, so the client adds little of its own. Each probe is followed by one of a control: a bare
 * node:http server in a process of its own (this file run with `--control`), whose latency is what
 * the machine itself adds at that moment (scheduling on shared cores), not any event loop's work.
 * Target: p99 under load ≤ 10 ms.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import http from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { ffiEngineAvailable } from "../src/translators/open.js";
import { startFakeOpenAIServer } from "../test/helpers/fake-openai-server.js";
import { BENCH_LLAMA_OPTIONS, type TinyLlamaOptions } from "../test/helpers/tiny-llama.js";
import { remoteRouter, tinyGgufWithRouter, writeRouter } from "../test/server-fixtures.js";
import { isMainModule, printJsonResult } from "./run-if-main.js";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const CLIENTS = 64;
const LOAD_SECONDS = 8;
const PROBE_INTERVAL_MS = 5;
const IDLE_PROBES = 200;
const TARGET_P99_MS = 10;
const TOKEN_DELAY_MS = 5;
const START_TIMEOUT_MS = 120_000;
const FAKE_ENGINE_FLAG = "--fake-engine";
const CONTROL_FLAG = "--control";
/** The text every client translates: long enough for a long decode from the remote fake (one word per token). */
const LONG_TEXT = Array.from(
  { length: 12 },
  (_, index) => `The quick brown fox number ${index} jumps over the lazy dog near the river bank.`,
).join(" ");

/** The in-process models, by name: generated llama shapes and their decode length per translation. */
const MODELS: Record<string, { options: Partial<TinyLlamaOptions>; maxTokens: number }> = {
  tiny: { options: { contextLength: 1024, name: "tiny-event-loop" }, maxTokens: 256 },
  bench70m: { options: { ...BENCH_LLAMA_OPTIONS }, maxTokens: 64 },
};

interface Quantiles {
  count: number;
  p50_ms: number;
  p99_ms: number;
  max_ms: number;
}

function quantiles(latencies: number[]): Quantiles {
  const sorted = [...latencies].sort((a, b) => a - b);
  const at = (probability: number) => {
    const position = probability * (sorted.length - 1);
    const lower = Math.floor(position);
    const upper = Math.min(lower + 1, sorted.length - 1);
    return sorted[lower]! + (position - lower) * (sorted[upper]! - sorted[lower]!);
  };
  const round = (value: number) => Math.round(value * 100) / 100;
  return {
    count: sorted.length,
    p50_ms: round(at(0.5)),
    p99_ms: round(at(0.99)),
    max_ms: round(sorted.at(-1)!),
  };
}

const agent = new http.Agent({ keepAlive: true });

/** One HTTP request with node:http; resolves with the status once the whole answer is read. */
function request(url: string, body?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const outgoing = http.request(
      url,
      {
        method: body === undefined ? "GET" : "POST",
        agent,
        headers:
          body === undefined
            ? {}
            : { "content-type": "application/json", "content-length": Buffer.byteLength(body) },
      },
      (answer) => {
        answer.resume();
        answer.on("end", () => resolve(answer.statusCode ?? 0));
        answer.on("error", reject);
      },
    );
    outgoing.on("error", reject);
    outgoing.end(body);
  });
}

async function probe(origin: string): Promise<number> {
  const started = performance.now();
  const status = await request(`${origin}/healthz`);
  if (status !== 200) throw new Error(`/healthz answered ${status}`);
  return performance.now() - started;
}

const sleep = (milliseconds: number) => new Promise((resolve) => setTimeout(resolve, milliseconds));

/** Probes /healthz (and the control) while CLIENTS clients translate for LOAD_SECONDS. */
async function measure(origin: string, controlOrigin: string) {
  const idle: number[] = [];
  for (let index = 0; index < IDLE_PROBES; index++) {
    idle.push(await probe(origin));
    await sleep(1);
  }
  const control: number[] = [];
  const body = JSON.stringify({ text: LONG_TEXT, source_lang: "en", target_lang: "de" });
  const deadline = performance.now() + LOAD_SECONDS * 1000;
  let completed = 0;
  let failed = 0;
  const loadStarted = performance.now();
  const clients = Array.from({ length: CLIENTS }, async () => {
    while (performance.now() < deadline) {
      const status = await request(`${origin}/v1/translate`, body).catch(() => 0);
      if (status === 200) completed++;
      else failed++;
    }
  });
  let loading = true;
  const load = Promise.all(clients).finally(() => {
    loading = false;
  });
  const underLoad: number[] = [];
  // Probes only while every client is still busy, so each probe meets the full load.
  while (loading && performance.now() < deadline) {
    underLoad.push(await probe(origin));
    control.push(await probe(controlOrigin));
    await sleep(PROBE_INTERVAL_MS);
  }
  await load;
  const loadSeconds = (performance.now() - loadStarted) / 1000;
  const loaded = quantiles(underLoad);
  return {
    healthz_idle: quantiles(idle),
    healthz_under_load: loaded,
    control_under_load: quantiles(control),
    translations: { completed, failed, per_s: Math.round((completed / loadSeconds) * 100) / 100 },
    meets_target: loaded.p99_ms <= TARGET_P99_MS,
  };
}

/** Starts a child and resolves with the first match of `ready` in its output. */
function startChild(args: string[], ready: RegExp): { child: ChildProcess; started: Promise<string> } {
  const child = spawn(process.execPath, ["--import", "tsx", ...args], {
    cwd: repoRoot,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const started = new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`did not start: ${output}`)), START_TIMEOUT_MS);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const match = ready.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`exited with ${code}: ${output}`));
    });
  });
  return { child, started };
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
  await exited;
  clearTimeout(timer);
}

/** Runs `routelmt serve` with `flags`, measures, stops it. */
async function measureServer(flags: string[], controlOrigin: string) {
  const serve = startChild(
    [
      path.join(repoRoot, "src/cli/run.ts"),
      "serve",
      "--port",
      "0",
      "--budget",
      "0",
      "--log-level",
      "warn",
      ...flags,
    ],
    /listening on (http:\/\/127\.0\.0\.1:\d+)/,
  );
  try {
    return await measure(await serve.started, controlOrigin);
  } finally {
    await stopChild(serve.child);
  }
}

/** The fake engine process: the remote small model decodes one word per TOKEN_DELAY_MS. */
async function serveFakeEngine(): Promise<void> {
  const engine = await startFakeOpenAIServer({
    label: "small",
    models: ["small", "large"],
    embeddingDim: 8,
    behaviour: (request) =>
      request.path === "/v1/completions"
        ? { kind: "succeed", tokenDelayMs: TOKEN_DELAY_MS }
        : { kind: "succeed" },
  });
  console.log(`fake engine at ${engine.url}`);
  process.once("SIGTERM", () => void engine.close().then(() => process.exit(0)));
}

export async function run(): Promise<Record<string, unknown>> {
  const work = await mkdtemp(path.join(tmpdir(), "routelmt-bench-event-loop-"));
  const fake = startChild(
    [fileURLToPath(import.meta.url), FAKE_ENGINE_FLAG],
    /fake engine at (http:\/\/127\.0\.0\.1:\d+\/v1)/,
  );
  const control = startChild(
    [fileURLToPath(import.meta.url), CONTROL_FLAG],
    /control at (http:\/\/127\.0\.0\.1:\d+)/,
  );
  const results: Record<string, unknown>[] = [];
  try {
    const engineUrl = await fake.started;
    const controlOrigin = await control.started;
    const large = ["--large", `openai:${engineUrl}#large`];
    const remoteRouterFile = await writeRouter(work, remoteRouter(engineUrl), "remote-router.json");
    results.push({
      engine: "remote",
      model: `fake OpenAI-compatible engine, one word per ${TOKEN_DELAY_MS} ms`,
      ...(await measureServer(
        [
          "--small",
          `openai:${engineUrl}#small`,
          "--small-dim",
          "8",
          "--small-concurrency",
          String(CLIENTS),
          "--max-tokens",
          "256",
          "--router",
          remoteRouterFile,
          ...large,
        ],
        controlOrigin,
      )),
    });
    const models = (process.env.ROUTELMT_BENCH_EVENT_LOOP_MODELS ?? "tiny,bench70m").split(",");
    for (const name of models) {
      const model = MODELS[name];
      if (model === undefined)
        throw new Error(`unknown model ${name} (known: ${Object.keys(MODELS).join(", ")})`);
      const fixture = await tinyGgufWithRouter(work, 12, model.options);
      for (const [engine, sequences] of [
        ["llama", 4],
        ["ffi", 4],
      ] as const) {
        if (engine === "ffi" && !ffiEngineAvailable()) {
          results.push({ engine, model: name, skipped: "the FFI engine exists on linux-x64 only" });
          continue;
        }
        results.push({
          engine,
          model: name,
          max_tokens: model.maxTokens,
          ...(await measureServer(
            [
              "--small",
              fixture.modelPath,
              "--threads",
              "1",
              "--feature-engine",
              engine,
              "--small-concurrency",
              String(sequences),
              "--max-tokens",
              String(model.maxTokens),
              "--router",
              fixture.routerFile,
              ...large,
            ],
            controlOrigin,
          )),
        });
      }
    }
  } finally {
    await stopChild(fake.child);
    await stopChild(control.child);
    await rm(work, { recursive: true, force: true });
  }
  return {
    benchmark: "event-loop-latency",
    node: process.version,
    clients: CLIENTS,
    load_seconds: LOAD_SECONDS,
    probe_interval_ms: PROBE_INTERVAL_MS,
    target_p99_ms: TARGET_P99_MS,
    results,
  };
}

if (isMainModule(import.meta.url) && process.argv.includes(FAKE_ENGINE_FLAG)) {
  await serveFakeEngine();
} else if (isMainModule(import.meta.url) && process.argv.includes(CONTROL_FLAG)) {
  const server = http.createServer((_request, response) => response.end('{"status":"ok"}'));
  server.listen(0, "127.0.0.1", () => {
    const address = server.address() as { port: number };
    console.log(`control at http://127.0.0.1:${address.port}`);
  });
  process.once("SIGTERM", () => server.close(() => process.exit(0)));
} else if (isMainModule(import.meta.url)) {
  printJsonResult(run());
}
