/**
 * What the probe selection is worth out of sample: bootstrap bias-corrected cross-validation
 * (BBC-CV; Tsamardinos, Greasidou & Borboudakis, Machine Learning 107, 2018).
 *
 * Each candidate's cross-validated score is honest on its own, but the chosen candidate's score is
 * the largest of twenty-odd noisy scores measured on the same folds, so it overstates what the
 * choice delivers: on pure-noise features the winner's mean MeanDelta came out 0.13 gain
 * standard deviations above the truth (zero), and "chosen minus default" 3 standard errors above
 * zero. BBC-CV measures the choosing itself, without refitting anything: resample the rows with
 * replacement, choose a candidate by the same rule from its out-of-fold predictions on the rows
 * drawn, and score that choice on the rows not drawn. The mean over resamples estimates the
 * selection's score; the spread of the out-of-bag scores gives a percentile interval.
 *
 * Rows are scored within their outer fold (each fold's predictions come from one fitted probe, as
 * the candidates' own scores are), then averaged over folds. Candidates whose existence depended on
 * the data (the greedy additions) are taken as given, so a little optimism remains.
 */
import { UsageError } from "../errors/index.js";
import { quantile, sortScores } from "../stats/quantiles.js";
import { createRandom } from "../stats/random.js";
import { budgetCount, scoreOrder } from "./routing-measures.js";

export interface BootstrapCandidate {
  /** Out-of-fold prediction of every row. */
  outOfFold: ArrayLike<number>;
}

export interface SelectionBootstrapInput<Candidate extends BootstrapCandidate> {
  candidates: readonly Candidate[];
  gains: ArrayLike<number>;
  /** Outer fold of every row. */
  outer: Int32Array;
  outerFolds: number;
  budgets: readonly number[];
  /** The selection rule: index of the candidate chosen when each candidate scores `scores[index]`. */
  choose(scores: readonly number[]): number;
  /** Index of the default candidate to compare with, or null. */
  defaultIndex: number | null;
  resamples: number;
  seed: number;
}

/** The selection's bias-corrected estimate, in the units of the candidates' scores. */
export interface SelectionEstimate {
  method: string;
  resamples: number;
  /** Mean over resamples of the chosen candidate's out-of-bag score, and its 95 % percentile interval. */
  score: number;
  lo: number;
  hi: number;
  /** Chosen minus default on the same out-of-bag rows: mean and 95 % percentile interval. */
  versus_default: { diff: number; lo: number; hi: number } | null;
  /** Share of resamples in which each candidate was chosen (same order as the candidates). */
  chosen_share: number[];
}

export const DEFAULT_BOOTSTRAP_RESAMPLES = 200;

/**
 * Mean MeanDelta@p over the budgets of routing the top of `order` among rows weighted by
 * `weight` (a row drawn twice counts twice), within one fold: the measure of the candidates' own
 * scores on the expanded rows, without expanding them. NaN when no budget routes anything.
 */
export function weightedBudgetScore(
  order: Int32Array,
  weight: ArrayLike<number>,
  gains: ArrayLike<number>,
  budgets: readonly number[],
): number {
  let total = 0;
  for (const row of order) total += weight[row]!;
  let sum = 0;
  let known = 0;
  for (const budget of budgets) {
    const count = budgetCount(budget, total);
    if (count === 0) continue;
    let remaining = count;
    let gainSum = 0;
    for (let rank = 0; rank < order.length && remaining > 0; rank++) {
      const row = order[rank]!;
      const taken = Math.min(weight[row]!, remaining);
      if (taken === 0) continue;
      gainSum += taken * gains[row]!;
      remaining -= taken;
    }
    sum += gainSum / count;
    known++;
  }
  return known === 0 ? Number.NaN : sum / known;
}

/** Rows of each fold in routing order of `predictions`: highest first, ties by row. */
function foldOrders(predictions: ArrayLike<number>, outer: Int32Array, outerFolds: number): Int32Array[] {
  const members: number[][] = Array.from({ length: outerFolds }, () => []);
  for (let row = 0; row < outer.length; row++) members[outer[row]!]!.push(row);
  // Rows are listed ascending, so the routing order's ties by position are ties by row.
  return members.map((rows) =>
    Int32Array.from(scoreOrder(rows.map((row) => predictions[row]!)), (position) => rows[position]!),
  );
}

function meanOfFinite(values: readonly number[]): number {
  let sum = 0;
  let count = 0;
  for (const value of values) {
    if (!Number.isFinite(value)) continue;
    sum += value;
    count++;
  }
  return count === 0 ? Number.NaN : sum / count;
}

/** The 2.5 % and 97.5 % quantiles of the finite values (NaN when there are none). */
function percentileInterval(values: readonly number[]): { lo: number; hi: number } {
  const sorted = sortScores(values.filter(Number.isFinite));
  return { lo: quantile(sorted, 0.025), hi: quantile(sorted, 0.975) };
}

/** Bootstrap bias-corrected estimate of the selection's score; deterministic for a seed. */
export function bootstrapSelection<Candidate extends BootstrapCandidate>(
  input: SelectionBootstrapInput<Candidate>,
): SelectionEstimate {
  const { candidates, gains, outer, outerFolds, budgets, resamples } = input;
  const rows = gains.length;
  if (candidates.length === 0) throw new UsageError("the selection estimate needs at least one candidate");
  if (!(Number.isInteger(resamples) && resamples >= 1))
    throw new UsageError(`resamples must be a positive integer, got ${resamples}`);
  if (outer.length !== rows) throw new UsageError(`got ${outer.length} fold labels for ${rows} rows`);
  const orders = candidates.map((candidate) => foldOrders(candidate.outOfFold, outer, outerFolds));
  const scoreOf = (candidate: number, weight: Int32Array) =>
    meanOfFinite(orders[candidate]!.map((order) => weightedBudgetScore(order, weight, gains, budgets)));

  const random = createRandom(input.seed);
  const inBag = new Int32Array(rows);
  const outOfBag = new Int32Array(rows);
  const chosenScores: number[] = [];
  const differences: number[] = [];
  const chosenCounts = new Array<number>(candidates.length).fill(0);
  for (let resample = 0; resample < resamples; resample++) {
    inBag.fill(0);
    for (let draw = 0; draw < rows; draw++) inBag[Math.floor(random.nextFloat() * rows)]!++;
    for (let row = 0; row < rows; row++) outOfBag[row] = inBag[row] === 0 ? 1 : 0;
    const bagScores = candidates.map((_, index) => scoreOf(index, inBag));
    // A resample too thin for any budget to route a row says nothing about the choice.
    if (!bagScores.some(Number.isFinite)) continue;
    const chosen = input.choose(bagScores);
    chosenCounts[chosen]!++;
    const chosenScore = scoreOf(chosen, outOfBag);
    chosenScores.push(chosenScore);
    if (input.defaultIndex !== null) differences.push(chosenScore - scoreOf(input.defaultIndex, outOfBag));
  }
  const interval = percentileInterval(chosenScores);
  const versus =
    input.defaultIndex === null
      ? null
      : { diff: meanOfFinite(differences), ...percentileInterval(differences) };
  return {
    method: `bootstrap bias-corrected CV (Tsamardinos et al. 2018): ${resamples} resamples of the rows, the rule choosing on the rows drawn from every candidate's out-of-fold predictions, its choice scored on the rows not drawn`,
    resamples,
    score: meanOfFinite(chosenScores),
    lo: interval.lo,
    hi: interval.hi,
    versus_default: versus,
    chosen_share: chosenCounts.map((count) => (chosenScores.length === 0 ? 0 : count / chosenScores.length)),
  };
}
