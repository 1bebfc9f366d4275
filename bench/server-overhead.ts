/**
 * Latency that `routelmt serve` adds over calling the same engine directly, next to the Portkey AI
 * gateway (npm `@portkey-ai/gateway`) routing to that engine as a custom OpenAI-compatible host.
 * Prints one JSON object. Run: `npx tsx bench/server-overhead.ts`.
 *
 * Setup, all on 127.0.0.1, one process each: a fake OpenAI-compatible engine
 * (test/helpers/fake-openai-server.ts, answering at once; this file run with `--fake-engine`) serves
 * the small model (embeddings + completions) and the large one (chat); `routelmt serve` (budget 0.2,
 * a router over the fake's embeddings); the Portkey gateway (`build/start-server.js --headless`); and
 * the load generator (this process). The gateway binds every interface (it has no host option); all
 * traffic goes to 127.0.0.1. For each concurrency (1, 64, 256) the targets are measured in turn, so
 * drift of a shared machine affects them alike. Requests are chat completions to:
 * - `direct`: the fake engine's /v1/chat/completions;
 * - `direct_two_calls`: the two engine calls routelmt makes for a request kept small, made by the
 *   client itself one after the other (/v1/embeddings, then /v1/completions);
 * - `routelmt`: /v1/chat/completions of routelmt (model `routelmt`), the built CLI users run
 *   (`bin/routelmt.js` over `dist/`: `npm run build` first), not the sources under a loader;
 * - `portkey`: the gateway's /v1/chat/completions with `x-portkey-provider: openai` and
 *   `x-portkey-custom-host` pointing at the fake engine;
 * - `pass_through` and `pass_through_node_http`: the floor of any proxy in Node — a bare fastify app
 *   (`bench/helpers/pass-through.mjs`, plain JavaScript) whose one route forwards the body to the
 *   fake engine's /v1/chat/completions and answers its bytes, with Node's fetch (undici) or with
 *   `node:http` and a keep-alive agent (what routelmt's engine calls use);
 * - `routelmt_baseline` (only with `ROUTELMT_BENCH_BASELINE=<another checkout>`): the same serve
 *   command run from that checkout (built there too), so a change is measured against its base in
 *   one run.
 * Per target and concurrency: p50/p99 latency (ms) and requests/s after a warm-up; `added_ms` is
 * the p50/p99 difference to `direct`, and `routelmt_own_ms` routelmt's difference to
 * `direct_two_calls` (its own work: HTTP, validation, routing, metrics, logging); `ratios` compares
 * routelmt's own cost with the pass-through's added cost, its throughput with `direct_two_calls`'
 * and its p99 with Portkey's, all from this run. Note what the figures compare: a routelmt request makes two
 * engine calls by design (the small model's prefill for the router's features, then the small
 * decode or the large call), a gateway request one; with a remote small model the first call is
 * what buys the routing decision. Bounded: a fixed request count per cell, ~1–2 minutes in total.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { realpathSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { quantile, sortScores } from "../src/stats/index.js";
import { startFakeOpenAIServer } from "../test/helpers/fake-openai-server.js";
import { remoteRouter, sampleText, writeRouter } from "../test/server-fixtures.js";
import { builtCli } from "./helpers/built-cli.js";
import { awaitChildOutput } from "./helpers/child-output.js";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
/** Requests per cell (after warm-up), by concurrency. */
const CELLS: readonly { concurrency: number; requests: number }[] = [
  { concurrency: 1, requests: 200 },
  { concurrency: 64, requests: 1000 },
  { concurrency: 256, requests: 1500 },
];
/** Requests per target before measuring: enough for V8 to optimise the hot path (300 are not). */
const WARM_UP = 2000;
const START_TIMEOUT_MS = 60_000;

interface Cell {
  concurrency: number;
  requests: number;
  failed: number;
  p50_ms: number;
  p99_ms: number;
  requests_per_s: number;
}

const round = (value: number) => Math.round(value * 100) / 100;

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Sends `count` requests at `concurrency`; latencies of the successful ones. */
async function load(
  send: (index: number) => Promise<Response>,
  count: number,
  concurrency: number,
): Promise<{ latencies: number[]; failed: number; seconds: number }> {
  const latencies: number[] = [];
  let failed = 0;
  let next = 0;
  const started = performance.now();
  const worker = async () => {
    while (next < count) {
      const index = next++;
      const begin = performance.now();
      try {
        const response = await send(index);
        await response.arrayBuffer();
        if (response.ok) latencies.push(performance.now() - begin);
        else failed++;
      } catch {
        failed++;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return { latencies, failed, seconds: (performance.now() - started) / 1000 };
}

/** Measures every target at every concurrency, the targets in turn within each concurrency. */
async function measureAll(
  targets: Record<string, (index: number) => Promise<Response>>,
): Promise<Record<string, Cell[]>> {
  const cells: Record<string, Cell[]> = {};
  for (const [name, send] of Object.entries(targets)) {
    await load(send, WARM_UP, 8);
    cells[name] = [];
  }
  for (const { concurrency, requests } of CELLS) {
    for (const [name, send] of Object.entries(targets)) {
      const { latencies, failed, seconds } = await load(send, requests, concurrency);
      const sorted = sortScores(latencies);
      cells[name]!.push({
        concurrency,
        requests,
        failed,
        p50_ms: round(quantile(sorted, 0.5)),
        p99_ms: round(quantile(sorted, 0.99)),
        requests_per_s: round(latencies.length / seconds),
      });
    }
  }
  return cells;
}

/** Starts a child process; `started` resolves with the first group of `ready` once its output matches. */
function startChild(command: string, args: string[], ready: RegExp, environment: NodeJS.ProcessEnv = {}) {
  const child = spawn(command, args, {
    cwd: repoRoot,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...environment },
  });
  const started = awaitChildOutput(child, ready, START_TIMEOUT_MS).catch((error: Error) => {
    throw new Error(`${args.join(" ")} did not start: ${error.message}`);
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

function chatBody(model: string, index: number): string {
  return JSON.stringify({ model, messages: [{ role: "user", content: sampleText(index) }] });
}

const FAKE_ENGINE_FLAG = "--fake-engine";

/** The engine process: serves until killed, printing its base URL. */
async function serveFakeEngine(): Promise<void> {
  const engine = await startFakeOpenAIServer({
    label: "engine",
    models: ["small", "large"],
    embeddingDim: 8,
  });
  console.log(`fake engine at ${engine.url}`);
  process.once("SIGTERM", () => void engine.close().then(() => process.exit(0)));
}

/** `routelmt serve` flags of every routelmt target: small on the fake engine, generous limits, quiet logs. */
function serveArguments(engineUrl: string, routerFile: string): string[] {
  return [
    "serve",
    "--small",
    `openai:${engineUrl}#small`,
    "--small-dim",
    "8",
    "--large",
    `openai:${engineUrl}#large`,
    "--router",
    routerFile,
    "--budget",
    "0.2",
    "--port",
    "0",
    "--small-concurrency",
    "256",
    "--large-concurrency",
    "256",
    "--queue-size",
    "1024",
    "--log-level",
    "warn",
  ];
}

const LISTENING = /listening on (http:\/\/127\.0\.0\.1:\d+)/;

export async function run(): Promise<Record<string, unknown>> {
  const work = await mkdtemp(path.join(tmpdir(), "routelmt-bench-serve-"));
  const children: ChildProcess[] = [];
  try {
    const fake = startChild(
      process.execPath,
      ["--import", "tsx", fileURLToPath(import.meta.url), FAKE_ENGINE_FLAG],
      /fake engine at (http:\/\/127\.0\.0\.1:\d+\/v1)/,
    );
    children.push(fake.child);
    const engine = { url: await fake.started };
    const routerFile = await writeRouter(
      work,
      remoteRouter(engine.url, { fingerprint: `remote:${engine.url}#small` }),
    );
    const routelmt = startChild(
      process.execPath,
      [builtCli(repoRoot), ...serveArguments(engine.url, routerFile)],
      LISTENING,
    );
    children.push(routelmt.child);
    const baselineTree = process.env.ROUTELMT_BENCH_BASELINE;
    const baseline = baselineTree
      ? startChild(
          process.execPath,
          [builtCli(path.resolve(baselineTree)), ...serveArguments(engine.url, routerFile)],
          LISTENING,
        )
      : undefined;
    if (baseline) children.push(baseline.child);
    const passThroughs = (["fetch", "node-http"] as const).map((client) => {
      const started = startChild(
        process.execPath,
        [path.join(repoRoot, "bench/helpers/pass-through.mjs"), engine.url, client],
        /pass-through at (http:\/\/127\.0\.0\.1:\d+)/,
      );
      children.push(started.child);
      return started;
    });
    const portkeyPort = await freePort();
    const portkey = startChild(
      process.execPath,
      [
        path.join(repoRoot, "node_modules/@portkey-ai/gateway/build/start-server.js"),
        `--port=${portkeyPort}`,
        "--headless",
      ],
      /Ready for connections/,
      { NODE_ENV: "production" },
    );
    children.push(portkey.child);
    const routelmtOrigin = await routelmt.started;
    await portkey.started;
    const [passThroughOrigin, passThroughHttpOrigin] = await Promise.all(
      passThroughs.map(async (started) => await started.started),
    );
    const baselineOrigin = baseline ? await baseline.started : undefined;
    const portkeyOrigin = `http://127.0.0.1:${portkeyPort}`;

    const post = (url: string, body: string, headers: Record<string, string> = {}) =>
      fetch(url, { method: "POST", headers: { "content-type": "application/json", ...headers }, body });
    const cells = await measureAll({
      direct: (index) => post(`${engine.url}/chat/completions`, chatBody("large", index)),
      directTwoCalls: async (index) => {
        const prompt = `Translate the following text from English into German:\nEnglish: ${sampleText(index)}\nGerman:`;
        const embedding = await post(
          `${engine.url}/embeddings`,
          JSON.stringify({ model: "small", input: prompt }),
        );
        await embedding.arrayBuffer();
        return post(`${engine.url}/completions`, JSON.stringify({ model: "small", prompt, max_tokens: 256 }));
      },
      routelmt: (index) => post(`${routelmtOrigin}/v1/chat/completions`, chatBody("routelmt", index)),
      ...(baselineOrigin
        ? {
            routelmtBaseline: (index: number) =>
              post(`${baselineOrigin}/v1/chat/completions`, chatBody("routelmt", index)),
          }
        : {}),
      passThrough: (index) => post(`${passThroughOrigin}/v1/chat/completions`, chatBody("large", index)),
      passThroughNodeHttp: (index) =>
        post(`${passThroughHttpOrigin}/v1/chat/completions`, chatBody("large", index)),
      portkey: (index) =>
        post(`${portkeyOrigin}/v1/chat/completions`, chatBody("large", index), {
          authorization: "Bearer unused",
          "x-portkey-provider": "openai",
          "x-portkey-custom-host": engine.url,
        }),
    });
    const direct = cells.direct!;
    const directTwoCalls = cells.directTwoCalls!;
    const viaRoutelmt = cells.routelmt!;
    const viaBaseline = cells.routelmtBaseline;
    const viaPassThrough = cells.passThrough!;
    const viaPassThroughNodeHttp = cells.passThroughNodeHttp!;
    const viaPortkey = cells.portkey!;
    const added = (cells: Cell[], baseline: Cell[]) =>
      cells.map((cell, index) => ({
        concurrency: cell.concurrency,
        p50_ms: round(cell.p50_ms - baseline[index]!.p50_ms),
        p99_ms: round(cell.p99_ms - baseline[index]!.p99_ms),
      }));
    const ownCost = added(viaRoutelmt, directTwoCalls);
    const passThroughCost = added(viaPassThrough, direct);
    const passThroughNodeHttpCost = added(viaPassThroughNodeHttp, direct);
    /** The figures the serving targets are stated in, for one routelmt target. */
    const ratios = (via: Cell[]) =>
      via.map((cell, index) => ({
        concurrency: cell.concurrency,
        own_p50_ms: round(cell.p50_ms - directTwoCalls[index]!.p50_ms),
        own_p50_over_pass_through_p50: round(
          (cell.p50_ms - directTwoCalls[index]!.p50_ms) / passThroughCost[index]!.p50_ms,
        ),
        own_p50_over_pass_through_node_http_p50: round(
          (cell.p50_ms - directTwoCalls[index]!.p50_ms) / passThroughNodeHttpCost[index]!.p50_ms,
        ),
        throughput_over_direct_two_calls: round(cell.requests_per_s / directTwoCalls[index]!.requests_per_s),
        p99_over_portkey_p99: round(cell.p99_ms / viaPortkey[index]!.p99_ms),
        failed: cell.failed,
      }));
    return {
      benchmark: "server-overhead",
      node: process.version,
      engine: "fake OpenAI-compatible server, immediate answers, 127.0.0.1",
      routelmt: { budget: 0.2, engine_calls_per_request: 2 },
      portkey: {
        package: "@portkey-ai/gateway",
        provider: "openai (custom host)",
        engine_calls_per_request: 1,
      },
      pass_through: { server: "fastify, fetch (undici) to the engine", engine_calls_per_request: 1 },
      pass_through_node_http: {
        server: "fastify, node:http keep-alive agent to the engine",
        engine_calls_per_request: 1,
      },
      direct,
      direct_two_calls: directTwoCalls,
      via_routelmt: viaRoutelmt,
      ...(viaBaseline ? { via_routelmt_baseline: viaBaseline } : {}),
      via_pass_through: viaPassThrough,
      via_pass_through_node_http: viaPassThroughNodeHttp,
      via_portkey: viaPortkey,
      added_ms: {
        routelmt: added(viaRoutelmt, direct),
        portkey: added(viaPortkey, direct),
        pass_through: passThroughCost,
        pass_through_node_http: passThroughNodeHttpCost,
        routelmt_own_ms: ownCost,
        ...(viaBaseline ? { routelmt_baseline_own_ms: added(viaBaseline, directTwoCalls) } : {}),
      },
      ratios: {
        routelmt: ratios(viaRoutelmt),
        ...(viaBaseline ? { routelmt_baseline: ratios(viaBaseline) } : {}),
      },
    };
  } finally {
    await Promise.all(children.map(stopChild));
    await rm(work, { recursive: true, force: true });
  }
}

function isMain(): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMain() && process.argv.includes(FAKE_ENGINE_FLAG)) {
  await serveFakeEngine();
} else if (isMain()) {
  run().then(
    (result) => console.log(JSON.stringify(result)),
    (error: unknown) => {
      console.error(error);
      process.exitCode = 1;
    },
  );
}
