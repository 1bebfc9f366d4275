/**
 * The server's ledger of routing decisions: the budget's hard cap over every decision (single
 * requests and batch items alike), the realized large fraction, and a bounded log of recent
 * decisions for tests and diagnostics.
 */
import { BudgetCap } from "../routing/budget-cap.js";

export { hardCap, maxLargeInAnyWindow, maxOverspendOfLongRuns } from "../routing/budget-cap.js";

/** The hard cap of budget p over the last W decisions (see {@link BudgetCap}), plus a decision log. */
export class DecisionWindow {
  private readonly budgetCap: BudgetCap;
  private readonly logEntries: Uint8Array;
  private logHead = 0;
  private logged = 0;
  private decisions = 0;

  /**
   * @param budget p, in [0, 1].
   * @param window W, decisions.
   * @param logCapacity decisions kept in the log. Defaults to 100 000.
   * @param weighted decisions carry weights (a budget in tokens or cost).
   */
  constructor(budget: number, window: number, logCapacity = 100_000, weighted = false) {
    this.budgetCap = new BudgetCap(budget, window, { weighted });
    this.logEntries = new Uint8Array(logCapacity);
  }

  get window(): number {
    return this.budgetCap.window;
  }

  get cap(): number {
    return this.budgetCap.cap;
  }

  /** Whether a large decision (of this weight) now keeps the budget's hard cap. */
  allowsLarge(weight = 1): boolean {
    return this.budgetCap.allowsLarge(weight);
  }

  record(large: boolean, weight = 1): void {
    this.budgetCap.record(large, weight);
    this.decisions++;
    if (this.logEntries.length > 0) {
      this.logEntries[this.logHead] = large ? 1 : 0;
      this.logHead = (this.logHead + 1) % this.logEntries.length;
      if (this.logged < this.logEntries.length) this.logged++;
    }
  }

  /** Large fraction over the last min(decisions, W) decisions; null before the first. */
  realizedFraction(): number | null {
    return this.budgetCap.realizedFraction();
  }

  /** Decisions recorded since start. */
  get count(): number {
    return this.decisions;
  }

  /** The most recent decisions (up to the log capacity), oldest first: 1 = large. */
  log(): Uint8Array {
    const capacity = this.logEntries.length;
    if (this.logged < capacity) return this.logEntries.slice(0, this.logged);
    const ordered = new Uint8Array(capacity);
    ordered.set(this.logEntries.subarray(this.logHead), 0);
    ordered.set(this.logEntries.subarray(0, this.logHead), capacity - this.logHead);
    return ordered;
  }
}

/**
 * Admission counter of one engine: requests in flight plus waiting, bounded. Synchronous, so a
 * check-and-take cannot interleave with another request's.
 */
export class AdmissionGate {
  readonly limit: number;
  private held = 0;

  constructor(limit: number) {
    this.limit = limit;
  }

  /** Takes `count` places if all fit; returns whether it did. */
  tryAcquire(count = 1): boolean {
    if (this.held + count > this.limit) return false;
    this.held += count;
    return true;
  }

  /** Takes places even beyond the limit (fallbacks must never be refused). */
  forceAcquire(count = 1): void {
    this.held += count;
  }

  release(count = 1): void {
    this.held = Math.max(0, this.held - count);
  }

  get depth(): number {
    return this.held;
  }
}
