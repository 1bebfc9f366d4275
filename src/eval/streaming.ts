import { InputError, UsageError } from "../errors/index.js";
import { BudgetController, type BudgetControllerOptions } from "../routing/budget-controller.js";
import { createRandom, permutation } from "../stats/random.js";
import { checkOutcomes, measureRouting, type RoutingMeasures, type SegmentOutcomes } from "./measures.js";

export interface StreamingOptions {
  /** Policy score per segment, aligned with `outcomes`. */
  scores: readonly number[];
  outcomes: SegmentOutcomes;
  /** Controller settings; the budget is the run's budget. Needs `trainingScores` or `initialThreshold`. */
  controller: BudgetControllerOptions;
  /** Present the segments in a seeded random order (true) or as given (false). Defaults to true. */
  shuffle?: boolean;
  /** Seed of the shuffle, an integer. Defaults to 0. */
  seed?: number;
  /** δ of the severe-loss rate, on the metric's scale. */
  severeLossDelta: number;
}

export interface StreamingResult extends RoutingMeasures {
  /** `routedMask[i]`: segment i (in the outcomes' order) went to the large model. */
  routedMask: boolean[];
  /** Segment indices in the order they were presented. */
  arrivalOrder: number[];
  /** Large decisions the hard cap turned into small ones. */
  capBlocked: number;
  /** Threshold after the last decision. */
  finalThreshold: number;
}

/**
 * Replays the segments one at a time through a {@link BudgetController}, as a server would see
 * them, and measures the outcome. The hit rate compares against the oracle's top-⌊p·N⌋ at the
 * controller's budget; the realized fraction is over the whole run.
 */
export function runStreaming(options: StreamingOptions): StreamingResult {
  const { scores, outcomes } = options;
  checkOutcomes(outcomes);
  if (scores.length !== outcomes.ids.length) {
    throw new InputError(`got ${scores.length} scores for ${outcomes.ids.length} segments`);
  }
  const arrivalOrder =
    (options.shuffle ?? true)
      ? shuffledOrder(scores.length, options.seed ?? 0)
      : Array.from({ length: scores.length }, (_, index) => index);
  const controller = new BudgetController(options.controller);
  const routedMask = new Array<boolean>(scores.length).fill(false);
  for (const index of arrivalOrder) {
    routedMask[index] = controller.decide(scores[index]!).target === "large";
  }
  const snapshot = controller.snapshot();
  return {
    ...measureRouting(routedMask, outcomes, {
      budget: controller.budget,
      severeLossDelta: options.severeLossDelta,
    }),
    routedMask,
    arrivalOrder,
    capBlocked: snapshot.capBlocked,
    finalThreshold: snapshot.threshold,
  };
}

function shuffledOrder(count: number, seed: number): number[] {
  if (!Number.isInteger(seed)) throw new UsageError(`random seed must be an integer, got ${seed}`);
  return Array.from(permutation(count, createRandom(seed)));
}
