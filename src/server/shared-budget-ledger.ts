/**
 * One budget for every replica: the hard cap held in Redis ({@link SHARED_BUDGET_SCRIPT}), with a
 * local fallback so that Redis being slow or down never fails or delays a request.
 *
 * **Shared mode.** Each decision (a request, or all items of a batch) is one script call, atomic in
 * Redis: the window is the global sequence of decisions in the order Redis recorded them, and the
 * cap's guarantee holds on that sequence exactly, whatever the replicas' interleaving. The threshold
 * stays per replica (each tracks the same score distribution behind one load balancer); the
 * realized fraction reported is the global one, from each call's reply.
 *
 * **Fallback.** A call that has not answered within `timeoutMs`, or fails (connection refused or
 * lost), is decided locally, and the replica stays local until the store is back: a window of this
 * replica's share of the global traffic (measured from the sequence numbers the store hands out),
 * W × share decisions, seeded with this replica's own latest decisions. Summed over the replicas
 * the local windows hold about one global window's share, ⌊p·W⌋, so an outage does not multiply
 * the burst allowance by the number of replicas.
 *
 * **Resync.** Every `probeIntervalMs` a local replica checks the store; once it answers (and no
 * call of this replica is still unanswered), the replica appends its local decisions — the last W of
 * them, what any window can still see — to the global sequence, unchecked, in order (the spend they
 * represent then constrains every replica's next decisions), and switches back to shared mode in the
 * same step as its last append, so none of its decisions is missed. A call that timed out but was
 * recorded by the store later is reconciled: if the store recorded the same outcome, or large where
 * the replica went small, it is not appended again; otherwise (the store recorded small, the replica
 * went large) the large decision is appended, and the store counts one decision too many.
 * @module
 */
import { randomUUID } from "node:crypto";
import { Redis, type Result } from "ioredis";
import { UsageError } from "../errors/index.js";
import { BudgetCap, effectiveWindow, hardCap } from "../routing/budget-cap.js";
import type { BudgetLedger, LedgerItem, LedgerState } from "./budget-ledger.js";
import { SHARED_BUDGET_SCRIPT } from "./shared-budget-script.js";

declare module "ioredis" {
  interface RedisCommander<Context> {
    routelmtBudget(...arguments_: string[]): Result<unknown, Context>;
  }
}

/** Why a replica decides locally. */
export type StoreFailureKind = "timeout" | "unavailable" | "error" | "mismatch";

/** What the ledger reports to metrics and logs. */
export type SharedBudgetEvent =
  | { kind: "fallback"; reason: StoreFailureKind; message: string }
  | { kind: "local-decisions"; count: number }
  | { kind: "resync"; replayed: number; dropped: number }
  | { kind: "store-latency"; ms: number }
  | { kind: "epoch"; previous: string | null; current: string };

export interface SharedBudgetLedgerOptions {
  /** `redis://[user:password@]host:port[/db]` or `rediss://…`. */
  url: string;
  /** Deployments sharing one Redis keep apart by namespace; replicas of one deployment share it. */
  namespace: string;
  budget: number;
  /** W, decisions of the global sequence. */
  window: number;
  weighted: boolean;
  /** The budget's unit (`requests`, `tokens`, `cost`): every replica of a namespace must agree. */
  unit: string;
  /** Longest a decision waits for the store before it is made locally. */
  timeoutMs: number;
  /** How long the keys outlive the last decision. */
  ttlSeconds: number;
  /** How often a local replica checks whether the store is back. Defaults to max(200, 4 × timeoutMs) ms. */
  probeIntervalMs?: number;
  /** Longest wait for the first connection at start-up. Defaults to 2000 ms. */
  connectTimeoutMs?: number;
  /** Decisions kept in the audit log. Defaults to 200 000. */
  auditCapacity?: number;
  onEvent?: (event: SharedBudgetEvent) => void;
}

/** One decision as the store numbered it. */
export interface AuditEntry {
  /** The store's state this decision belongs to (a new one after the store lost its data). */
  epoch: string;
  /** Position in the global sequence of that epoch, from 1. */
  seq: number;
  large: boolean;
  weight: number;
  /** Decided locally during an outage and appended at resync. */
  replayed: boolean;
}

/** What /readyz shows of the store. */
export interface StoreStatus {
  ok: boolean;
  mode: "shared" | "local";
  /** The store's URL without credentials. */
  store: string;
  namespace: string;
  epoch: string | null;
  /** This replica's measured share of the global decisions (1 until measured). */
  share: number;
  /** Local decisions waiting to be appended to the global sequence. */
  pendingReplay: number;
  error?: string;
}

interface ReplayEntry {
  large: boolean;
  weight: number;
  /** The store recorded this decision after all (a late answer): do not append it again. */
  cancelled: boolean;
}

const MISMATCH_MARKER = "ROUTELMT_BUDGET_MISMATCH";
/** Items per replay call: bounded so that one call keeps Redis busy for well under a millisecond. */
const REPLAY_CHUNK = 500;

class StoreTimeout extends Error {}

function signed(large: boolean, weight: number): string {
  return String(large ? weight : -weight);
}

/** `url` without user and password, for status and logs. */
export function redactedStoreUrl(url: string): string {
  try {
    const parsed = new URL(url);
    parsed.username = "";
    parsed.password = "";
    return parsed.toString().replace(/\/$/, "");
  } catch {
    return "(invalid URL)";
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    // Timers run before the event loop reads sockets: after a busy stretch the timer would fire
    // although the answer already waits in the socket. setImmediate lets that read happen first.
    timer = setTimeout(() => setImmediate(() => reject(new StoreTimeout(`no answer within ${ms} ms`))), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export class SharedBudgetLedger implements BudgetLedger {
  readonly budget: number;
  /** The effective window W of the global sequence. */
  readonly window: number;
  private readonly options: SharedBudgetLedgerOptions;
  private readonly redis: Redis;
  private readonly keys: [string, string, string];
  private readonly probeIntervalMs: number;
  private readonly auditCapacity: number;
  private mode: "shared" | "local" = "shared";
  private storeError: string | null = null;
  private epoch: string | null = null;
  private lastWindow = { large: 0, total: 0, filled: 0 };
  /** This replica's share of the global sequence, measured over periods of W global decisions. */
  private share = 1;
  private periodStart: number | null = null;
  private ownInPeriod = 0;
  /** Signed weights of this replica's latest decisions (at most W): seeds the local window. */
  private readonly ownRecent: number[] = [];
  private localCap: BudgetCap | null = null;
  private readonly replay: ReplayEntry[] = [];
  private droppedFromReplay = 0;
  private pendingCalls = 0;
  private resyncing = false;
  private closed = false;
  private decisions = 0;
  private readonly audit: AuditEntry[] = [];
  private readonly ownLog: number[] = [];
  private readonly probeTimer: NodeJS.Timeout;

  private constructor(options: SharedBudgetLedgerOptions) {
    this.options = options;
    this.budget = options.budget;
    this.window = effectiveWindow(options.budget, options.window);
    this.probeIntervalMs = options.probeIntervalMs ?? Math.max(200, 4 * options.timeoutMs);
    this.auditCapacity = options.auditCapacity ?? 200_000;
    const prefix = `routelmt:{${options.namespace}}:budget`;
    this.keys = [`${prefix}:meta`, `${prefix}:state`, `${prefix}:ring`];
    this.redis = new Redis(options.url, {
      lazyConnect: true,
      // While disconnected a command fails at once instead of waiting in a queue: the fallback is immediate.
      enableOfflineQueue: false,
      // A decision already made locally must not be sent again after a reconnect.
      autoResendUnfulfilledCommands: false,
      maxRetriesPerRequest: 0,
      connectTimeout: options.connectTimeoutMs ?? 2000,
      // Bounds how long an unanswered call stays pending (and so delays a resync), not a request.
      commandTimeout: Math.max(2000, 20 * options.timeoutMs),
      retryStrategy: (attempt) => Math.min(50 * attempt, 500),
    });
    this.redis.defineCommand("routelmtBudget", { numberOfKeys: 3, lua: SHARED_BUDGET_SCRIPT });
    // Connection errors surface through failed calls; without a listener ioredis would print them.
    this.redis.on("error", (error: Error) => {
      if (this.mode === "local") this.storeError = describe(error);
    });
    this.probeTimer = setInterval(() => void this.tryResync(), this.probeIntervalMs);
    this.probeTimer.unref();
  }

  /**
   * Connects and checks the namespace's settings. A store that cannot be reached starts the replica
   * in local mode (it keeps trying); a namespace holding another budget, window or unit is an error.
   * @throws UsageError naming `budget-store-namespace` on a settings mismatch.
   */
  static async open(options: SharedBudgetLedgerOptions): Promise<SharedBudgetLedger> {
    const ledger = new SharedBudgetLedger(options);
    try {
      await withTimeout(ledger.redis.connect(), options.connectTimeoutMs ?? 2000);
      ledger.absorb(
        (await withTimeout(ledger.call("init", []), options.connectTimeoutMs ?? 2000)) as string[],
      );
    } catch (error) {
      if (describe(error).includes(MISMATCH_MARKER)) {
        await ledger.close();
        throw new UsageError(
          `budget-store-namespace: "${options.namespace}" on ${redactedStoreUrl(options.url)} is another deployment's budget: ${describe(error).replace(`${MISMATCH_MARKER} `, "")}; give this one its own namespace`,
        );
      }
      ledger.enterLocal(error instanceof StoreTimeout ? "timeout" : "unavailable", describe(error));
    }
    return ledger;
  }

  async decide(items: readonly LedgerItem[]): Promise<boolean[]> {
    this.decisions += items.length;
    if (this.mode === "local") return this.decideLocally(items);
    const started = performance.now();
    this.pendingCalls++;
    const call = this.call(
      "decide",
      items.map((item) => signed(item.wantsLarge, item.weight)),
    ) as Promise<string[]>;
    try {
      const reply = await withTimeout(call, this.options.timeoutMs);
      this.pendingCalls--;
      this.options.onEvent?.({ kind: "store-latency", ms: performance.now() - started });
      const outcomes = this.absorb(reply);
      return outcomes.map((large, index) => {
        this.remember(large, items[index]!.weight);
        return large;
      });
    } catch (error) {
      const reason: StoreFailureKind =
        error instanceof StoreTimeout
          ? "timeout"
          : describe(error).includes(MISMATCH_MARKER)
            ? "mismatch"
            : this.redis.status === "ready"
              ? "error"
              : "unavailable";
      this.enterLocal(reason, describe(error));
      const local = this.decideLocally(items);
      if (error instanceof StoreTimeout) {
        const entries = this.replay.slice(-items.length);
        // The store may still run the call: reconcile when (if) it answers.
        call
          .then(
            (reply) => this.reconcile(reply, local, entries),
            () => undefined,
          )
          .finally(() => this.pendingCalls--);
      } else {
        this.pendingCalls--;
      }
      return local;
    }
  }

  state(): LedgerState {
    const shared = this.mode === "shared" || this.localCap === null;
    const cap = this.localCap;
    return {
      scope: shared ? "shared" : "local",
      window: shared || cap === null ? this.window : cap.window,
      cap: shared || cap === null ? hardCap(this.budget, this.window) : cap.cap,
      realizedFraction: shared
        ? this.lastWindow.filled === 0
          ? null
          : this.lastWindow.large / this.lastWindow.total
        : (cap?.realizedFraction() ?? null),
      decisions: this.decisions,
    };
  }

  status(): StoreStatus {
    return {
      ok: this.mode === "shared",
      mode: this.mode,
      store: redactedStoreUrl(this.options.url),
      namespace: this.options.namespace,
      epoch: this.epoch,
      share: this.share,
      pendingReplay: this.replay.filter((entry) => !entry.cancelled).length,
      ...(this.storeError !== null && this.mode === "local" ? { error: this.storeError } : {}),
    };
  }

  /** This replica's decisions, oldest first (1 = large). */
  log(): Uint8Array {
    return Uint8Array.from(this.ownLog);
  }

  /** This replica's decisions as the store numbered them (replayed ones at their resync). */
  auditLog(): readonly AuditEntry[] {
    return this.audit;
  }

  /** Checks now whether the store is back (the probe timer does it every `probeIntervalMs`). */
  async resyncNow(): Promise<boolean> {
    await this.tryResync();
    return this.mode === "shared";
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.probeTimer);
    this.redis.disconnect();
  }

  private call(op: "init" | "decide" | "replay", items: string[]): Promise<unknown> {
    const { budget, weighted, unit, ttlSeconds } = this.options;
    return this.redis.routelmtBudget(
      ...this.keys,
      op,
      String(budget),
      String(this.window),
      weighted ? "1" : "0",
      unit,
      // Used only if the call creates the state: a fresh id, so a store that lost its data gets a new epoch.
      randomUUID(),
      String(ttlSeconds * 1000),
      ...items,
    );
  }

  /** Reads a reply: epoch, window, share; returns its outcomes and audits them. */
  private absorb(reply: string[], replayed = false, weights: readonly number[] = []): boolean[] {
    const [epoch, first, outcomeText, large, total, filled] = reply as [
      string,
      string,
      string,
      string,
      string,
      string,
    ];
    if (epoch !== this.epoch) {
      this.options.onEvent?.({ kind: "epoch", previous: this.epoch, current: epoch });
      this.epoch = epoch;
      this.periodStart = null;
      this.ownInPeriod = 0;
    }
    this.lastWindow = { large: Number(large), total: Number(total), filled: Number(filled) };
    const outcomes = [...outcomeText].map((character) => character === "1");
    const firstSeq = Number(first);
    outcomes.forEach((outcome, index) => {
      this.audit.push({
        epoch,
        seq: firstSeq + index,
        large: outcome,
        weight: weights[index] ?? 1,
        replayed,
      });
    });
    if (this.audit.length > 2 * this.auditCapacity)
      this.audit.splice(0, this.audit.length - this.auditCapacity);
    if (outcomes.length > 0) this.measureShare(firstSeq, firstSeq + outcomes.length - 1, outcomes.length);
    return outcomes;
  }

  private measureShare(firstSeq: number, lastSeq: number, own: number): void {
    this.periodStart ??= firstSeq;
    this.ownInPeriod += own;
    const span = lastSeq - this.periodStart + 1;
    if (span >= this.window) {
      this.share = Math.min(1, this.ownInPeriod / span);
      this.periodStart = null;
      this.ownInPeriod = 0;
    }
  }

  private remember(large: boolean, weight: number): void {
    this.ownRecent.push(large ? weight : -weight);
    if (this.ownRecent.length > this.window) this.ownRecent.shift();
    this.ownLog.push(large ? 1 : 0);
    if (this.ownLog.length > 2 * this.auditCapacity)
      this.ownLog.splice(0, this.ownLog.length - this.auditCapacity);
  }

  private enterLocal(reason: StoreFailureKind, message: string): void {
    this.storeError = message;
    if (this.mode === "local" && this.localCap !== null) return;
    this.mode = "local";
    const localWindow = Math.max(1, Math.round(this.window * this.share));
    const cap = new BudgetCap(this.budget, localWindow, { weighted: this.options.weighted });
    // This replica's latest decisions count, so a burst just before the outage is not spent twice.
    for (const value of this.ownRecent.slice(-cap.window)) cap.record(value > 0, Math.abs(value));
    this.localCap = cap;
    this.options.onEvent?.({ kind: "fallback", reason, message });
  }

  private decideLocally(items: readonly LedgerItem[]): boolean[] {
    const cap = this.localCap!;
    this.options.onEvent?.({ kind: "local-decisions", count: items.length });
    return items.map((item) => {
      const large = item.wantsLarge && cap.allowsLarge(item.weight);
      cap.record(large, item.weight);
      this.remember(large, item.weight);
      this.replay.push({ large, weight: item.weight, cancelled: false });
      if (this.replay.length > this.window) {
        this.replay.shift();
        this.droppedFromReplay++;
      }
      return large;
    });
  }

  /** A timed-out call the store ran after all: see the module comment. */
  private reconcile(reply: unknown, local: readonly boolean[], entries: readonly ReplayEntry[]): void {
    const recorded = this.absorb(reply as string[]);
    recorded.forEach((storeLarge, index) => {
      const entry = entries[index];
      if (entry !== undefined && (storeLarge || !local[index])) entry.cancelled = true;
    });
  }

  private async tryResync(): Promise<void> {
    if (this.mode !== "local" || this.resyncing || this.closed || this.pendingCalls > 0) return;
    if (this.redis.status !== "ready") return;
    this.resyncing = true;
    const backgroundTimeout = Math.max(1000, 10 * this.options.timeoutMs);
    let replayed = 0;
    try {
      this.absorb((await withTimeout(this.call("init", []), backgroundTimeout)) as string[]);
      for (;;) {
        const pending = this.replay.splice(0, REPLAY_CHUNK).filter((entry) => !entry.cancelled);
        if (pending.length === 0 && this.replay.length === 0) break;
        if (pending.length === 0) continue;
        try {
          const reply = await withTimeout(
            this.call(
              "replay",
              pending.map((entry) => signed(entry.large, entry.weight)),
            ),
            backgroundTimeout,
          );
          this.absorb(
            reply as string[],
            true,
            pending.map((entry) => entry.weight),
          );
          replayed += pending.length;
        } catch (error) {
          // Unsent or unknown: keep them for the next try (appending twice over-counts, never under-counts).
          this.replay.unshift(...pending);
          throw error;
        }
      }
      // The replay is empty and this runs in the same turn as its check: no local decision falls between.
      this.mode = "shared";
      this.localCap = null;
      this.storeError = null;
      this.options.onEvent?.({ kind: "resync", replayed, dropped: this.droppedFromReplay });
      this.droppedFromReplay = 0;
    } catch (error) {
      this.storeError = describe(error);
    } finally {
      this.resyncing = false;
    }
  }
}
