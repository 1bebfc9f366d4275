/**
 * The hard limit on large decisions at budget p, shared by the `BudgetController` and the server's
 * ledger. Two rules, both checked exactly in O(1) per decision:
 *
 * - any run of N ≥ W consecutive decisions holds at most p·N large ones (so does the whole run from
 *   the first decision, once it is W long): the budget is never overspent over a stretch of at least
 *   a window;
 * - any run shorter than W holds at most ⌊p·W⌋ (a window's share, spent in a burst if scores ask for it).
 *
 * A cap on every window of W alone does not give the first rule: two windows that each hold ⌊p·W⌋
 * overlap in a run of W + k decisions that can hold up to 2⌊p·W⌋.
 *
 * With S_n the large decisions among the first n and D_n = S_n − p·n, the first rule says D_t ≤ D_s
 * whenever t − s ≥ W, i.e. D_t ≤ min over s ≤ t − W of D_s. That minimum only gains one term per
 * decision, and the S_s it needs is S_t minus the large decisions among the last t − s, which the
 * ring buffer of the last W outcomes holds.
 *
 * When p·W < 1 no window of W could hold a single large decision, so the window is raised to ⌈1/p⌉.
 */
import { UsageError } from "../errors/index.js";
import { FLOOR_SLACK, routedCount } from "./batch-allocation.js";

/** Relative slack of the real-valued comparison: p·n is inexact in binary (0.3 × 10 < 3). */
const DEBT_SLACK = 1e-9;

/** The window the cap uses for budget p: W, raised to ⌈1/p⌉ when p·W < 1 (unchanged at p = 0). */
export function effectiveWindow(budget: number, window: number): number {
  if (budget === 0 || routedCount(budget, window) >= 1) return window;
  let raised = Math.ceil(1 / budget);
  while (routedCount(budget, raised) < 1) raised++;
  return raised;
}

/** Most large decisions in a run shorter than the window: ⌊p·W⌋ of the effective window (0 at p = 0). */
export function hardCap(budget: number, window: number): number {
  return routedCount(budget, effectiveWindow(budget, window));
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

/**
 * The largest overspend of any run of at least `window` consecutive entries of `log`: the maximum of
 * (large decisions − budget × length) over those runs, −Infinity when the log is shorter than the
 * window. The budget holds over every such run when this is ≤ 0. O(n).
 */
export function maxOverspendOfLongRuns(log: ArrayLike<number>, budget: number, window: number): number {
  let cumulative = 0;
  let lowestEarlierDebt = Number.POSITIVE_INFINITY;
  const debts = new Float64Array(log.length + 1);
  let worst = Number.NEGATIVE_INFINITY;
  for (let length = 1; length <= log.length; length++) {
    cumulative += log[length - 1]!;
    debts[length] = cumulative - budget * length;
    if (length >= window) {
      lowestEarlierDebt = Math.min(lowestEarlierDebt, debts[length - window]!);
      worst = Math.max(worst, debts[length]! - lowestEarlierDebt);
    }
  }
  return worst;
}

/**
 * Outcomes of the last W decisions and the two rules above. O(1) per decision.
 *
 * **Weighted** (`weighted: true`): each decision carries a weight (tokens, or money: the server's
 * budget units) and both checks run on weights when a large decision is made: every run of N ≥ W
 * decisions ending with it, and the last W decisions (before there are W, every decision so far),
 * spend at most p × their weight. So the whole run since the first decision never spends more than
 * p of its weight, at any moment. What cannot be promised is a run that *ends* in small decisions:
 * weights still to come are unknown when a large decision is made, and a run whose later decisions
 * are light can show more than p of its weight. For the same reason there is no burst allowance
 * before the window fills.
 */
export class BudgetCap {
  readonly budget: number;
  /** The effective window W (see {@link effectiveWindow}). */
  readonly window: number;
  /** ⌊p·W⌋: most large decisions in a run shorter than W (unweighted). */
  readonly cap: number;
  readonly weighted: boolean;
  /** Signed weights of the last W decisions: +w large, −w small (weights are positive). */
  private readonly outcomes: Float64Array;
  private head = 0;
  private filledCount = 0;
  private large = 0;
  private total = 0;
  private decisions = 0;
  private largeTotal = 0;
  private weightTotal = 0;
  /** min of D_s = S_s − p·T_s over every s ≤ decisions + 1 − W: what the next decision's D may not exceed. */
  private lowestLaggedDebt = Number.POSITIVE_INFINITY;

  /**
   * @param budget p, in [0, 1].
   * @param window W, decisions (raised to ⌈1/p⌉ when p·W < 1).
   */
  constructor(budget: number, window: number, options: { weighted?: boolean } = {}) {
    this.budget = budget;
    this.weighted = options.weighted ?? false;
    this.window = effectiveWindow(budget, window);
    this.cap = routedCount(budget, this.window);
    this.outcomes = new Float64Array(this.window);
    this.admitLaggedDebt();
  }

  /** Whether one more large decision (of this weight, when weighted) now keeps both rules. */
  allowsLarge(weight = 1): boolean {
    this.checkWeight(weight);
    if (this.budget === 0) return false;
    const leaving = this.leavingOutcome();
    const largeInRun = this.large - Math.max(leaving, 0) + weight;
    const weightOfRun = this.total - Math.abs(leaving) + weight;
    // Unweighted: ⌊p·W⌋ (the slack of routedCount's floor); weighted: p × the run's weight.
    const runShare = this.weighted ? this.budget * weightOfRun : this.budget * this.window;
    if (largeInRun > runShare + FLOOR_SLACK * (this.weighted ? weightOfRun : 1)) return false;
    const nextWeightTotal = this.weightTotal + weight;
    const debt = this.largeTotal + weight - this.budget * nextWeightTotal;
    return debt <= this.lowestLaggedDebt + DEBT_SLACK * Math.max(weight, nextWeightTotal * this.budget);
  }

  record(large: boolean, weight = 1): void {
    this.checkWeight(weight);
    const value = large ? weight : -weight;
    const leaving = this.filledCount === this.window ? this.outcomes[this.head]! : 0;
    this.outcomes[this.head] = value;
    this.head = (this.head + 1) % this.window;
    if (this.filledCount < this.window) this.filledCount++;
    this.large += (large ? weight : 0) - Math.max(leaving, 0);
    this.total += weight - Math.abs(leaving);
    this.decisions++;
    if (large) this.largeTotal += weight;
    this.weightTotal += weight;
    this.admitLaggedDebt();
  }

  /** Large decisions among the last min(decisions, W) (their weight, when weighted). */
  get largeInWindow(): number {
    return this.large;
  }

  /** Total weight of the last min(decisions, W) decisions (their number when unweighted). */
  get weightInWindow(): number {
    return this.total;
  }

  /** Decisions in the window so far (W once it is full). */
  get filled(): number {
    return this.filledCount;
  }

  /** Large share (of the weight) over the last min(decisions, W) decisions; null before the first. */
  realizedFraction(): number | null {
    return this.filledCount === 0 ? null : this.large / this.total;
  }

  /** The outcome that leaves the window of the next decision (0 while the window is not full). */
  private leavingOutcome(): number {
    // Once the ring buffer is full its oldest outcome, at `head`, leaves the window of the next decision.
    return this.filledCount === this.window ? this.outcomes[this.head]! : 0;
  }

  private checkWeight(weight: number): void {
    if (this.weighted ? !(Number.isFinite(weight) && weight > 0) : weight !== 1) {
      throw new UsageError(
        this.weighted
          ? `a decision's weight must be a positive finite number, got ${weight}`
          : `an unweighted budget cap takes weight 1 only, got ${weight}`,
      );
    }
  }

  /** Adds D_s for s = decisions + 1 − W, the run start that the next decision's W-long run begins after. */
  private admitLaggedDebt(): void {
    const start = this.decisions + 1 - this.window;
    if (start < 0) return;
    const leaving = this.leavingOutcome();
    const largeBefore = this.largeTotal - (this.large - Math.max(leaving, 0));
    const weightBefore = this.weightTotal - (this.total - Math.abs(leaving));
    this.lowestLaggedDebt = Math.min(this.lowestLaggedDebt, largeBefore - this.budget * weightBefore);
  }
}
