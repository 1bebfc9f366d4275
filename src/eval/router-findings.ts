/**
 * What the evaluation reports about the router beyond its policies: how its feature blocks and
 * probe were chosen and whether more labels would help (both from training, copied from
 * ROUTER.json), and the guard's trade-off — severe-loss rate against MeanDelta over the λ grid —
 * measured on the evaluated data.
 */

import { restackScore } from "../probe/gain-restack.js";
import { type GuardKind, type GuardReport, type QeSignal, riskAdjustedScore } from "../probe/guard-choice.js";
import type { HeadScores, RouterFile } from "../probe/router-file.js";
import { posthocObservationOf, qeSignalOf, qeSignalValue, routerBlocks } from "../probe/router-file.js";
import { measureRouting } from "./measures.js";
import { type EvalSegments, rankingRealization } from "./policies.js";

/** The guard's trade-off at one λ, on the evaluated data (batch allocation, as the tables). */
export interface GuardTradeoffPoint {
  lambda: number;
  /** Per budget of `budgets`. */
  mean_delta: (number | null)[];
  severe_loss: (number | null)[];
}

export interface GuardTradeoff {
  /** λ the router routes with. */
  chosen_lambda: number;
  /** MeanDelta share the guard was allowed to cost in training. */
  tolerance: number;
  /** δ of the risk head the guard penalises (the severe loss here is eval's δ). */
  risk_delta: number;
  budgets: number[];
  /** Held-out trade-off over the router's λ grid, λ ascending (the first is λ = 0, RouteLMT). */
  points: GuardTradeoffPoint[];
  /** The cross-validated trade-off train saw over the same grid. */
  cross_validated: GuardTradeoffPoint[];
  /** The post-hoc guard's signal (`guard_qe` only). */
  signal?: QeSignal;
  /** A post-hoc guard on the re-estimated gain: the re-estimate's inputs (then λ = 0 is the re-estimate, not RouteLMT). */
  restack_inputs?: string[];
}

/** How the router was trained, as the report reads it. */
export interface RouterFindings {
  /** Feature blocks the router reads. */
  blocks: string[];
  selection: {
    rule: string;
    candidates: number;
    chosen: { blocks: string[]; probe: string; score: number; score_se: number };
    default: { score: number; score_se: number } | null;
    versus_default: { diff: number; se: number } | null;
    /** The selection's bias-corrected out-of-sample score (absent in routers trained before it). */
    estimate: {
      score: number;
      lo: number;
      hi: number;
      versus_default: { diff: number; lo: number; hi: number } | null;
    } | null;
    budgets: number[];
    seconds: number;
  } | null;
  learning_curve: {
    verdict: string;
    reading: string;
    points: { share: number; rows: number; mean_delta: number; lo: number; hi: number }[];
  } | null;
  guard: GuardTradeoff | null;
  /** The post-hoc guard of guarded-qe (the small model's confidence), when the router has one. */
  guard_qe: GuardTradeoff | null;
  /** The guard the guarded policy ranks by (ROUTER.json `guarded_by`; in-model when absent). */
  guarded_by: GuardKind;
}

/**
 * A guard's trade-off over its λ grid on these segments: `guard`, the risk-adjusted guard of
 * `guarded` (gain − λ · the risk head); `guard_qe`, the post-hoc guard of `guarded-qe` (gain − λ ·
 * its signal: the small model's confidence, or the large model's likelihood of the small
 * translation). Null when the router has no such guard, or a segment lacks the signal.
 */
export function guardTradeoff(
  router: RouterFile,
  heads: HeadScores,
  segments: EvalSegments,
  budgets: readonly number[],
  severeDelta: number,
  which: "guard" | "guard_qe" = "guard",
): GuardTradeoff | null {
  const guard = router[which];
  const gain = heads.gain;
  const qeSignal = qeSignalOf(router);
  const signal =
    which === "guard"
      ? heads.risk
      : qeSignal === null
        ? undefined
        : Float64Array.from(segments.records, (record) => qeSignalValue(record, qeSignal) ?? Number.NaN);
  if (!guard || !gain || !signal?.every(Number.isFinite)) return null;
  // A post-hoc guard on the re-estimated gain trades against that, not the gain head's prediction.
  const restack = which === "guard_qe" ? guard.restack : undefined;
  const base = restack
    ? Float64Array.from(
        segments.records,
        (record, row) => restackScore(restack, posthocObservationOf(record, gain[row]!)) ?? Number.NaN,
      )
    : gain;
  if (!base.every(Number.isFinite)) return null;
  const tradeoff = tradeoffOver(guard, base, signal, segments, budgets, severeDelta);
  if (!tradeoff || which !== "guard_qe" || qeSignal === null) return tradeoff;
  return { ...tradeoff, signal: qeSignal, ...(restack ? { restack_inputs: [...restack.inputs] } : {}) };
}

function tradeoffOver(
  guard: GuardReport,
  gain: Float64Array,
  signal: Float64Array,
  segments: EvalSegments,
  budgets: readonly number[],
  severeDelta: number,
): GuardTradeoff | null {
  if (budgets.length === 0) return null;
  const { ids } = segments.outcomes;
  const points = guard.grid.map((point) => {
    const scores = Float64Array.from(gain, (value, row) =>
      riskAdjustedScore(value, signal[row]!, point.lambda),
    );
    const realization = rankingRealization(scores, ids);
    const measures = budgets.map((budget) =>
      measureRouting(realization.allocate(budget).routed, segments.outcomes, {
        budget,
        severeLossDelta: severeDelta,
      }),
    );
    return {
      lambda: point.lambda,
      mean_delta: measures.map((measure) => measure.meanDelta),
      severe_loss: measures.map((measure) => measure.severeLossRate),
    };
  });
  const cvColumns = budgets.map((budget) =>
    guard.budgets.findIndex((known) => Math.abs(known - budget) < 1e-9),
  );
  return {
    chosen_lambda: guard.lambda,
    tolerance: guard.tolerance,
    risk_delta: guard.severe_delta,
    budgets: [...budgets],
    points,
    cross_validated: guard.grid.map((point) => ({
      lambda: point.lambda,
      mean_delta: cvColumns.map((column) => (column < 0 ? null : (point.mean_delta[column] ?? null))),
      severe_loss: cvColumns.map((column) => (column < 0 ? null : (point.severe_loss[column] ?? null))),
    })),
  };
}

/** The findings of a router on the evaluated segments. */
export function routerFindings(
  router: RouterFile,
  heads: HeadScores | null,
  segments: EvalSegments,
  budgets: readonly number[],
  severeDelta: number,
): RouterFindings {
  const selection = router.selection;
  const chosen = selection?.candidates[selection.chosen];
  const fallback = selection?.default;
  const defaultCandidate =
    fallback === null || fallback === undefined ? undefined : selection?.candidates[fallback];
  const curve = router.learning_curve;
  return {
    blocks: routerBlocks(router),
    selection:
      selection && chosen
        ? {
            rule: selection.rule,
            candidates: selection.candidates.length,
            chosen: {
              blocks: chosen.blocks,
              probe: chosen.probe,
              score: chosen.score,
              score_se: chosen.score_se,
            },
            default: defaultCandidate
              ? { score: defaultCandidate.score, score_se: defaultCandidate.score_se }
              : null,
            versus_default: selection.versus_default,
            estimate: selection.estimate
              ? {
                  score: selection.estimate.score,
                  lo: selection.estimate.lo,
                  hi: selection.estimate.hi,
                  versus_default: selection.estimate.versus_default,
                }
              : null,
            budgets: selection.budgets,
            seconds: selection.seconds,
          }
        : null,
    learning_curve: curve ? { verdict: curve.verdict, reading: curve.reading, points: curve.points } : null,
    guard: heads ? guardTradeoff(router, heads, segments, budgets, severeDelta) : null,
    guard_qe: heads ? guardTradeoff(router, heads, segments, budgets, severeDelta, "guard_qe") : null,
    guarded_by: router.guarded_by ?? "in-model",
  };
}
