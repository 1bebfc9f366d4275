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
}

/** Counters for metrics and logs. */
export interface BudgetControllerSnapshot {
  budget: number;
  window: number;
  threshold: number;
  /** Large fraction over the last `windowFilled` decisions; null before the first decision. */
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
  /** Scores since the last recalibration (at most W), and how many of them passed the threshold. */
  private calibrationScores: number[] = [];
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
    this.outcomes = new BudgetCap(this.budget, this.window);
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

  /** Routes one request by its router score and updates the threshold and the window. */
  decide(score: number): RouteDecision {
    const threshold = this.currentThreshold;
    if (this.budget === 1) {
      this.record(true);
      return { target: "large", reason: "full-budget", score, threshold };
    }
    if (!Number.isFinite(score)) {
      // An unusable score says nothing about the score distribution: leave the threshold alone.
      this.invalidCount++;
      this.record(false);
      return { target: "small", reason: "invalid-score", score, threshold };
    }
    const passes = score >= threshold;
    this.adapt(score, passes);
    this.recalibrate(score, passes);
    if (!passes) {
      this.record(false);
      return { target: "small", reason: "score-below-threshold", score, threshold };
    }
    if (!this.outcomes.allowsLarge()) {
      this.capBlockedCount++;
      this.record(false);
      return { target: "small", reason: "budget-cap", score, threshold };
    }
    this.record(true);
    return { target: "large", reason: "score-above-threshold", score, threshold };
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

  private record(large: boolean): void {
    this.outcomes.record(large);
    this.decisionCount++;
    if (large) this.largeCount++;
  }

  private adapt(score: number, passes: boolean): void {
    // Running mean/variance: a plain average until W scores are seen, then an exponential one over ~W.
    this.scoreWeight++;
    const rate = Math.max(1 / this.scoreWeight, 1 / this.window);
    const deviation = score - this.scoreMean;
    this.scoreMean += rate * deviation;
    this.scoreVariance = (1 - rate) * (this.scoreVariance + rate * deviation * deviation);

    const step = this.adaptationGain * this.scoreScale();
    const error = (passes ? 1 : 0) - this.budget;
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
  private recalibrate(score: number, passes: boolean): void {
    if (!this.recalibration || this.budget === 0 || this.nextCalibrationCheck > this.window) return;
    this.calibrationScores.push(score);
    if (passes) this.calibrationPassed++;
    const seen = this.calibrationScores.length;
    if (seen < this.nextCalibrationCheck) return;
    this.nextCalibrationCheck *= 2;
    const standardError = Math.sqrt((this.budget * (1 - this.budget)) / seen);
    if (Math.abs(this.calibrationPassed / seen - this.budget) <= CALIBRATION_Z * standardError) return;
    this.currentThreshold = quantile(sortScores(this.calibrationScores), 1 - this.budget);
    this.velocity = 0;
    this.calibrationScores = [];
    this.calibrationPassed = 0;
    this.nextCalibrationCheck = FIRST_CALIBRATION_CHECK;
  }

  private scoreScale(): number {
    // A floor keeps the tracker moving when every score so far is identical.
    const floor = 1e-6 * Math.max(1, Math.abs(this.scoreMean));
    return Math.max(Math.sqrt(this.scoreVariance), floor);
  }
}
