import { InputError, UsageError } from "../errors/index.js";
import { routedCount, routingOrder } from "../routing/batch-allocation.js";
import { quantile, sortScores } from "../stats/quantiles.js";
import { createRandom, randomInt } from "../stats/random.js";
import { checkOutcomes, gainsOf, type SegmentOutcomes } from "./measures.js";

export interface PairedBootstrapOptions {
  /** Policy A's score per segment (higher routes first). */
  scoresA: readonly number[];
  /** Policy B's score per segment. */
  scoresB: readonly number[];
  /** Segment outcomes; ids must be unique. */
  outcomes: SegmentOutcomes;
  /** Budget p at which MeanDelta is compared; ⌊p·N⌋ must be at least 1. */
  budget: number;
  /** Bootstrap resamples. Defaults to 1000. */
  resamples?: number;
  /** Seed of the resampling, an integer. Defaults to 0. */
  seed?: number;
  /** Two-sided confidence level. Defaults to 0.95. */
  confidence?: number;
}

/** MeanDelta@p of A minus that of B on the full data, with a percentile bootstrap interval. */
export interface BootstrapInterval {
  diff: number;
  lo: number;
  hi: number;
}

/**
 * MeanDelta of batch allocation on a multiset of segments given as copies per rank: walking the
 * ranks best first and taking copies until `routed` are taken is exactly what sorting the resample
 * and taking its top ⌊p·N⌋ does, because copies of one segment are interchangeable and distinct
 * segments keep their relative order (score, then unique id).
 */
function meanDeltaFromRankCounts(copiesAtRank: Int32Array, gainAtRank: Float64Array, routed: number): number {
  let remaining = routed;
  let total = 0;
  for (let rank = 0; remaining > 0; rank++) {
    const taken = Math.min(copiesAtRank[rank]!, remaining);
    total += taken * gainAtRank[rank]!;
    remaining -= taken;
  }
  return total / routed;
}

/**
 * Paired bootstrap of the MeanDelta@p difference between two policies: each resample draws N
 * segment indices with replacement (scores travel with their segments), re-runs batch allocation
 * of both policies on it and takes MeanDelta(A) − MeanDelta(B); the interval is the percentile
 * interval of those differences (quantiles by linear interpolation). Deterministic for a seed.
 */
export function pairedBootstrapMeanDelta(options: PairedBootstrapOptions): BootstrapInterval {
  const { outcomes, budget } = options;
  const resamples = options.resamples ?? 1000;
  const confidence = options.confidence ?? 0.95;
  checkOutcomes(outcomes);
  if (!(Number.isInteger(resamples) && resamples >= 1)) {
    throw new UsageError(`bootstrap resamples must be a positive integer, got ${resamples}`);
  }
  if (!(confidence > 0 && confidence < 1)) {
    throw new UsageError(`confidence must be in (0, 1), got ${confidence}`);
  }
  const segmentCount = outcomes.ids.length;
  if (new Set(outcomes.ids).size !== segmentCount) {
    throw new InputError("segment ids must be unique for the paired bootstrap");
  }
  const routed = routedCount(budget, segmentCount);
  if (routed === 0) {
    throw new UsageError(`budget ${budget} routes no segment of ${segmentCount}: MeanDelta is undefined`);
  }
  const gains = gainsOf(outcomes);
  const policies = [options.scoresA, options.scoresB].map((scores) => {
    const order = routingOrder(scores, outcomes.ids);
    const rankOf = new Int32Array(segmentCount);
    const gainAtRank = new Float64Array(segmentCount);
    order.forEach((index, rank) => {
      rankOf[index] = rank;
      gainAtRank[rank] = gains[index]!;
    });
    return { rankOf, gainAtRank, copiesAtRank: new Int32Array(segmentCount) };
  });
  const [policyA, policyB] = policies as [(typeof policies)[0], (typeof policies)[0]];

  const meanDeltaOnce = (policy: typeof policyA) =>
    meanDeltaFromRankCounts(new Int32Array(segmentCount).fill(1), policy.gainAtRank, routed);
  const diff = meanDeltaOnce(policyA) - meanDeltaOnce(policyB);

  const seed = options.seed ?? 0;
  if (!Number.isInteger(seed)) throw new UsageError(`random seed must be an integer, got ${seed}`);
  const random = createRandom(seed);
  const differences = new Float64Array(resamples);
  for (let resample = 0; resample < resamples; resample++) {
    policyA.copiesAtRank.fill(0);
    policyB.copiesAtRank.fill(0);
    for (let draw = 0; draw < segmentCount; draw++) {
      const index = randomInt(random, segmentCount);
      policyA.copiesAtRank[policyA.rankOf[index]!]!++;
      policyB.copiesAtRank[policyB.rankOf[index]!]!++;
    }
    differences[resample] =
      meanDeltaFromRankCounts(policyA.copiesAtRank, policyA.gainAtRank, routed) -
      meanDeltaFromRankCounts(policyB.copiesAtRank, policyB.gainAtRank, routed);
  }
  const sorted = sortScores(differences);
  const tail = (1 - confidence) / 2;
  return { diff, lo: quantile(sorted, tail), hi: quantile(sorted, 1 - tail) };
}
