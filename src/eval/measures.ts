import { InputError, UsageError } from "../errors/index.js";
import { maskFromOrder, routedCount, routingOrder } from "../routing/batch-allocation.js";

/**
 * Per-segment quality of both translations on the metric's own scale (higher is better). The gain
 * of segment i is `qualityLarge[i] − qualitySmall[i]`. Ids break ties in the oracle ranking.
 */
export interface SegmentOutcomes {
  ids: readonly string[];
  qualitySmall: readonly number[];
  qualityLarge: readonly number[];
}

/** Throws an InputError unless the outcomes are non-empty, aligned and finite. */
export function checkOutcomes(outcomes: SegmentOutcomes): void {
  const count = outcomes.ids.length;
  if (count === 0) throw new InputError("no segments to evaluate");
  if (outcomes.qualitySmall.length !== count || outcomes.qualityLarge.length !== count) {
    throw new InputError(
      `segment outcomes are misaligned: ${count} ids, ${outcomes.qualitySmall.length} small and ${outcomes.qualityLarge.length} large qualities`,
    );
  }
  for (let index = 0; index < count; index++) {
    if (!Number.isFinite(outcomes.qualitySmall[index]) || !Number.isFinite(outcomes.qualityLarge[index])) {
      throw new InputError(`segment ${outcomes.ids[index]} has a non-finite quality`);
    }
  }
}

function checkMask(routed: readonly boolean[], outcomes: SegmentOutcomes): void {
  checkOutcomes(outcomes);
  if (routed.length !== outcomes.ids.length) {
    throw new InputError(`routed mask has ${routed.length} entries for ${outcomes.ids.length} segments`);
  }
}

/** True gain of each segment: large quality minus small quality. */
export function gainsOf(outcomes: SegmentOutcomes): number[] {
  return outcomes.qualityLarge.map((large, index) => large - outcomes.qualitySmall[index]!);
}

/** Mean quality of the hybrid system: the large translation where routed, the small one elsewhere. */
export function hybridQuality(routed: readonly boolean[], outcomes: SegmentOutcomes): number {
  checkMask(routed, outcomes);
  let total = 0;
  for (let index = 0; index < routed.length; index++) {
    total += routed[index] ? outcomes.qualityLarge[index]! : outcomes.qualitySmall[index]!;
  }
  return total / routed.length;
}

/** Share of segments routed to the large model. */
export function realizedFraction(routed: readonly boolean[]): number {
  if (routed.length === 0) throw new InputError("no segments to evaluate");
  return routed.filter(Boolean).length / routed.length;
}

function routedGains(routed: readonly boolean[], outcomes: SegmentOutcomes): number[] {
  checkMask(routed, outcomes);
  const gains: number[] = [];
  for (let index = 0; index < routed.length; index++) {
    if (routed[index]) gains.push(outcomes.qualityLarge[index]! - outcomes.qualitySmall[index]!);
  }
  return gains;
}

/** Mean true gain over the routed segments; null when none is routed. */
export function meanDelta(routed: readonly boolean[], outcomes: SegmentOutcomes): number | null {
  const gains = routedGains(routed, outcomes);
  return gains.length === 0 ? null : gains.reduce((sum, gain) => sum + gain, 0) / gains.length;
}

/**
 * The oracle's routed mask at a budget: the ⌊p·N⌋ segments with the largest true gain, ties broken
 * by ascending id exactly as batch allocation does.
 */
export function oracleMask(outcomes: SegmentOutcomes, budget: number): boolean[] {
  checkOutcomes(outcomes);
  const order = routingOrder(gainsOf(outcomes), outcomes.ids);
  return maskFromOrder(order, routedCount(budget, outcomes.ids.length));
}

/**
 * Share of the routed segments that are among the true top-⌊p·N⌋ by gain; null when none is
 * routed. Segments whose gain ties the ⌊p·N⌋-th largest are interchangeable for the oracle, so a
 * routed one counts as a hit while the oracle set still has room at that gain: the score is the
 * largest overlap with any top-⌊p·N⌋ set, and two routings with the same routed gains score alike
 * whatever the ids (integer labels such as MQM, and chrF's many exact zeros, tie often). Equals
 * precision and recall of the oracle set when exactly ⌊p·N⌋ are routed.
 */
export function hitRate(
  routed: readonly boolean[],
  outcomes: SegmentOutcomes,
  budget: number,
): number | null {
  checkMask(routed, outcomes);
  const gains = gainsOf(outcomes);
  const oracleSize = routedCount(budget, gains.length);
  let routedTotal = 0;
  for (const isRouted of routed) if (isRouted) routedTotal++;
  if (routedTotal === 0) return null;
  if (oracleSize === 0) return 0;
  const boundary = [...gains].sort((a, b) => b - a)[oracleSize - 1]!;
  let aboveBoundary = 0;
  for (const gain of gains) if (gain > boundary) aboveBoundary++;
  let routedAbove = 0;
  let routedAtBoundary = 0;
  for (let index = 0; index < routed.length; index++) {
    if (!routed[index]) continue;
    if (gains[index]! > boundary) routedAbove++;
    else if (gains[index] === boundary) routedAtBoundary++;
  }
  const hits = routedAbove + Math.min(routedAtBoundary, oracleSize - aboveBoundary);
  return hits / routedTotal;
}

/**
 * Share of the routed segments whose gain is below −δ (the large model made them clearly worse);
 * null when none is routed.
 * @param severeLossDelta δ ≥ 0 on the metric's scale (e.g. chrF points).
 */
export function severeLossRate(
  routed: readonly boolean[],
  outcomes: SegmentOutcomes,
  severeLossDelta: number,
): number | null {
  if (!(Number.isFinite(severeLossDelta) && severeLossDelta >= 0)) {
    throw new UsageError(`severe-loss delta must be a non-negative number, got ${severeLossDelta}`);
  }
  const gains = routedGains(routed, outcomes);
  return gains.length === 0 ? null : gains.filter((gain) => gain < -severeLossDelta).length / gains.length;
}

/** Number of routed segments the large model made worse (gain < 0). */
export function regressions(routed: readonly boolean[], outcomes: SegmentOutcomes): number {
  return routedGains(routed, outcomes).filter((gain) => gain < 0).length;
}

/** Every measure of one routed mask. */
export interface RoutingMeasures {
  hybridQuality: number;
  realizedFraction: number;
  routed: number;
  meanDelta: number | null;
  hitRate: number | null;
  severeLossRate: number | null;
  regressions: number;
}

/**
 * All measures of a routed mask.
 * @param settings `budget` sets the oracle's top-⌊p·N⌋ for the hit rate; `severeLossDelta` is δ.
 */
export function measureRouting(
  routed: readonly boolean[],
  outcomes: SegmentOutcomes,
  settings: { budget: number; severeLossDelta: number },
): RoutingMeasures {
  return {
    hybridQuality: hybridQuality(routed, outcomes),
    realizedFraction: realizedFraction(routed),
    routed: routed.filter(Boolean).length,
    meanDelta: meanDelta(routed, outcomes),
    hitRate: hitRate(routed, outcomes, settings.budget),
    severeLossRate: severeLossRate(routed, outcomes, settings.severeLossDelta),
    regressions: regressions(routed, outcomes),
  };
}
