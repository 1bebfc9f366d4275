/**
 * The exact sliding window behind the hard cap: the outcomes of the last W decisions in a ring
 * buffer, how many were large, and whether one more large decision keeps every window of W
 * consecutive decisions within the cap. Shared by the `BudgetController` and the server's ledger.
 */

/** The hard cap for budget p over W decisions: ⌈p·W⌉ + 1 large decisions (0 at p = 0, W at most). */
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

/** Outcomes of the last W decisions and the cap on large ones among them. O(1) per decision. */
export class SlidingWindowCap {
  readonly window: number;
  readonly cap: number;
  private readonly outcomes: Uint8Array;
  private head = 0;
  private filledCount = 0;
  private large = 0;

  constructor(window: number, cap: number) {
    this.window = window;
    this.cap = cap;
    this.outcomes = new Uint8Array(window);
  }

  /** Whether a large decision now keeps the window ending at it within the cap. */
  allowsLarge(): boolean {
    // The window ending at the next decision holds the last W − 1 outcomes plus the new one.
    const leaving = this.filledCount === this.window ? this.outcomes[this.head]! : 0;
    return this.large - leaving + 1 <= this.cap;
  }

  record(large: boolean): void {
    const value = large ? 1 : 0;
    const leaving = this.filledCount === this.window ? this.outcomes[this.head]! : 0;
    this.outcomes[this.head] = value;
    this.head = (this.head + 1) % this.window;
    if (this.filledCount < this.window) this.filledCount++;
    this.large += value - leaving;
  }

  /** Large decisions among the last min(decisions, W). */
  get largeInWindow(): number {
    return this.large;
  }

  /** Decisions in the window so far (W once it is full). */
  get filled(): number {
    return this.filledCount;
  }

  /** Large fraction over the last min(decisions, W) decisions; null before the first. */
  realizedFraction(): number | null {
    return this.filledCount === 0 ? null : this.large / this.filledCount;
  }
}
