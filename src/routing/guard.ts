import { InputError, UsageError } from "../errors/index.js";
import { routedCount, routingOrder } from "./batch-allocation.js";

/**
 * What is known about one segment that can veto sending it to the large model. Missing values
 * (absent, null or NaN) never veto: a guard without its signal cannot judge.
 */
export interface GuardSignals {
  /** Quality head: predicted quality of the small model's translation. */
  qualityPrediction?: number | null;
  /** Risk head: probability that the large model's translation would be worse. */
  riskProbability?: number | null;
  /** External quality estimate (QE) of the decoded small hypothesis. */
  smallQeScore?: number | null;
}

/** A guard drops a candidate when its signal is at or above its threshold; an absent threshold disables it. */
export interface GuardThresholds {
  qualityPrediction?: number;
  riskProbability?: number;
  smallQeScore?: number;
}

/** Which guard dropped a segment. */
export type GuardName = keyof GuardThresholds;

const GUARD_NAMES: readonly GuardName[] = ["qualityPrediction", "riskProbability", "smallQeScore"];

/** The first guard (in the order quality, risk, QE) that drops this segment, or null if it may be routed. */
export function firedGuard(signals: GuardSignals, thresholds: GuardThresholds): GuardName | null {
  for (const name of GUARD_NAMES) {
    const threshold = thresholds[name];
    const value = signals[name];
    if (threshold === undefined || value === undefined || value === null || Number.isNaN(value)) continue;
    if (value >= threshold) return name;
  }
  return null;
}

export interface GuardedAllocation {
  /** `routed[i]`: segment i goes to the large model. */
  routed: boolean[];
  /** ⌊p·N⌋ (or the caller's target), what the budget allows. */
  target: number;
  /** Segments routed; below `target` only when too few candidates pass the guards. */
  routedCount: number;
  /**
   * Candidates dropped by a guard while the allocation was being filled: each of them would have
   * been routed without guards (directly or as a refill).
   */
  guarded: number;
  /** Of `guarded`, how many each guard dropped. */
  guardedBy: Record<GuardName, number>;
}

/**
 * Guarded allocation: walks the candidates in gain order and routes the first ⌊p·N⌋ that no guard
 * drops, so a dropped candidate's slot is refilled by the next one. When fewer than ⌊p·N⌋ segments
 * pass, only those are routed and the rest of the budget is left unspent (a guard exists to avoid
 * routing segments the large model is not expected to improve, so spending the budget on them
 * anyway would defeat it).
 *
 * @param order segment indices, best candidate first (e.g. from `routingOrder`); a permutation of 0..N−1.
 * @param signals guard signals per segment; N = its length.
 * @param target how many to route when not ⌊p·N⌋ (a server carrying a fraction of a text between
 *   batches); at most N.
 */
export function allocateGuarded(
  order: readonly number[],
  signals: readonly GuardSignals[],
  thresholds: GuardThresholds,
  budget: number,
  target = routedCount(budget, signals.length),
): GuardedAllocation {
  const segmentCount = signals.length;
  if (order.length !== segmentCount) {
    throw new InputError(`candidate order has ${order.length} entries for ${segmentCount} segments`);
  }
  if (!(Number.isInteger(target) && target >= 0 && target <= segmentCount)) {
    throw new UsageError(`routing target must be an integer in [0, ${segmentCount}], got ${target}`);
  }
  const routed = new Array<boolean>(segmentCount).fill(false);
  const guardedBy: Record<GuardName, number> = { qualityPrediction: 0, riskProbability: 0, smallQeScore: 0 };
  const seen = new Uint8Array(segmentCount);
  let routedSoFar = 0;
  let guarded = 0;
  for (const index of order) {
    if (routedSoFar === target) break;
    if (!(Number.isInteger(index) && index >= 0 && index < segmentCount) || seen[index] === 1) {
      throw new UsageError(`candidate order is not a permutation of the segments (index ${index})`);
    }
    seen[index] = 1;
    const guard = firedGuard(signals[index]!, thresholds);
    if (guard === null) {
      routed[index] = true;
      routedSoFar++;
    } else {
      guarded++;
      guardedBy[guard]++;
    }
  }
  return { routed, target, routedCount: routedSoFar, guarded, guardedBy };
}

/** Ranks segments by score (see `routingOrder`) and allocates under the guards. */
export function allocateBatchGuarded(
  scores: readonly number[],
  ids: readonly string[],
  signals: readonly GuardSignals[],
  thresholds: GuardThresholds,
  budget: number,
): GuardedAllocation {
  return allocateGuarded(routingOrder(scores, ids), signals, thresholds, budget);
}
