import { UsageError } from "../errors/index.js";
import { checkBudget, routedCount, routingOrder } from "../routing/batch-allocation.js";
import { checkOutcomes, type SegmentOutcomes } from "./measures.js";

/** Budgets 0, 0.05, …, 1 (21 points), computed as i/20 so each is the closest double to its decimal. */
export const DEFAULT_BUDGET_GRID: readonly number[] = Array.from({ length: 21 }, (_, index) => index / 20);

export interface CurvePoint {
  /** Nominal budget p. */
  budget: number;
  /** Share actually routed, ⌊p·N⌋/N: the x axis of every area and crossing below. */
  routedFraction: number;
  /** Hybrid quality at this budget. */
  quality: number;
}

/** Quality against budget for one policy, with both single-model endpoints. */
export interface QualityBudgetCurve {
  /** Sorted by budget. */
  points: CurvePoint[];
  /** Quality when every segment stays on the small model. */
  qualitySmallOnly: number;
  /** Quality when every segment goes to the large model. */
  qualityLargeOnly: number;
}

/**
 * Quality–budget curve of a policy under batch allocation: at each budget, the ⌊p·N⌋ highest-scored
 * segments go large (ties by id, NaN last). The segments are ranked once and the hybrid quality read
 * from prefix sums of the gains, so a curve costs one sort.
 * @param grid budgets in [0, 1]; defaults to {@link DEFAULT_BUDGET_GRID}.
 */
export function qualityBudgetCurve(
  scores: readonly number[],
  outcomes: SegmentOutcomes,
  grid: readonly number[] = DEFAULT_BUDGET_GRID,
): QualityBudgetCurve {
  checkOutcomes(outcomes);
  for (const budget of grid) checkBudget(budget);
  const segmentCount = outcomes.ids.length;
  const order = routingOrder(scores, outcomes.ids);
  const prefixGain = new Float64Array(segmentCount + 1);
  for (let rank = 0; rank < segmentCount; rank++) {
    const index = order[rank]!;
    prefixGain[rank + 1] = prefixGain[rank]! + outcomes.qualityLarge[index]! - outcomes.qualitySmall[index]!;
  }
  const smallTotal = outcomes.qualitySmall.reduce((sum, quality) => sum + quality, 0);
  const points = [...grid]
    .sort((a, b) => a - b)
    .map((budget) => {
      const count = routedCount(budget, segmentCount);
      return {
        budget,
        routedFraction: count / segmentCount,
        quality: (smallTotal + prefixGain[count]!) / segmentCount,
      };
    });
  return {
    points,
    qualitySmallOnly: smallTotal / segmentCount,
    qualityLargeOnly: outcomes.qualityLarge.reduce((sum, quality) => sum + quality, 0) / segmentCount,
  };
}

function sortedPoints(curve: QualityBudgetCurve): CurvePoint[] {
  return [...curve.points].sort((a, b) => a.routedFraction - b.routedFraction);
}

/** Area under the quality curve: trapezoid rule over the routed fraction. */
export function auc(curve: QualityBudgetCurve): number {
  const points = sortedPoints(curve);
  let area = 0;
  for (let index = 1; index < points.length; index++) {
    const left = points[index - 1]!;
    const right = points[index]!;
    area += ((left.quality + right.quality) / 2) * (right.routedFraction - left.routedFraction);
  }
  return area;
}

/**
 * Performance gap recovered: (q − q_small_only) / (q_large_only − q_small_only). Null when both
 * models score the same, since there is no gap to recover.
 */
export function pgr(quality: number, qualitySmallOnly: number, qualityLargeOnly: number): number | null {
  const gap = qualityLargeOnly - qualitySmallOnly;
  return gap === 0 ? null : (quality - qualitySmallOnly) / gap;
}

/**
 * Average PGR as RouteLLM computes it (routellm/evals/evaluate.py): (AUC − AUC_small) /
 * (AUC_large − AUC_small), each area by the trapezoid rule over the routed fraction, where
 * AUC_small/AUC_large are the constant single-model lines over the same x range. This equals the
 * trapezoid-rule mean of PGR over the covered budget range (not the plain mean of the grid points:
 * the two end points weigh half). Null when both models score the same.
 */
export function apgr(curve: QualityBudgetCurve): number | null {
  const points = sortedPoints(curve);
  const first = points[0];
  const last = points[points.length - 1];
  if (first === undefined || last === undefined || last.routedFraction === first.routedFraction) {
    throw new UsageError("APGR needs a curve spanning at least two different routed fractions");
  }
  const gap = curve.qualityLargeOnly - curve.qualitySmallOnly;
  if (gap === 0) return null;
  const range = last.routedFraction - first.routedFraction;
  return (auc(curve) - curve.qualitySmallOnly * range) / (gap * range);
}

/**
 * Call-performance threshold: the smallest routed fraction at which the curve reaches PGR ≥
 * `targetPgr`, interpolated linearly between the last point below and the first point at or above
 * it. Null when no point reaches it or when both models score the same (PGR undefined).
 *
 * RouteLLM interpolates the inverse curve with `np.interp`, which assumes quality rises with the
 * budget; walking to the first crossing gives the same answer on monotone curves and the earliest
 * crossing on others.
 */
export function cpt(curve: QualityBudgetCurve, targetPgr: number): number | null {
  const points = sortedPoints(curve);
  let previous: { fraction: number; pgr: number } | null = null;
  for (const point of points) {
    const pointPgr = pgr(point.quality, curve.qualitySmallOnly, curve.qualityLargeOnly);
    if (pointPgr === null) return null;
    if (pointPgr >= targetPgr) {
      if (previous === null) return point.routedFraction;
      const share = (targetPgr - previous.pgr) / (pointPgr - previous.pgr);
      return previous.fraction + share * (point.routedFraction - previous.fraction);
    }
    previous = { fraction: point.routedFraction, pgr: pointPgr };
  }
  return null;
}
