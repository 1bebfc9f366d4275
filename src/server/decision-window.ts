/**
 * The server's ledger of routing decisions: the exact sliding window that enforces the hard cap over
 * every decision (single requests and batch items alike), the realized large fraction, and a bounded
 * log of recent decisions for tests and diagnostics.
 */

/** Hard cap of the budget controller: ⌈p·W⌉ + 1 large decisions per W (0 at p = 0, W at most). */
export function hardCap(budget: number, window: number): number {
  return budget === 0 ? 0 : Math.min(window, Math.ceil(budget * window - 1e-9) + 1);
}

/**
 * Most large decisions (1s) in any `window` consecutive entries of `log` (fewer entries than the
 * window count as one partial window). O(n).
 */
export function maxLargeInAnyWindow(log: ArrayLike<number>, window: number): number {
  let inWindow = 0;
  let most = 0;
  for (let index = 0; index < log.length; index++) {
    inWindow += log[index]!;
    if (index >= window) inWindow -= log[index - window]!;
    if (inWindow > most) most = inWindow;
  }
  return most;
}

/** Exact sliding window of the last W decisions with a hard cap on large ones. */
export class DecisionWindow {
  readonly window: number;
  readonly cap: number;
  private readonly outcomes: Uint8Array;
  private head = 0;
  private filled = 0;
  private largeInWindow = 0;
  private readonly logEntries: Uint8Array;
  private logHead = 0;
  private logged = 0;
  private decisions = 0;

  /**
   * @param window W, decisions.
   * @param cap most large decisions in any W consecutive decisions.
   * @param logCapacity decisions kept in the log. Defaults to 100 000.
   */
  constructor(window: number, cap: number, logCapacity = 100_000) {
    this.window = window;
    this.cap = cap;
    this.outcomes = new Uint8Array(window);
    this.logEntries = new Uint8Array(logCapacity);
  }

  /** Whether a large decision now keeps the window ending at it within the cap. */
  allowsLarge(): boolean {
    // The window ending at the next decision holds the last W − 1 outcomes plus the new one.
    const leaving = this.filled === this.window ? this.outcomes[this.head]! : 0;
    return this.largeInWindow - leaving + 1 <= this.cap;
  }

  record(large: boolean): void {
    const value = large ? 1 : 0;
    const leaving = this.filled === this.window ? this.outcomes[this.head]! : 0;
    this.outcomes[this.head] = value;
    this.head = (this.head + 1) % this.window;
    if (this.filled < this.window) this.filled++;
    this.largeInWindow += value - leaving;
    this.decisions++;
    if (this.logEntries.length > 0) {
      this.logEntries[this.logHead] = value;
      this.logHead = (this.logHead + 1) % this.logEntries.length;
      if (this.logged < this.logEntries.length) this.logged++;
    }
  }

  /** Large fraction over the last min(decisions, W) decisions; null before the first. */
  realizedFraction(): number | null {
    return this.filled === 0 ? null : this.largeInWindow / this.filled;
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
