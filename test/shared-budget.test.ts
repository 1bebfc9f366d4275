/**
 * The budget ledger shared through a real redis-server (started on a free loopback port): the Lua
 * script decides exactly as the in-process cap, namespaces keep deployments apart, and a store that
 * is down or frozen makes decisions fall back within the time bound, then resync.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { BudgetCap } from "../src/routing/budget-cap.js";
import { SharedBudgetLedger, type SharedBudgetLedgerOptions } from "../src/server/shared-budget-ledger.js";
import { createRandom, normal } from "../src/stats/random.js";
import {
  type RedisServer,
  redisServerBinary,
  redisSkipReason,
  startRedisServer,
} from "./helpers/redis-server.js";

const available = redisServerBinary() !== null;
let redis: RedisServer;
const ledgers: SharedBudgetLedger[] = [];
let namespaceCounter = 0;

async function openLedger(overrides: Partial<SharedBudgetLedgerOptions> = {}): Promise<SharedBudgetLedger> {
  const ledger = await SharedBudgetLedger.open({
    url: redis.url,
    namespace: `test-${process.pid}-${namespaceCounter}`,
    budget: 0.3,
    window: 50,
    weighted: false,
    unit: "requests",
    // Generous unless a test measures the bound: a loaded machine must not turn a slow event loop
    // into local decisions where the store's are compared.
    timeoutMs: 2000,
    ttlSeconds: 600,
    // Resyncs are driven by the tests.
    probeIntervalMs: 3_600_000,
    ...overrides,
  });
  ledgers.push(ledger);
  return ledger;
}

describe.skipIf(!available)(
  `shared budget ledger on redis-server ${available ? "" : redisSkipReason("these tests")}`,
  () => {
    beforeAll(async () => {
      redis = await startRedisServer();
    });

    afterAll(async () => {
      await redis?.stop();
    });

    afterEach(async () => {
      namespaceCounter++;
      while (ledgers.length > 0) await ledgers.pop()?.close();
    });

    it("decides exactly as the in-process cap, one call per request or per batch", async () => {
      const random = createRandom(41);
      for (const weighted of [false, true]) {
        namespaceCounter++;
        const ledger = await openLedger({ weighted, unit: weighted ? "tokens" : "requests" });
        const reference = new BudgetCap(0.3, 50, { weighted });
        const wants = Array.from(
          { length: 1500 },
          (_, index) => Math.floor(index / 120) % 2 === 0 || normal(random) > 0.5,
        );
        const weights = wants.map(() => (weighted ? 1 + Math.floor(random.nextFloat() * 90) + 0.25 : 1));
        const expected = wants.map((wanted, index) => {
          const large = wanted && reference.allowsLarge(weights[index]);
          reference.record(large, weights[index]);
          return large;
        });
        const got: boolean[] = [];
        for (let start = 0; start < wants.length; ) {
          // Single requests and batches of up to 7 items.
          const size = Math.min(
            wants.length - start,
            start % 3 === 0 ? 1 + Math.floor(random.nextFloat() * 7) : 1,
          );
          const items = wants.slice(start, start + size).map((wantsLarge, offset) => ({
            wantsLarge,
            weight: weights[start + offset]!,
          }));
          got.push(...(await ledger.decide(items)));
          start += size;
        }
        expect(got).toEqual(expected);
        expect(expected.filter(Boolean).length).toBeGreaterThan(300);
        const audit = ledger.auditLog();
        expect(audit.map((entry) => entry.seq)).toEqual(wants.map((_, index) => index + 1));
        expect(ledger.state()).toMatchObject({
          scope: "shared",
          realizedFraction: reference.realizedFraction(),
        });
      }
    });

    it("keeps namespaces apart and refuses a replica whose budget differs from its namespace's", async () => {
      const first = await openLedger({ namespace: "deployment-a" });
      const second = await openLedger({ namespace: "deployment-b", budget: 0.5 });
      await first.decide([{ wantsLarge: true, weight: 1 }]);
      await second.decide([{ wantsLarge: true, weight: 1 }]);
      expect(first.auditLog()[0]!.seq).toBe(1);
      expect(second.auditLog()[0]!.seq).toBe(1);
      await expect(openLedger({ namespace: "deployment-a", budget: 0.5 })).rejects.toThrow(
        /budget-store-namespace: "deployment-a" on redis:\/\/127\.0\.0\.1:\d+ is another deployment's budget: the namespace holds budget 0\.3, window 50, unit requests; this replica has budget 0\.5/,
      );
      await expect(openLedger({ namespace: "deployment-a", window: 60 })).rejects.toThrow(/window 50/);
    });

    it("decides locally within the bound while Redis is frozen, then reconciles and resyncs", async () => {
      const ledger = await openLedger({ timeoutMs: 50 });
      for (let index = 0; index < 60; index++)
        await ledger.decide([{ wantsLarge: index % 2 === 0, weight: 1 }]);
      redis.child.kill("SIGSTOP");
      try {
        const started = performance.now();
        const outcomes = await ledger.decide([{ wantsLarge: true, weight: 1 }]);
        expect(performance.now() - started).toBeLessThan(50 + 200);
        expect(outcomes).toHaveLength(1);
        expect(ledger.status()).toMatchObject({ ok: false, mode: "local" });
        for (let index = 0; index < 20; index++) {
          const begun = performance.now();
          await ledger.decide([{ wantsLarge: true, weight: 1 }]);
          // Local now: no wait for the store at all.
          expect(performance.now() - begun).toBeLessThan(50);
        }
        expect(ledger.state().scope).toBe("local");
      } finally {
        redis.child.kill("SIGCONT");
      }
      // The frozen call runs once Redis wakes up; the replica reconciles it and appends the rest.
      await expect.poll(() => ledger.resyncNow(), { timeout: 10_000, interval: 100 }).toBe(true);
      const audit = ledger.auditLog();
      expect(new Set(audit.map((entry) => entry.epoch)).size).toBe(1);
      expect(audit.map((entry) => entry.seq)).toEqual(audit.map((_, index) => index + 1));
      // 60 shared decisions, the frozen one (recorded by the store when it woke up), and the 20 local
      // ones replayed (the frozen one too, unless the store recorded it as the replica decided it).
      expect(audit.filter((entry) => entry.replayed).length).toBeGreaterThanOrEqual(20);
      expect(audit.length).toBeGreaterThanOrEqual(81);
      expect(audit.length).toBeLessThanOrEqual(82);
    });

    it("starts locally when Redis is down, and a restarted Redis gets a new epoch and the local decisions", async () => {
      const port = redis.port;
      const ledger = await openLedger({ timeoutMs: 50 });
      await ledger.decide([{ wantsLarge: true, weight: 1 }]);
      const before = ledger.auditLog()[0]!.epoch;
      await redis.kill();
      const started = performance.now();
      const outcomes = await ledger.decide([{ wantsLarge: true, weight: 1 }]);
      expect(performance.now() - started).toBeLessThan(50 + 200);
      expect(outcomes).toHaveLength(1);
      expect(ledger.status()).toMatchObject({ ok: false, mode: "local", pendingReplay: 1 });
      // A replica starting while the store is down serves at once, locally.
      const late = await openLedger({ connectTimeoutMs: 300 });
      expect(late.status()).toMatchObject({ ok: false, mode: "local" });
      for (let index = 0; index < 9; index++) await ledger.decide([{ wantsLarge: false, weight: 1 }]);
      expect(await ledger.resyncNow()).toBe(false);

      redis = await startRedisServer(port);
      await expect.poll(() => ledger.resyncNow(), { timeout: 10_000, interval: 100 }).toBe(true);
      expect(ledger.status()).toMatchObject({ ok: true, mode: "shared", pendingReplay: 0 });
      const replayed = ledger.auditLog().filter((entry) => entry.replayed);
      expect(replayed.map((entry) => entry.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      expect(replayed[0]!.epoch).not.toBe(before);
      expect(replayed.filter((entry) => entry.large).length).toBe(1);
      await ledger.decide([{ wantsLarge: false, weight: 1 }]);
      expect(ledger.auditLog().at(-1)).toMatchObject({ seq: 11, replayed: false, epoch: replayed[0]!.epoch });
    });
  },
);
