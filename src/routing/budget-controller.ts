import { UsageError } from "../errors/index.js";
import { quantile, sortScores } from "../stats/quantiles.js";
import { checkBudget } from "./batch-allocation.js";
import { BudgetCap } from "./budget-cap.js";

/** Why a request went where it went. */
export type RouteReason =
  | "score-above-threshold"
  | "score-below-threshold"
  | "budget-cap"
  | "invalid-score"
  | "full-budget";

/** One online routing decision, with the score and the threshold it was compared against. */
export type RouteDecision =
  | {
      target: "large";
      /** `full-budget`: the budget is 1, every request goes to the large model whatever its score. */
      reason: "score-above-threshold" | "full-budget";
      score: number;
      threshold: number;
    }
  | {
      target: "small";
      /**
       * `budget-cap`: the score passed the threshold but a large decision would exceed the hard cap
       * of the sliding window (always the case at budget 0); `invalid-score`: the score was NaN or infinite.
       */
      reason: "score-below-threshold" | "budget-cap" | "invalid-score";
      score: number;
      threshold: number;
    };

export interface BudgetControllerOptions {
  /** Target fraction p of requests sent to the large model, in [0, 1]. */
  budget: number;
  /** Sliding window W (decisions) for the realized fraction and the hard cap. Defaults to 1000. */
  window?: number;
  /** Starting threshold. Takes precedence over the (1 − p) quantile of `trainingScores`. */
  initialThreshold?: number;
  /**
   * Router scores seen in training (any order; NaN/infinite values are ignored). The starting
   * threshold is their (1 − p) quantile, and their spread seeds the step size. One of this or
   * `initialThreshold` is required.
   */
  trainingScores?: readonly number[];
  /**
   * Threshold step per decision, in units of the running score standard deviation. Larger follows
   * drift faster but makes the threshold noisier. Defaults to 0.02.
   */
  adaptationGain?: number;
  /**
   * Gain of the drift (threshold velocity) term, relative to `adaptationGain`'s step. It removes the
   * lag a plain quantile tracker has under a steady drift of the scores; 0 turns it off. Defaults to 0.002.
   */
  driftGain?: number;
  /**
   * Recalibrate the threshold when the scores seen so far show it is clearly off (see
   * `recalibrate` below). Defaults to true.
   */
  recalibration?: boolean;
  /**
   * Decisions carry weights (tokens or cost, see `decide`): the threshold tracks the score above
   * which a fraction p of the *weight* passes, and the hard cap holds for weights. Defaults to false.
   */
  weighted?: boolean;
  /**
   * Whether `decide` applies its own hard cap. False when another ledger holds the cap (a budget
   * shared by several replicas): the controller then only tracks the threshold. Defaults to true.
   */
  enforceCap?: boolean;
}

/** Counters for metrics and logs. */
export interface BudgetControllerSnapshot {
  budget: number;
  window: number;
  threshold: number;
  /** Large fraction (of the weight, when weighted) over the last `windowFilled` decisions; null before the first. */
  realizedFraction: number | null;
  /** ⌊p·W⌋: most large decisions in a run shorter than W (a run of N ≥ W holds at most p·N). */
  cap: number;
  largeInWindow: number;
  windowFilled: number;
  decisions: number;
  largeDecisions: number;
  /** Decisions whose score passed the threshold but were sent small by the hard cap. */
  capBlocked: number;
  invalidScores: number;
  /** Running standard deviation of the scores, the unit of the threshold step. */
  scoreScale: number;
}

const DEFAULT_WINDOW = 1000;
const DEFAULT_ADAPTATION_GAIN = 0.02;
const DEFAULT_DRIFT_GAIN = 0.002;
/** Largest pass-rate bias, as a share of min(p, 1 − p): the realized fraction is fed back gently. */
const MAX_PASS_BIAS = 0.25;
/** Bias gain per decision, times 1/W: a shortfall sustained over a window moves the bias by about twice it. */
const PASS_BIAS_GAIN = 5;

/** Decisions before the first calibration check; later checks come after twice as many each time. */
const FIRST_CALIBRATION_CHECK = 32;
/** How many standard errors the pass rate must be off p before the threshold is re-estimated. */
const CALIBRATION_Z = 4;

/**
 * Online budgeted router: sends a request to the large model when its score is at or above a
 * threshold that adapts so that a fraction p of requests goes large, under a hard cap.
 *
 * Threshold: a second-order stochastic-approximation tracker of the score's (1 − p) quantile. Each
 * decision moves the threshold by `step · (1[score ≥ threshold] − p)` (Robbins–Monro quantile
 * tracking, equivalently the dual-gradient update of the budget constraint) plus a velocity that
 * integrates the same signal, so a steady drift of the scores is followed without a lasting bias.
 * `step` = `adaptationGain` × the running score standard deviation, which makes the gain
 * independent of the score's units. The update uses whether the score passed the threshold, not
 * whether the cap let it through, so a binding cap cannot wind the threshold down.
 *
 * Hard cap ({@link BudgetCap}): any N ≥ W consecutive decisions hold at most p·N large ones, any
 * shorter run at most ⌊p·W⌋ (none at all when p = 0; at p = 1 every decision is large).
 *
 * `decide` is synchronous and O(1), so concurrent request handlers cannot interleave inside it.
 */
export class BudgetController {
  readonly budget: number;
  readonly window: number;
  readonly cap: number;
  private readonly adaptationGain: number;
  private readonly driftGain: number;
  private currentThreshold: number;
  private velocity = 0;
  /**
   * How far above p the pass rate is aimed, so that the realized fraction — what the hard cap lets
   * through — reaches p (see `observeRealized`). In [0, MAX_PASS_BIAS].
   */
  private passBias = 0;
  private scoreMean: number;
  private scoreVariance: number;
  /** Score observations behind the running mean/variance (training scores count as W). */
  private scoreWeight: number;
  private readonly outcomes: BudgetCap;
  private decisionCount = 0;
  private largeCount = 0;
  private capBlockedCount = 0;
  private invalidCount = 0;
  private readonly recalibration: boolean;
  readonly weighted: boolean;
  private readonly enforceCap: boolean;
  /** Running mean weight (exponential over ~W decisions): a decision's step is scaled by its weight over it. */
  private meanWeight = 1;
  private weightObservations = 0;
  /** Scores (and weights) since the last recalibration (at most W), and the weight that passed the threshold. */
  private calibrationScores: number[] = [];
  private calibrationWeights: number[] = [];
  private calibrationPassed = 0;
  private nextCalibrationCheck = FIRST_CALIBRATION_CHECK;

  constructor(options: BudgetControllerOptions) {
    checkBudget(options.budget);
    this.budget = options.budget;
    this.window = options.window ?? DEFAULT_WINDOW;
    if (!(Number.isInteger(this.window) && this.window >= 1)) {
      throw new UsageError(`budget window must be a positive integer, got ${this.window}`);
    }
    this.adaptationGain = options.adaptationGain ?? DEFAULT_ADAPTATION_GAIN;
    this.driftGain = options.driftGain ?? DEFAULT_DRIFT_GAIN;
    if (!(Number.isFinite(this.adaptationGain) && this.adaptationGain > 0)) {
      throw new UsageError(`adaptation gain must be positive, got ${this.adaptationGain}`);
    }
    if (!(Number.isFinite(this.driftGain) && this.driftGain >= 0)) {
      throw new UsageError(`drift gain must be non-negative, got ${this.driftGain}`);
    }
    this.weighted = options.weighted ?? false;
    this.enforceCap = options.enforceCap ?? true;
    this.outcomes = new BudgetCap(this.budget, this.window, { weighted: this.weighted });
    this.cap = this.outcomes.cap;
    this.recalibration = options.recalibration ?? true;

    const training = sortScores((options.trainingScores ?? []).filter(Number.isFinite));
    if (options.initialThreshold === undefined && training.length === 0) {
      throw new UsageError("the budget controller needs an initial threshold or finite training scores");
    }
    if (options.initialThreshold !== undefined && !Number.isFinite(options.initialThreshold)) {
      throw new UsageError(`initial threshold must be finite, got ${options.initialThreshold}`);
    }
    this.currentThreshold = options.initialThreshold ?? quantile(training, 1 - this.budget);
    if (training.length > 0) {
      const mean = training.reduce((sum, value) => sum + value, 0) / training.length;
      this.scoreMean = mean;
      this.scoreVariance = training.reduce((sum, value) => sum + (value - mean) ** 2, 0) / training.length;
      this.scoreWeight = this.window;
    } else {
      this.scoreMean = this.currentThreshold;
      this.scoreVariance = 0;
      this.scoreWeight = 0;
    }
  }

  /**
   * Routes one request by its router score and updates the threshold and the window. `weight` is
   * what the request costs in the budget's unit (a weighted controller only; 1 otherwise).
   */
  decide(score: number, weight = 1): RouteDecision {
    const threshold = this.currentThreshold;
    if (this.budget === 1) {
      this.record(true, weight);
      return { target: "large", reason: "full-budget", score, threshold };
    }
    if (!Number.isFinite(score)) {
      // An unusable score says nothing about the score distribution: leave the threshold alone.
      this.invalidCount++;
      this.record(false, weight);
      return { target: "small", reason: "invalid-score", score, threshold };
    }
    const passes = score >= threshold;
    this.adapt(score, passes, weight);
    this.recalibrate(score, passes, weight);
    if (!passes) {
      this.record(false, weight);
      return { target: "small", reason: "score-below-threshold", score, threshold };
    }
    if (this.enforceCap && !this.outcomes.allowsLarge(weight)) {
      this.capBlockedCount++;
      this.record(false, weight);
      return { target: "small", reason: "budget-cap", score, threshold };
    }
    this.record(true, weight);
    return { target: "large", reason: "score-above-threshold", score, threshold };
  }

  /**
   * Feeds back the realized fraction of the ledger that holds the hard cap — this controller's own,
   * or the global one of a budget shared by several replicas — after a decision. The cap never lets
   * a stretch that underspent be made up, so a pass rate of exactly p realizes less than p (about
   * 1 point at p = 0.2, W = 1000); a shortfall sustained over a window aims the pass rate a little
   * higher, at most MAX_PASS_BIAS × min(p, 1 − p) above p. Surplus passes are refused by the cap,
   * never spent, so the bias cannot overspend; it only makes the realized fraction reach p. A
   * binding cap does not wind it up either: the realized fraction is then p.
   */
  observeRealized(fraction: number | null): void {
    if (fraction === null || this.budget === 0 || this.budget === 1) return;
    const limit = MAX_PASS_BIAS * Math.min(this.budget, 1 - this.budget);
    const next = this.passBias + (PASS_BIAS_GAIN / this.window) * (this.budget - fraction);
    this.passBias = Math.min(limit, Math.max(0, next));
  }

  /** Large fraction over the last min(decisions, W) decisions; null before the first decision. */
  realizedFraction(): number | null {
    return this.outcomes.realizedFraction();
  }

  /** The threshold the next decision will use. */
  threshold(): number {
    return this.currentThreshold;
  }

  snapshot(): BudgetControllerSnapshot {
    return {
      budget: this.budget,
      window: this.window,
      threshold: this.currentThreshold,
      realizedFraction: this.realizedFraction(),
      cap: this.cap,
      largeInWindow: this.outcomes.largeInWindow,
      windowFilled: this.outcomes.filled,
      decisions: this.decisionCount,
      largeDecisions: this.largeCount,
      capBlocked: this.capBlockedCount,
      invalidScores: this.invalidCount,
      scoreScale: this.scoreScale(),
    };
  }

  private record(large: boolean, weight: number): void {
    this.outcomes.record(large, weight);
    this.decisionCount++;
    if (large) this.largeCount++;
  }

  private adapt(score: number, passes: boolean, weight: number): void {
    // Running mean/variance: a plain average until W scores are seen, then an exponential one over ~W.
    this.scoreWeight++;
    const rate = Math.max(1 / this.scoreWeight, 1 / this.window);
    const deviation = score - this.scoreMean;
    this.scoreMean += rate * deviation;
    this.scoreVariance = (1 - rate) * (this.scoreVariance + rate * deviation * deviation);

    // Weighted: a request twice the mean weight moves the threshold twice as far, so the threshold
    // settles where p of the weight, not of the requests, passes.
    let relativeWeight = 1;
    if (this.weighted) {
      this.weightObservations++;
      this.meanWeight += Math.max(1 / this.weightObservations, 1 / this.window) * (weight - this.meanWeight);
      relativeWeight = weight / this.meanWeight;
    }
    const step = this.adaptationGain * this.scoreScale() * relativeWeight;
    const error = (passes ? 1 : 0) - (this.budget + this.passBias);
    this.velocity += this.driftGain * step * error;
    this.currentThreshold += this.velocity + step * error;
  }

  /**
   * The starting threshold comes from training scores, but deployed scores can sit far from them
   * (another domain, or a near-constant probe whose cross-validated scores spread more than its
   * final predictions); the tracker's small steps would then need thousands of decisions to catch
   * up. So after 32, 64, 128, … decisions (up to W) the share of scores that passed is tested
   * against p: when it is off by more than CALIBRATION_Z standard errors, the threshold jumps to the
   * (1 − p) quantile of the scores seen since the last jump. Scores from the training distribution
   * almost never trigger it, so the tracker alone does the fine work there.
   */
  private recalibrate(score: number, passes: boolean, weight: number): void {
    if (!this.recalibration || this.budget === 0 || this.nextCalibrationCheck > this.window) return;
    this.calibrationScores.push(score);
    this.calibrationWeights.push(weight);
    if (passes) this.calibrationPassed += weight;
    const seen = this.calibrationScores.length;
    if (seen < this.nextCalibrationCheck) return;
    this.nextCalibrationCheck *= 2;
    // Weighted, the pass share is a share of the weight, and its standard error that of a sample of
    // (Σw)²/Σw² requests (the effective size; `seen` when every weight is 1).
    const weights = this.calibrationWeights;
    const totalWeight = weights.reduce((sum, value) => sum + value, 0);
    const effectiveSize = totalWeight ** 2 / weights.reduce((sum, value) => sum + value * value, 0);
    const standardError = Math.sqrt((this.budget * (1 - this.budget)) / effectiveSize);
    if (Math.abs(this.calibrationPassed / totalWeight - this.budget) <= CALIBRATION_Z * standardError) return;
    this.currentThreshold = this.weighted
      ? weightedUpperQuantile(this.calibrationScores, weights, this.budget)
      : quantile(sortScores(this.calibrationScores), 1 - this.budget);
    this.velocity = 0;
    this.calibrationScores = [];
    this.calibrationWeights = [];
    this.calibrationPassed = 0;
    this.nextCalibrationCheck = FIRST_CALIBRATION_CHECK;
  }

  private scoreScale(): number {
    // A floor keeps the tracker moving when every score so far is identical.
    const floor = 1e-6 * Math.max(1, Math.abs(this.scoreMean));
    return Math.max(Math.sqrt(this.scoreVariance), floor);
  }
}

/** The lowest score at or above which at most a share `share` of the total weight lies (the weighted (1 − share) quantile). */
export function weightedUpperQuantile(
  scores: readonly number[],
  weights: readonly number[],
  share: number,
): number {
  const order = scores.map((_, index) => index).sort((a, b) => scores[b]! - scores[a]!);
  const total = weights.reduce((sum, value) => sum + value, 0);
  let above = 0;
  let threshold = scores[order[0]!]!;
  for (const index of order) {
    above += weights[index]!;
    if (above > share * total) break;
    threshold = scores[index]!;
  }
  return threshold;
}
