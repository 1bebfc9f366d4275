/**
 * Where `routelmt serve` spends a request, one request at a time. `bench/server-overhead.ts` says
 * how much the server adds; this says where: the server (with
 * `bench/helpers/http-timeline-preload.mjs` preloaded, which reads Node's HTTP diagnostics channels)
 * records when a chat completion arrives, when each of its two engine calls (the small model's
 * embeddings, then its completion) starts and ends, and when the answer is finished, plus its own
 * CPU time. Prints one JSON object: per stage the median and mean in ms, the server's CPU time per
 * request, and the client's p50 latency. Run: `npx tsx bench/server-timeline.ts`.
 *
 * Setup: a fake OpenAI-compatible engine answering at once (test/helpers/fake-openai-server.ts, in
 * this process, as the load generator is: requests go one at a time, so they do not compete) and
 * `routelmt serve` — the built CLI, `npm run build` first — in its own process on 127.0.0.1, budget
 * 0.2, so most requests stay on the small model and make both calls.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { mean, median, sortScores } from "../src/stats/index.js";
import { startFakeOpenAIServer } from "../test/helpers/fake-openai-server.js";
import { remoteRouter, sampleText, writeRouter } from "../test/server-fixtures.js";
import { builtCli } from "./helpers/built-cli.js";
import { awaitChildOutput } from "./helpers/child-output.js";
import { runIfMain } from "./run-if-main.js";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
/** Requests before measuring: enough for V8 to optimise the hot path (300 are not). */
const WARM_UP = 2000;
const REQUESTS = Number(process.env.ROUTELMT_BENCH_REQUESTS ?? 2000);
const START_TIMEOUT_MS = 60_000;

/** The stages of a request kept on the small model, in order, between consecutive timeline events. */
const STAGES = [
  "arrival_to_features_call",
  "features_call",
  "features_answer_to_decode_call",
  "decode_call",
  "decode_answer_to_finish",
] as const;

type TimelineEvent = [kind: "in" | "out" | "call" | "done", atMs: number, path: string];

const round = (value: number) => Math.round(value * 1000) / 1000;

const medianOf = (values: readonly number[]) => median(sortScores(values));

/**
 * Cuts the event stream into requests (from `in` to `out`; requests go one at a time, so events do
 * not interleave) and keeps those with exactly the two engine calls of a request kept small.
 */
export function keptSmallSpans(events: readonly TimelineEvent[]): number[][] {
  const spans: number[][] = [];
  let current: TimelineEvent[] = [];
  for (const event of events) {
    if (event[0] === "in") current = [event];
    else current.push(event);
    if (event[0] !== "out") continue;
    const kinds = current.map(([kind]) => kind).join(",");
    const keptSmall =
      kinds === "in,call,done,call,done,out" &&
      current[1]![2].endsWith("/embeddings") &&
      current[3]![2].endsWith("/completions") &&
      !current[3]![2].endsWith("/chat/completions");
    if (keptSmall) {
      spans.push(current.slice(1).map((event, index) => event[1] - current[index]![1]));
    }
  }
  return spans;
}

async function signalAndRead(child: ChildProcess, file: string) {
  await rm(file, { force: true });
  child.kill("SIGUSR2");
  for (let attempt = 0; attempt < 200; attempt++) {
    try {
      return JSON.parse(await readFile(file, "utf8")) as {
        events: TimelineEvent[];
        cpu_user_us: number;
        cpu_system_us: number;
      };
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }
  throw new Error("the server wrote no timeline");
}

export async function run(): Promise<Record<string, unknown>> {
  const work = await mkdtemp(path.join(tmpdir(), "routelmt-bench-timeline-"));
  const engine = await startFakeOpenAIServer({
    label: "engine",
    models: ["small", "large"],
    embeddingDim: 8,
  });
  let server: ChildProcess | undefined;
  try {
    const routerFile = await writeRouter(
      work,
      remoteRouter(engine.url, { fingerprint: `remote:${engine.url}#small` }),
    );
    const timelineFile = path.join(work, "timeline.json");
    server = spawn(
      process.execPath,
      [
        ...["--import", path.join(repoRoot, "bench/helpers/http-timeline-preload.mjs")],
        builtCli(repoRoot),
        ...["serve", "--small", `openai:${engine.url}#small`, "--small-dim", "8"],
        ...["--large", `openai:${engine.url}#large`, "--router", routerFile, "--budget", "0.2"],
        ...["--port", "0", "--log-level", "warn"],
      ],
      {
        cwd: repoRoot,
        stdio: ["ignore", "pipe", "pipe"],
        env: { ...process.env, ROUTELMT_TIMELINE_OUT: timelineFile },
      },
    );
    const child = server;
    const origin = await awaitChildOutput(
      child,
      /listening on (http:\/\/127\.0\.0\.1:\d+)/,
      START_TIMEOUT_MS,
    );
    const send = async (index: number) => {
      const answer = await fetch(`${origin}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "routelmt", messages: [{ role: "user", content: sampleText(index) }] }),
      });
      await answer.arrayBuffer();
      if (!answer.ok) throw new Error(`HTTP ${answer.status}`);
    };
    for (let index = 0; index < WARM_UP; index++) await send(index);
    await signalAndRead(child, timelineFile);
    const latencies: number[] = [];
    for (let index = 0; index < REQUESTS; index++) {
      const begin = performance.now();
      await send(index);
      latencies.push(performance.now() - begin);
    }
    const recorded = await signalAndRead(child, timelineFile);
    const spans = keptSmallSpans(recorded.events);
    const stages = Object.fromEntries(
      STAGES.map((stage, index) => {
        const values = spans.map((span) => span[index]!);
        return [stage, { p50_ms: round(medianOf(values)), mean_ms: round(mean(values)) }];
      }),
    );
    const held = spans.map((span) => span.reduce((sum, value) => sum + value, 0));
    const engineCalls = spans.map((span) => span[1]! + span[3]!);
    const cpuMs = (recorded.cpu_user_us + recorded.cpu_system_us) / 1000;
    return {
      benchmark: "server-timeline",
      node: process.version,
      requests: REQUESTS,
      kept_small_requests: spans.length,
      client_p50_ms: round(medianOf(latencies)),
      server_held_p50_ms: round(medianOf(held)),
      engine_calls_p50_ms: round(medianOf(engineCalls)),
      server_own_p50_ms: round(medianOf(held.map((value, index) => value - engineCalls[index]!))),
      server_cpu_ms_per_request: round(cpuMs / REQUESTS),
      server_cpu_system_share: round(
        recorded.cpu_system_us / (recorded.cpu_user_us + recorded.cpu_system_us),
      ),
      stages,
    };
  } finally {
    if (server && server.exitCode === null) {
      const exited = new Promise<void>((resolve) => server!.once("exit", () => resolve()));
      server.kill("SIGTERM");
      await exited;
    }
    await engine.close();
    await rm(work, { recursive: true, force: true });
  }
}

runIfMain(import.meta.url, run);
