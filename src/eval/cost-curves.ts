/**
 * Quality against realized cost: the batch curves of `eval` with the budget counted in the large
 * model's tokens or bill instead of segments, the same units as `serve --budget-unit tokens|cost`.
 *
 * A segment weighs what the large model reported for it (collect keeps its prompt and output token
 * counts): `tokens` = prompt + output; `cost` = (prompt × input price + output × output price) /
 * 1000. At budget p a policy routes its highest-scored segments, in its order, as long as their
 * weight stays within p of the weight of all segments — what sending everything to the large model
 * would process, or cost. The curve's x axis is the realized share.
 * @module
 */
import type { DatasetRecord } from "../dataset/index.js";
import { UsageError } from "../errors/index.js";
import { routingOrder } from "../routing/batch-allocation.js";
import type { SegmentOutcomes } from "./measures.js";
import type { EvalPolicy } from "./policies.js";

export const costUnits = ["tokens", "cost"] as const;
export type CostUnit = (typeof costUnits)[number];

/** The unit, and for `cost` the large model's prices per 1000 input and output tokens. */
export interface CostBasis {
  unit: CostUnit;
  prices?: { input: number; output: number };
}

/** One budget of a policy's cost curve (averaged over realizations for random). */
export interface CostCurvePoint {
  /** The budget p, a share of the all-large weight. */
  budget: number;
  /** Share of the all-large weight actually routed. */
  realized_cost: number;
  /** Share of the segments routed. */
  realized_segments: number;
  /** Mean hybrid quality, on the label metric's scale. */
  quality: number;
}

/** summary.json's `cost`: present when eval ran with a budget unit. */
export interface CostSummary {
  unit: CostUnit;
  prices: { input: number; output: number } | null;
  /** Weight of routing every segment to the large model (tokens, or the bill). */
  all_large: number;
  policies: Record<string, CostCurvePoint[]>;
  /** Policies without a ranking (guarded allocations) have no cost curve. */
  skipped: string[];
}

/**
 * Each record's weight in the unit.
 * @throws UsageError when a record lacks the large model's token counts (import data, or a
 *   dataset collected before they were kept).
 */
export function segmentWeights(records: readonly DatasetRecord[], basis: CostBasis): Float64Array {
  if (basis.unit === "cost" && basis.prices === undefined) {
    throw new UsageError(
      "--budget-unit cost needs the large model's prices: --large-input-price and --large-output-price",
    );
  }
  const missing = records.filter(
    (record) =>
      typeof record.large_prompt_tokens !== "number" || typeof record.large_output_tokens !== "number",
  ).length;
  if (missing > 0) {
    throw new UsageError(
      `--budget-unit ${basis.unit} needs the large model's token counts (large_prompt_tokens, large_output_tokens in records.jsonl), which ${missing} of ${records.length} segments lack: collect the data again with this version of routelmt`,
    );
  }
  return Float64Array.from(records, (record) => {
    const input = record.large_prompt_tokens as number;
    const output = record.large_output_tokens as number;
    if (basis.unit === "tokens") return input + output;
    const prices = basis.prices!;
    return (input * prices.input + output * prices.output) / 1000;
  });
}

/** One ranking's cost curve: prefixes of the routing order whose weight fits p of the total. */
export function qualityCostCurve(
  scores: ArrayLike<number>,
  outcomes: SegmentOutcomes,
  weights: ArrayLike<number>,
  budgets: readonly number[],
  orientation: 1 | -1,
): CostCurvePoint[] {
  const count = outcomes.ids.length;
  const order = routingOrder(Array.from(scores), outcomes.ids);
  const prefixWeight = new Float64Array(count + 1);
  const prefixGain = new Float64Array(count + 1);
  order.forEach((index, rank) => {
    prefixWeight[rank + 1] = prefixWeight[rank]! + weights[index]!;
    prefixGain[rank + 1] = prefixGain[rank]! + outcomes.qualityLarge[index]! - outcomes.qualitySmall[index]!;
  });
  const total = prefixWeight[count]!;
  const smallTotal = outcomes.qualitySmall.reduce((sum, quality) => sum + quality, 0);
  let routed = 0;
  return [...budgets]
    .sort((a, b) => a - b)
    .map((budget) => {
      // Relative slack: p × total is inexact in binary, and p = 1 must route everything.
      while (routed < count && prefixWeight[routed + 1]! <= budget * total * (1 + 1e-12)) routed++;
      return {
        budget,
        realized_cost: total === 0 ? 0 : prefixWeight[routed]! / total,
        realized_segments: routed / count,
        quality: (orientation * (smallTotal + prefixGain[routed]!)) / count,
      };
    });
}

/** Cost curves of every policy that ranks segments (averaged over a policy's realizations). */
export function costSummary(
  policies: readonly EvalPolicy[],
  outcomes: SegmentOutcomes,
  weights: Float64Array,
  basis: CostBasis,
  budgets: readonly number[],
  orientation: 1 | -1,
): CostSummary {
  const curves: Record<string, CostCurvePoint[]> = {};
  const skipped: string[] = [];
  for (const policy of policies) {
    const rankings = policy.realizations.map((realization) => realization.scores);
    if (rankings.some((scores) => scores === null)) {
      skipped.push(policy.name);
      continue;
    }
    const perRealization = rankings.map((scores) =>
      qualityCostCurve(scores!, outcomes, weights, budgets, orientation),
    );
    curves[policy.name] = perRealization[0]!.map((point, index) => {
      const mean = (field: keyof CostCurvePoint) =>
        perRealization.reduce((sum, curve) => sum + curve[index]![field], 0) / perRealization.length;
      return {
        budget: point.budget,
        realized_cost: mean("realized_cost"),
        realized_segments: mean("realized_segments"),
        quality: mean("quality"),
      };
    });
  }
  return {
    unit: basis.unit,
    prices: basis.prices ?? null,
    all_large: weights.reduce((sum, weight) => sum + weight, 0),
    policies: curves,
    skipped,
  };
}
