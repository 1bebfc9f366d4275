/**
 * Three `routelmt serve` replicas (in-process apps, real HTTP on 127.0.0.1) sharing one budget
 * through a real redis-server: the global realized fraction, the hard cap on the global sequence of
 * decisions (rebuilt from every replica's audit log), and Redis killed and restarted mid-run.
 */
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { FastifyInstance } from "fastify";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { buildApp } from "../src/server/app.js";
import { maxLargeInAnyWindow, maxOverspendOfLongRuns } from "../src/server/decision-window.js";
import type { AuditEntry } from "../src/server/shared-budget-ledger.js";
import { runCliCaptured } from "./helpers/cli.js";
import { type FakeOpenAIServer, startFakeOpenAIServer } from "./helpers/fake-openai-server.js";
import {
  type RedisServer,
  redisServerBinary,
  redisSkipReason,
  startRedisServer,
} from "./helpers/redis-server.js";
import {
  fakeServerConfig,
  postJson,
  remoteRouter,
  runConcurrently,
  sampleText,
  startServeProcess,
  writeRouter,
} from "./server-fixtures.js";

/** Thousands of requests through several servers in one process: minutes on a loaded machine. */
const HEAVY_TEST_TIMEOUT_MS = 300_000;
const available = redisServerBinary() !== null;
const BUDGET = 0.2;
const WINDOW = 1500;
const REQUESTS = 3000;

let work: string;
let small: FakeOpenAIServer;
let large: FakeOpenAIServer;
let routerFile: string;
let redis: RedisServer;
const apps: FastifyInstance[] = [];

/** Replica of request `index`: 70 % to the first, 20 % to the second, 10 % to the third. */
function replicaOf(index: number): number {
  const slot = index % 10;
  return slot < 7 ? 0 : slot < 9 ? 1 : 2;
}

async function startReplicas(namespace: string): Promise<{ apps: FastifyInstance[]; origins: string[] }> {
  const started: FastifyInstance[] = [];
  const origins: string[] = [];
  for (let replica = 0; replica < 3; replica++) {
    const app = await buildApp(
      fakeServerConfig(small.url, large.url, routerFile, {
        budget: BUDGET,
        window: WINDOW,
        "budget-store": redis.url,
        "budget-store-namespace": namespace,
        // A loaded test machine can stall the event loop past 50 ms; only a real outage should
        // make these replicas decide locally (a frozen store's bound is tested on the ledger).
        "budget-store-timeout-ms": 2000,
      }),
    );
    apps.push(app);
    started.push(app);
    origins.push(await app.listen({ port: 0, host: "127.0.0.1" }));
  }
  return { apps: started, origins };
}

/** Every replica's audited decisions of one epoch, in the global order. */
function globalLog(replicas: FastifyInstance[], epoch: string): AuditEntry[] {
  return replicas
    .flatMap((app) => [...(app.routelmt.sharedBudget?.auditLog() ?? [])])
    .filter((entry) => entry.epoch === epoch)
    .sort((a, b) => a.seq - b.seq);
}

async function metricValue(origin: string, name: string): Promise<number> {
  const text = await (await fetch(`${origin}/metrics`)).text();
  const line = text
    .split("\n")
    .find((candidate) => candidate.startsWith(`${name} `) || candidate.startsWith(`${name}{`));
  return line === undefined ? Number.NaN : Number(line.split(" ").at(-1));
}

describe.skipIf(!available)(
  `three replicas sharing one budget on redis-server ${available ? "" : redisSkipReason("these tests")}`,
  () => {
    beforeAll(async () => {
      work = await mkdtemp(path.join(tmpdir(), "routelmt-replicas-"));
      small = await startFakeOpenAIServer({ label: "small", models: ["small"], embeddingDim: 8 });
      large = await startFakeOpenAIServer({ label: "large", models: ["large"] });
      routerFile = await writeRouter(work, remoteRouter(small.url, { quantileSamples: REQUESTS }));
      redis = await startRedisServer();
    });

    afterAll(async () => {
      await small.close();
      await large.close();
      await redis?.stop();
    });

    afterEach(async () => {
      while (apps.length > 0) await apps.pop()?.close();
    });

    it(
      "holds p over every replica's decisions and never lets a global window exceed the cap",
      async () => {
        const { apps: replicas, origins } = await startReplicas(`replicas-${process.pid}`);
        const results = await runConcurrently(REQUESTS, 64, (index) =>
          postJson(`${origins[replicaOf(index)]!}/v1/translate`, { text: sampleText(index) }),
        );
        expect(results.filter((result) => result.status !== 200)).toEqual([]);
        const largeCount = results.filter((result) => result.body.model === "large").length;
        expect(Math.abs(largeCount / REQUESTS - BUDGET)).toBeLessThanOrEqual(0.01);

        const epochs = new Set(
          replicas.flatMap((app) => app.routelmt.sharedBudget!.auditLog().map((entry) => entry.epoch)),
        );
        expect(epochs.size).toBe(1);
        const log = globalLog(replicas, [...epochs][0]!);
        // One global sequence: every decision of every replica, numbered 1..3000 without a gap.
        expect(log.map((entry) => entry.seq)).toEqual(
          Array.from({ length: REQUESTS }, (_, index) => index + 1),
        );
        const outcomes = log.map((entry) => (entry.large ? 1 : 0) as number);
        expect(outcomes.reduce((sum, value) => sum + value, 0)).toBe(largeCount);
        expect(log.filter((entry) => entry.replayed)).toEqual([]);
        expect(maxLargeInAnyWindow(outcomes, WINDOW)).toBeLessThanOrEqual(BUDGET * WINDOW);
        expect(maxOverspendOfLongRuns(outcomes, BUDGET, WINDOW)).toBeLessThanOrEqual(1e-9);
        // Each replica saw its share of the traffic and reports the global fraction: that of the
        // window ending at its own latest decision (the store's answer to it).
        expect(replicas.map((app) => app.routelmt.sharedBudget!.auditLog().length)).toEqual([2100, 600, 300]);
        for (const app of replicas) {
          const snapshot = app.routelmt.hybrid.snapshot();
          const last = app.routelmt.sharedBudget!.auditLog().at(-1)!.seq;
          expect(snapshot.scope).toBe("shared");
          expect(snapshot.realizedFraction).toBeCloseTo(
            outcomes.slice(last - WINDOW, last).reduce((sum, value) => sum + value, 0) / WINDOW,
            9,
          );
        }
        expect(await metricValue(origins[0]!, "routelmt_budget_store_up")).toBe(1);
      },
      HEAVY_TEST_TIMEOUT_MS,
    );

    it(
      "serves every request while Redis is killed, flags the fallback, and resyncs after the restart",
      async () => {
        const { apps: replicas, origins } = await startReplicas(`outage-${process.pid}`);
        const port = redis.port;
        let completed = 0;
        let readyDuringOutage: boolean[] = [];
        let storeUpDuringOutage = Number.NaN;
        const outage = (async () => {
          await expect.poll(() => completed, { timeout: 240_000, interval: 20 }).toBeGreaterThanOrEqual(1000);
          await redis.kill();
          await expect.poll(() => completed, { timeout: 240_000, interval: 20 }).toBeGreaterThanOrEqual(1500);
          readyDuringOutage = await Promise.all(
            origins.map(async (origin) => (await fetch(`${origin}/readyz`)).status === 200),
          );
          storeUpDuringOutage = await metricValue(origins[0]!, "routelmt_budget_store_up");
          await expect.poll(() => completed, { timeout: 240_000, interval: 20 }).toBeGreaterThanOrEqual(2000);
          redis = await startRedisServer(port);
        })();
        const results = await runConcurrently(REQUESTS, 64, async (index) => {
          const result = await postJson(`${origins[replicaOf(index)]!}/v1/translate`, {
            text: sampleText(index),
          });
          completed++;
          return result;
        });
        await outage;
        expect(results.filter((result) => result.status !== 200)).toEqual([]);
        expect(readyDuringOutage).toEqual([true, true, true]);
        expect(storeUpDuringOutage).toBe(0);
        for (const origin of origins) {
          expect(await metricValue(origin, "routelmt_budget_store_fallbacks_total")).toBeGreaterThanOrEqual(
            1,
          );
          expect(await metricValue(origin, "routelmt_budget_store_local_decisions_total")).toBeGreaterThan(0);
        }
        for (const app of replicas) {
          await expect
            .poll(() => app.routelmt.sharedBudget!.resyncNow(), { timeout: 10_000, interval: 100 })
            .toBe(true);
        }
        expect(await metricValue(origins[0]!, "routelmt_budget_store_up")).toBe(1);
        expect(await metricValue(origins[0]!, "routelmt_budget_store_resyncs_total")).toBe(1);
        const largeCount = results.filter((result) => result.body.model === "large").length;
        expect(largeCount / REQUESTS).toBeLessThanOrEqual(BUDGET + 0.01);
        expect(largeCount / REQUESTS).toBeGreaterThan(BUDGET - 0.03);
        // Before the kill the global sequence held the cap exactly.
        const epochs = [
          ...new Set(
            replicas.flatMap((app) => app.routelmt.sharedBudget!.auditLog().map((entry) => entry.epoch)),
          ),
        ];
        expect(epochs.length).toBe(2);
        const first = globalLog(replicas, epochs[0]!).map((entry) => (entry.large ? 1 : 0) as number);
        expect(first.length).toBeGreaterThanOrEqual(1000);
        expect(maxLargeInAnyWindow(first, WINDOW)).toBeLessThanOrEqual(BUDGET * WINDOW);
        expect(maxOverspendOfLongRuns(first, BUDGET, WINDOW)).toBeLessThanOrEqual(1e-9);
        // After the restart: the local decisions came back into a fresh global sequence.
        const second = globalLog(replicas, epochs[1]!);
        expect(second.map((entry) => entry.seq)).toEqual(second.map((_, index) => index + 1));
        expect(second.some((entry) => entry.replayed)).toBe(true);
      },
      HEAVY_TEST_TIMEOUT_MS,
    );

    it("serve names the shared budget when it starts, and refuses a namespace holding another budget", async () => {
      const namespace = `cli-${process.pid}`;
      const flags = [
        "--budget",
        "0.2",
        "--budget-unit",
        "tokens",
        "--budget-store",
        redis.url,
        "--budget-store-namespace",
        namespace,
      ];
      const serve = await startServeProcess(small.url, large.url, routerFile, [
        ...flags,
        "--log-level",
        "silent",
      ]);
      try {
        expect(serve.output.stdout).toContain(
          `budget 0.2 of tokens, shared through ${redis.url} namespace ${namespace}`,
        );
        const readiness = (await (await fetch(`${serve.origin}/readyz`)).json()) as {
          ready: boolean;
          checks: { budget_store: { ok: boolean; mode: string; namespace: string } };
          budget: { scope: string };
        };
        expect(readiness.ready).toBe(true);
        expect(readiness.checks.budget_store).toMatchObject({ ok: true, mode: "shared", namespace });
        expect(readiness.budget.scope).toBe("shared");
      } finally {
        serve.child.kill("SIGTERM");
        await serve.exited;
      }
      const refused = await runCliCaptured([
        "serve",
        ...[
          "--small",
          `openai:${small.url}#small`,
          "--small-dim",
          "8",
          "--large",
          `openai:${large.url}#large`,
        ],
        ...["--router", routerFile, "--port", "0", ...flags.slice(0, 1), "0.3", ...flags.slice(2)],
      ]);
      expect(refused.code).toBe(2);
      expect(refused.stderr).toMatch(
        new RegExp(
          `budget-store-namespace: "${namespace}" on .* is another deployment's budget: the namespace holds budget 0\\.2`,
        ),
      );
    });
  },
);
