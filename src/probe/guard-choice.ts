/**
 * The guard as one score: rank by the risk-adjusted gain E[g] − λ·P(g < −δ), the gain head's
 * prediction minus λ times the risk head's probability of a severe loss. λ = 0 is RouteLMT; a
 * larger λ pushes segments the large model might ruin down the ranking. One number per segment, so
 * batch allocation ranks by it and a streaming budget controller thresholds it like any score.
 *
 * λ is chosen on out-of-fold predictions. The guard may cost at most `tolerance` (a share, 5 % by
 * default) of the cross-validated MeanDelta@p of λ = 0 at every budget; within that, the λ that cuts
 * the cross-validated severe-loss rate most is taken, if it cuts it by more than fold noise (two
 * standard errors of the paired per-fold difference: the best of a grid of λ is a maximum over
 * noisy rates, which one standard error lets through too often) — else λ = 0. A risk head without
 * skill thus leaves the ranking alone rather than reshuffling it at a cost.
 */
import { UsageError } from "../errors/index.js";
import { quantiles, sortScores } from "../stats/quantiles.js";
import { foldCountOf } from "./cross-validation.js";
import type { GainRestack } from "./gain-restack.js";
import { topMeasures } from "./routing-measures.js";

/** Standard errors of the paired per-fold difference a λ's severe-loss cut must exceed. */
export const GUARD_CUT_STANDARD_ERRORS = 2;

/** MeanDelta share the guard may cost, by default. */
export const DEFAULT_GUARD_TOLERANCE = 0.05;

/** Multiples of the natural scale sd(ĝ) / sd(P̂) that make up the λ grid (0, then 2^(k/2), k = −6…10). */
const GRID_MULTIPLES: readonly number[] = [
  0,
  ...Array.from({ length: 17 }, (_, index) => 2 ** ((index - 6) / 2)),
];

const GUARD_CHOICE_RULE =
  "among the λ before the first that costs more than the tolerance of λ = 0's cross-validated MeanDelta@p at some budget, the one with the lowest cross-validated severe-loss rate, if its cut exceeds two standard errors of the paired per-fold difference; else λ = 0";

/**
 * What the post-hoc guard ranks with, read from the small model's decoded translation:
 * `small-confidence`, the small model's own mean token log-probability of it (free with the decode);
 * `large-likelihood`, the large model's (a forced-decoding prefill of the large model per request).
 */
export const QE_SIGNALS = ["small-confidence", "large-likelihood"] as const;
export type QeSignal = (typeof QE_SIGNALS)[number];

/** The post-hoc guard's rule: the same choice of λ, on the small model's confidence in its decoded translation. */
export const QE_GUARD_RULE = `rank by predicted gain − λ · the small model's mean token log-probability of its decoded translation; ${GUARD_CHOICE_RULE}`;

/** The same on the large model's likelihood of the small translation. */
export const LARGE_QE_GUARD_RULE = `rank by predicted gain − λ · the large model's mean token log-probability of the small model's decoded translation; ${GUARD_CHOICE_RULE}`;

/** The same on the gain re-estimated after the decode (see `gain-restack.ts`). */
const RESTACK_GUARD_RULE = (signal: QeSignal) =>
  `rank by the gain re-estimated from the predicted gain and what the decode makes known (a ridge regression fitted on out-of-fold predictions) − λ · ${signal === "large-likelihood" ? "the large model's mean token log-probability of the small model's decoded translation" : "the small model's mean token log-probability of its decoded translation"}; ${GUARD_CHOICE_RULE}`;

/** The rule of a post-hoc guard on `signal`, on the re-estimated gain when `restacked`. */
export function qeGuardRule(signal: QeSignal, restacked = false): string {
  if (restacked) return RESTACK_GUARD_RULE(signal);
  return signal === "large-likelihood" ? LARGE_QE_GUARD_RULE : QE_GUARD_RULE;
}

/** How the post-hoc guard is chosen among its candidates (signals, with or without the re-estimate). */
export const QE_SIGNAL_RULE =
  "each candidate's λ is chosen by the rule; a candidate is affordable when its cross-validated MeanDelta stays within the tolerance of the unguarded router's at every budget. The re-estimated gain is kept when it is affordable and its cross-validated severe-loss rate is not above the unguarded router's by more than two standard errors of the paired per-fold difference (of two such, the lower rate): it is fitted to the gain, not picked from a grid by the rate it is measured on, so its rate is not the optimistic minimum a plain guard's is; else the plain guard with the lowest rate. Ties go to the cheaper: the small model's confidence costs nothing beyond the decode, the large model's likelihood a forced-decoding prefill";

export const GUARD_RULE = `rank by predicted gain − λ · predicted P(gain < −δ); ${GUARD_CHOICE_RULE}`;

/** The trade-off at one λ. */
export interface GuardPoint {
  lambda: number;
  /** Per budget, mean over folds. */
  mean_delta: number[];
  severe_loss: number[];
}

/**
 * What ROUTER.json keeps about a guard: `risk-adjusted` (in-model, the risk head's P(g < −δ) from
 * the prefill) or `qe-adjusted` (post-hoc, the small model's confidence in its decoded translation).
 */
export interface GuardReport {
  method: "risk-adjusted" | "qe-adjusted";
  /** A post-hoc guard's signal; absent (as in files written before there was a choice) means `small-confidence`. */
  signal?: QeSignal;
  /**
   * A post-hoc guard on the re-estimated gain: what replaces the gain head's prediction in its score
   * (absent: the gain head's prediction itself).
   */
  restack?: GainRestack;
  /** A re-estimated guard's severe-loss cut against the gain head alone, and whether it passed the rule. */
  restack_cut?: RestackCut;
  rule: string;
  /** The chosen λ, in gain units per unit of probability. */
  lambda: number;
  tolerance: number;
  /** δ of the risk head's label g < −δ (also the severe loss measured here). */
  severe_delta: number;
  budgets: number[];
  /** The cross-validated trade-off over the grid, λ ascending. */
  grid: GuardPoint[];
  /** The best affordable λ's cut of the severe-loss rate (mean over budgets), whether taken or not; null if none cut it. */
  best_cut?: GuardCut | null;
  /** 101 quantiles of the out-of-fold risk-adjusted scores at the chosen λ: a streaming controller's start. */
  score_quantiles: number[];
  /**
   * A post-hoc guard chosen between signals: the rule and each signal's trade-off at its chosen λ,
   * with the quantiles of its scores (so that serve can rank by another signal than the one kept,
   * where the engines cannot give that one).
   */
  signal_choice?: {
    rule: string;
    candidates: ({
      signal: QeSignal;
      restack?: GainRestack;
      restack_cut?: RestackCut;
      score_quantiles?: number[];
    } & GuardPoint)[];
  };
}

/**
 * The rule over a measured grid (λ ascending from 0): the affordable λ are those before the first
 * that costs more than `tolerance` of λ = 0's MeanDelta at some budget; of these, the one with the
 * lowest severe-loss rate (mean over budgets; ties to the smaller λ) — provided it cuts the rate by
 * more than {@link GUARD_CUT_STANDARD_ERRORS} standard errors of the paired per-fold difference.
 * Otherwise 0: a guard whose cut is within fold noise only reshuffles the routed set.
 */
export function chooseFromTradeoff(
  measured: readonly { point: GuardPoint; foldSevere: Float64Array }[],
  tolerance: number,
): { index: number; best: GuardCut | null } {
  const base = measured[0]!;
  const mean = (values: ArrayLike<number>) =>
    Array.from(values).reduce((sum, value) => sum + value, 0) / values.length;
  let best = 0;
  for (let index = 1; index < measured.length; index++) {
    const { point } = measured[index]!;
    if (!withinTolerance(point.mean_delta, base.point.mean_delta, tolerance)) break;
    if (mean(point.severe_loss) < mean(measured[best]!.point.severe_loss)) best = index;
  }
  if (best === 0) return { index: 0, best: null };
  const cuts = base.foldSevere.map((rate, fold) => rate - measured[best]!.foldSevere[fold]!);
  const cut = { lambda: measured[best]!.point.lambda, diff: mean(cuts), se: standardErrorOf(cuts) };
  return { index: cut.diff > 0 && cut.diff > GUARD_CUT_STANDARD_ERRORS * cut.se ? best : 0, best: cut };
}

/** Whether `meanDelta` stays within `tolerance` (a share) of `unguarded` at every budget. */
export function withinTolerance(
  meanDelta: readonly number[],
  unguarded: readonly number[],
  tolerance: number,
): boolean {
  return meanDelta.every(
    (value, budget) => value >= unguarded[budget]! - tolerance * Math.abs(unguarded[budget]!),
  );
}

/** A re-estimated guard's cut of the severe-loss rate against the gain head alone (mean over folds, its standard error). */
export interface RestackCut {
  diff: number;
  se: number;
  /** Affordable, and not more severe losses than the gain head alone beyond fold noise (see {@link restackCutOf}). */
  taken: boolean;
  /** The gain head's own cross-validated trade-off, per budget, it was measured against. */
  unguarded?: { mean_delta: number[]; severe_loss: number[] };
}

/** The severe-loss cut of the best affordable λ: mean over folds of the paired difference, and its standard error. */
export interface GuardCut {
  lambda: number;
  diff: number;
  se: number;
}

function standardErrorOf(values: Float64Array): number {
  if (values.length < 2) return 0;
  const average = values.reduce((sum, value) => sum + value, 0) / values.length;
  const squares = values.reduce((sum, value) => sum + (value - average) ** 2, 0);
  return Math.sqrt(squares / (values.length - 1) / values.length);
}

/** The risk-adjusted score of one segment. */
export function riskAdjustedScore(gain: number, risk: number, lambda: number): number {
  return gain - lambda * risk;
}

/** Population standard deviation, 0 for values equal up to rounding. */
function spread(values: ArrayLike<number>): number {
  let sum = 0;
  for (let index = 0; index < values.length; index++) sum += values[index]!;
  const average = sum / values.length;
  let squares = 0;
  for (let index = 0; index < values.length; index++) squares += (values[index]! - average) ** 2;
  const deviation = Math.sqrt(squares / values.length);
  return deviation > 1e-12 * Math.max(1, Math.abs(average)) ? deviation : 0;
}

/**
 * The λ grid for these predictions: multiples of sd(gain scores) / sd(risk scores), the λ at which
 * one standard deviation of risk weighs as much as one of predicted gain. Just [0] when the risk
 * scores do not vary (nothing to trade).
 */
export function guardLambdaGrid(gainScores: ArrayLike<number>, riskScores: ArrayLike<number>): number[] {
  const riskSpread = spread(riskScores);
  if (!(riskSpread > 0)) return [0];
  const unit = spread(gainScores) / riskSpread;
  return GRID_MULTIPLES.map((multiple) => multiple * unit);
}

export interface GuardChoiceInput {
  /** True gain of every row. */
  gains: ArrayLike<number>;
  /** Out-of-fold gain-head and risk-head scores of every row. */
  gainScores: ArrayLike<number>;
  riskScores: ArrayLike<number>;
  /** The fold of every row (measures are per fold, then averaged). */
  folds: Int32Array;
  budgets: readonly number[];
  tolerance: number;
  severeDelta: number;
  /** λ values to try, ascending from 0; defaults to {@link guardLambdaGrid}. */
  lambdas?: readonly number[];
  /** What `riskScores` are: the risk head's probabilities (default) or the post-hoc QE signal. */
  method?: GuardReport["method"];
  /** Which QE signal, for `qe-adjusted`. Defaults to `small-confidence`. */
  signal?: QeSignal;
  /** The re-estimate `gainScores` come from (out of fold), kept in the report; `qe-adjusted` only. */
  restack?: GainRestack;
}

/** Rows of each fold, by fold number. */
function foldMembers(folds: Int32Array): number[][] {
  const members = Array.from({ length: foldCountOf(folds) }, () => [] as number[]);
  folds.forEach((fold, row) => {
    members[fold]!.push(row);
  });
  return members;
}

/**
 * One ranking's trade-off, measured per fold then averaged; with each fold's severe-loss rate
 * (mean over budgets) for the paired comparison of {@link chooseFromTradeoff}.
 */
function measureFolds(
  scores: Float64Array,
  lambda: number,
  where: { gains: ArrayLike<number>; members: number[][]; budgets: readonly number[]; severeDelta: number },
): { point: GuardPoint; foldSevere: Float64Array } {
  const { gains, members, budgets, severeDelta } = where;
  const sums = { delta: budgets.map(() => 0), severe: budgets.map(() => 0), counts: budgets.map(() => 0) };
  const foldSevere: number[] = [];
  for (const rows of members) {
    if (rows.length === 0) continue;
    const measures = topMeasures(
      rows.map((row) => scores[row]!),
      rows.map((row) => gains[row]!),
      budgets,
      severeDelta,
    );
    let severe = 0;
    let known = 0;
    measures.forEach((measure, budget) => {
      if (measure.meanDelta === null || measure.severeLoss === null) return;
      sums.delta[budget]! += measure.meanDelta;
      sums.severe[budget]! += measure.severeLoss;
      sums.counts[budget]!++;
      severe += measure.severeLoss;
      known++;
    });
    if (known > 0) foldSevere.push(severe / known);
  }
  const point: GuardPoint = {
    lambda,
    mean_delta: sums.delta.map((sum, budget) => sum / sums.counts[budget]!),
    severe_loss: sums.severe.map((sum, budget) => sum / sums.counts[budget]!),
  };
  return { point, foldSevere: Float64Array.from(foldSevere) };
}

/**
 * A re-estimated ranking against the gain head's alone, on the same folds: its cut of the
 * severe-loss rate (mean over folds of the paired difference, and its standard error), and whether
 * it is kept — affordable at every budget (MeanDelta within the tolerance) and not more severe
 * losses beyond fold noise ({@link GUARD_CUT_STANDARD_ERRORS} standard errors of the paired
 * difference). The burden of proof is the other way round from λ's: the re-estimate is fitted to
 * the gain, not picked from a grid by the severe-loss rate it is then measured on, and a better
 * estimate of the gain is what routing wants in the first place; severe losses among the routed
 * are too rare in each fold for a cut to show, but an increase would.
 */
export function restackCutOf(
  unguarded: ArrayLike<number>,
  restacked: ArrayLike<number>,
  input: Pick<GuardChoiceInput, "gains" | "folds" | "budgets" | "tolerance" | "severeDelta">,
): RestackCut {
  const where = { ...input, members: foldMembers(input.folds) };
  const base = measureFolds(Float64Array.from(unguarded), 0, where);
  const mine = measureFolds(Float64Array.from(restacked), 0, where);
  const cuts = base.foldSevere.map((rate, fold) => rate - mine.foldSevere[fold]!);
  const diff = cuts.reduce((sum, value) => sum + value, 0) / Math.max(1, cuts.length);
  const se = standardErrorOf(cuts);
  return {
    diff,
    se,
    taken:
      withinTolerance(mine.point.mean_delta, base.point.mean_delta, input.tolerance) &&
      diff >= -GUARD_CUT_STANDARD_ERRORS * se,
    unguarded: { mean_delta: base.point.mean_delta, severe_loss: base.point.severe_loss },
  };
}

/** Chooses λ by the rule above and reports the trade-off over the grid. */
export function chooseGuardLambda(input: GuardChoiceInput): GuardReport {
  const { gains, gainScores, riskScores, folds, budgets, tolerance, severeDelta } = input;
  if (!(tolerance >= 0 && tolerance < 1))
    throw new UsageError(`the guard's MeanDelta tolerance must be in [0, 1), got ${tolerance}`);
  const lambdas = input.lambdas ?? guardLambdaGrid(gainScores, riskScores);
  if (lambdas[0] !== 0) throw new UsageError("the λ grid must start at 0 (no guard)");
  const members = foldMembers(folds);
  // Per λ: the trade-off averaged over folds, and each fold's severe-loss rate averaged over budgets.
  const measured = lambdas.map((lambda) =>
    measureFolds(
      Float64Array.from(gains, (_, row) => riskAdjustedScore(gainScores[row]!, riskScores[row]!, lambda)),
      lambda,
      { gains, members, budgets, severeDelta },
    ),
  );
  const grid = measured.map((entry) => entry.point);
  const { index: chosen, best } = chooseFromTradeoff(measured, tolerance);
  const lambda = lambdas[chosen]!;
  const guarded = Float64Array.from({ length: gains.length }, (_, row) =>
    riskAdjustedScore(gainScores[row]!, riskScores[row]!, lambda),
  );
  const levels = Float64Array.from({ length: 101 }, (_, index) => index / 100);
  const signal = input.signal ?? "small-confidence";
  return {
    method: input.method ?? "risk-adjusted",
    ...(input.method === "qe-adjusted" ? { signal } : {}),
    ...(input.method === "qe-adjusted" && input.restack ? { restack: input.restack } : {}),
    rule: input.method === "qe-adjusted" ? qeGuardRule(signal, input.restack !== undefined) : GUARD_RULE,
    lambda,
    tolerance,
    severe_delta: severeDelta,
    budgets: [...budgets],
    grid,
    best_cut: best,
    score_quantiles: Array.from(quantiles(sortScores(guarded), levels)),
  };
}

/** A guard's cross-validated trade-off at its chosen λ. */
export function chosenPoint(report: GuardReport): GuardPoint {
  const point = report.grid.find((each) => each.lambda === report.lambda);
  if (!point) throw new UsageError(`the guard's λ ${report.lambda} is not on its grid`);
  return point;
}

/** Mean of a guard's cross-validated severe-loss rates at its chosen λ, over budgets. */
function meanSevereLoss(point: Pick<GuardPoint, "severe_loss">): number {
  return point.severe_loss.reduce((sum, rate) => sum + rate, 0) / point.severe_loss.length;
}

/**
 * The post-hoc guard the rule keeps among affordable candidates (see {@link QE_SIGNAL_RULE}):
 * re-estimated ones kept by their cut (`restack_cut.taken`, see {@link restackCutOf}) first, else
 * the plain ones; of these the lowest cross-validated severe-loss rate at the chosen λ, the first
 * (the cheaper) on a tie. Null when there is none.
 *
 * Why the re-estimate first: a plain guard's rate is the lowest over a λ grid measured on the same
 * folds (a minimum over noisy rates, optimistic), while the re-estimate is fitted to the gain by
 * least squares and its cut is tested once; it is also the more general ranking (a plain guard
 * is the special case of fixed weights on the gain and one signal).
 */
export function preferredQeGuard(affordable: readonly GuardReport[]): GuardReport | null {
  const restacked = affordable.filter((report) => report.restack && report.restack_cut?.taken);
  const pool = restacked.length > 0 ? restacked : affordable.filter((report) => !report.restack);
  let best: GuardReport | null = null;
  for (const report of pool)
    if (best === null || meanSevereLoss(chosenPoint(report)) < meanSevereLoss(chosenPoint(best)))
      best = report;
  return best;
}

/**
 * The post-hoc guard to keep from its candidates, cheapest first: those whose chosen λ keeps
 * cross-validated MeanDelta within `tolerance` of `unguarded` (the gain head's alone) at every
 * budget, then {@link preferredQeGuard}. Null when no candidate is affordable.
 */
export function chooseQeGuard(
  reports: readonly GuardReport[],
  unguarded: readonly number[],
  tolerance: number,
): GuardReport | null {
  return preferredQeGuard(
    reports.filter((report) => withinTolerance(chosenPoint(report).mean_delta, unguarded, tolerance)),
  );
}

/**
 * Which guard the `guarded` policy ranks by: `in-model` (the risk-adjusted score from the prefill,
 * nothing decoded first) or `post-hoc` (the small model's translation is decoded and scored before
 * the decision, as `guarded-qe`).
 */
export const GUARD_KINDS = ["in-model", "post-hoc"] as const;
export type GuardKind = (typeof GUARD_KINDS)[number];

/**
 * The guard `guarded` ranks by, or the one asked for. `auto`: in-model when its λ cut
 * cross-validated severe losses (it costs no decode); else post-hoc when the router has a post-hoc
 * guard that changes the ranking (a λ, or a re-estimate kept by its rule); else in-model, whose
 * λ = 0 ranks as RouteLMT. `inModel` is the risk-adjusted guard (absent without a risk head),
 * `postHoc` the post-hoc one (absent when the records carried no signal of the decoded translation).
 */
export function chooseGuardKind(
  requested: GuardKind | "auto",
  inModel: Pick<GuardReport, "lambda"> | undefined,
  postHoc: Pick<GuardReport, "lambda" | "restack"> | undefined,
): GuardKind {
  if (requested === "post-hoc" && postHoc === undefined)
    throw new UsageError(
      "--guard post-hoc needs a post-hoc guard: train on records that carry the small model's confidence (small_mean_logprob) or the large model's likelihood of the small translation (large_logprob_of_small), as collect writes by default",
    );
  if (requested !== "auto") return requested;
  if (inModel !== undefined && inModel.lambda !== 0) return "in-model";
  return qeGuardAdjusts(postHoc) ? "post-hoc" : "in-model";
}

/** Whether a post-hoc guard ranks by anything but the gain head's prediction (else nothing is decoded first). */
export function qeGuardAdjusts(guard: Pick<GuardReport, "lambda" | "restack"> | undefined): boolean {
  return guard !== undefined && (guard.lambda !== 0 || guard.restack !== undefined);
}
