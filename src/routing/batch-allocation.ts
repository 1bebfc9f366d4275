import { InputError, UsageError } from "../errors/index.js";

/**
 * Slack added before flooring p·N: budgets such as 0.3 are not exact in binary, and 0.3 × 10 is
 * 2.9999999999999996, which must still mean three segments.
 */
export const FLOOR_SLACK = 1e-9;

/** Throws a UsageError unless `budget` is a finite fraction in [0, 1]. */
export function checkBudget(budget: number): void {
  if (!(Number.isFinite(budget) && budget >= 0 && budget <= 1)) {
    throw new UsageError(`budget must be a fraction in [0, 1], got ${budget}`);
  }
}

/**
 * How many of `segmentCount` segments a budget sends to the large model: ⌊p·N⌋, robust to the
 * binary representation of p (0.3 of 10 is 3).
 */
export function routedCount(budget: number, segmentCount: number): number {
  checkBudget(budget);
  if (!(Number.isInteger(segmentCount) && segmentCount >= 0)) {
    throw new UsageError(`segment count must be a non-negative integer, got ${segmentCount}`);
  }
  return Math.min(segmentCount, Math.floor(budget * segmentCount + FLOOR_SLACK));
}

/**
 * How many texts of a batch a server routes at budget p when it sees many batches: ⌊p·n + c⌋,
 * where c ∈ [0, 1) is the fraction of a text earlier batches were owed, and the fraction this one
 * leaves owed. ⌊p·n⌋ alone never routes a batch smaller than 1/p (a client sending pairs at
 * p = 0.3 would never see the large model); carrying the remainder makes every run of batches
 * route p of its texts, within one text, and a batch still routes its own best candidates.
 */
export function carriedRoutedCount(
  budget: number,
  segmentCount: number,
  carry: number,
): { count: number; carry: number } {
  checkBudget(budget);
  if (!(Number.isFinite(carry) && carry >= 0 && carry < 1)) {
    throw new UsageError(`carried budget must be in [0, 1), got ${carry}`);
  }
  if (!(Number.isInteger(segmentCount) && segmentCount >= 0)) {
    throw new UsageError(`segment count must be a non-negative integer, got ${segmentCount}`);
  }
  const owed = budget * segmentCount + carry;
  const count = Math.min(segmentCount, Math.floor(owed + FLOOR_SLACK));
  const left = owed - count;
  return { count, carry: left > FLOOR_SLACK && left < 1 ? left : 0 };
}

/**
 * Compares two segments for routing priority: higher score first; NaN scores after every number
 * (including -Infinity); equal scores by id in ascending code-unit order (`"a" < "b"`, `"10" < "9"`,
 * independent of locale); equal ids by position. Negative means `a` routes first.
 */
function comparePriority(
  scoreA: number,
  idA: string,
  indexA: number,
  scoreB: number,
  idB: string,
  indexB: number,
) {
  const aIsNaN = Number.isNaN(scoreA);
  const bIsNaN = Number.isNaN(scoreB);
  if (aIsNaN !== bIsNaN) return aIsNaN ? 1 : -1;
  if (!aIsNaN && scoreA !== scoreB) return scoreA > scoreB ? -1 : 1;
  if (idA !== idB) return idA < idB ? -1 : 1;
  return indexA - indexB;
}

/**
 * Segment indices in routing order: the segment to send to the large model first comes first.
 * Order: score descending; NaN scores last; ties by ascending id (code-unit order, so the
 * lexicographically smaller id wins), then by position. Deterministic for any input.
 */
export function routingOrder(scores: readonly number[], ids: readonly string[]): number[] {
  if (scores.length !== ids.length) {
    throw new InputError(`got ${scores.length} scores for ${ids.length} segment ids`);
  }
  const order = Array.from({ length: scores.length }, (_, index) => index);
  order.sort((a, b) => comparePriority(scores[a]!, ids[a]!, a, scores[b]!, ids[b]!, b));
  return order;
}

/** Routed mask of `segmentCount` segments that routes the first `count` indices of `order`. */
export function maskFromOrder(
  order: readonly number[],
  count: number,
  segmentCount = order.length,
): boolean[] {
  const routed = new Array<boolean>(segmentCount).fill(false);
  for (let rank = 0; rank < count && rank < order.length; rank++) routed[order[rank]!] = true;
  return routed;
}

/**
 * Batch routing at budget p: routes exactly ⌊p·N⌋ segments, those with the highest scores
 * (see {@link routingOrder} for ties and NaN). Returns `routed[i]` = segment i goes to the large model.
 */
export function allocateBatch(scores: readonly number[], ids: readonly string[], budget: number): boolean[] {
  const count = routedCount(budget, scores.length);
  return maskFromOrder(routingOrder(scores, ids), count);
}
