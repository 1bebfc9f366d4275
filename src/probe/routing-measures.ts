/**
 * The measures a router is chosen by, computed on cross-validation folds: MeanDelta@p (the mean
 * true gain of the ⌊p·N⌋ segments ranked first) and the severe-loss share among them, plus the
 * normal-score transform used for rank targets. Ties are broken by position, so the measures are
 * deterministic; eval's measures use the same ⌊p·N⌋ (ids there, positions here).
 */
import { UsageError } from "../errors/index.js";
import { averageRanks } from "../stats/correlation.js";
import { normalQuantile } from "../stats/normal.js";

/** Slack before flooring p·N, as batch allocation uses: 0.3 of 10 is 3. */
const FLOOR_SLACK = 1e-9;

/** ⌊p·N⌋ for a budget p in [0, 1]. */
export function budgetCount(budget: number, count: number): number {
  if (!(Number.isFinite(budget) && budget >= 0 && budget <= 1))
    throw new UsageError(`budget must be a fraction in [0, 1], got ${budget}`);
  return Math.min(count, Math.floor(budget * count + FLOOR_SLACK));
}

/** Positions in routing order: highest score first, ties by position. */
export function scoreOrder(scores: ArrayLike<number>): Int32Array {
  const order = Int32Array.from({ length: scores.length }, (_, index) => index);
  order.sort((a, b) => (scores[a]! === scores[b]! ? a - b : scores[b]! - scores[a]!));
  return order;
}

/** What routing the top of a ranking gives at one budget. */
export interface TopMeasures {
  /** Mean gain of the routed segments; null when none is routed. */
  meanDelta: number | null;
  /** Share of them with gain < −δ; null when none is routed. */
  severeLoss: number | null;
}

/**
 * MeanDelta@p and the severe-loss share for each budget, routing the top ⌊p·N⌋ of `scores`
 * (`gains[i]` is the true gain of position i).
 */
export function topMeasures(
  scores: ArrayLike<number>,
  gains: ArrayLike<number>,
  budgets: readonly number[],
  severeDelta: number,
): TopMeasures[] {
  if (scores.length !== gains.length)
    throw new UsageError(`got ${scores.length} scores for ${gains.length} gains`);
  const order = scoreOrder(scores);
  return budgets.map((budget) => {
    const count = budgetCount(budget, order.length);
    if (count === 0) return { meanDelta: null, severeLoss: null };
    let sum = 0;
    let severe = 0;
    for (let rank = 0; rank < count; rank++) {
      const gain = gains[order[rank]!]!;
      sum += gain;
      if (gain < -severeDelta) severe++;
    }
    return { meanDelta: sum / count, severeLoss: severe / count };
  });
}

/**
 * Normal scores (van der Waerden): Φ⁻¹(rank / (n + 1)) with average ranks for ties. A target for
 * probes that only need to order segments: it keeps the order of the gains and tames their tails.
 */
export function normalScores(values: ArrayLike<number>): Float64Array {
  const ranks = averageRanks(values);
  const count = values.length;
  return Float64Array.from(ranks, (rank) => normalQuantile(rank / (count + 1)));
}
