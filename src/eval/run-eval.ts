/**
 * The evaluation behind `routelmt eval`: every policy at every budget, in batch (exactly ⌊p·N⌋
 * routed) and in streaming replay (a BudgetController deciding one segment at a time), budget-free
 * ranking measures, and a paired bootstrap of RouteLMT against the best baseline.
 *
 * Measures run in the oriented space of {@link EvalSegments} (gain = large − small, positive = large
 * better); qualities and areas are turned back to the metric's own scale for the summary.
 */
import { UsageError } from "../errors/index.js";
import { checkBudget } from "../routing/batch-allocation.js";
import { spearman } from "../stats/correlation.js";
import { pairedBootstrapMeanDelta } from "./bootstrap.js";
import { type CostBasis, type CostSummary, costSummary } from "./cost-curves.js";
import { apgr, auc, cpt, DEFAULT_BUDGET_GRID, type QualityBudgetCurve } from "./curves.js";
import { gainsOf, measureRouting, type RoutingMeasures } from "./measures.js";
import type { EvalPolicy, EvalSegments, PolicyFamily, SkippedPolicy } from "./policies.js";
import type { RouterFindings } from "./router-findings.js";
import { runStreaming } from "./streaming.js";

/** Budgets the report's tables and the bootstrap look at, when they are in the grid. */
export const REPORTED_BUDGETS: readonly number[] = [0.1, 0.2, 0.3, 0.5];
/** Seed used when `ROUTELMT_SEED` is not set. */
export const DEFAULT_EVAL_SEED = 12345;
/** Bootstrap resamples of the confidence intervals. */
export const DEFAULT_BOOTSTRAP_RESAMPLES = 1000;
/** PGR targets of the call-performance thresholds, in percent. */
export const CPT_TARGETS = ["20", "50", "80"] as const;

const SAME_BUDGET = 1e-9;

export interface EvalOptions {
  /** Budget grid; defaults to 0, 0.05, …, 1. Sorted and deduplicated. */
  budgets?: readonly number[];
  /** δ of the severe-loss rate (g < −δ), on the label metric's scale. */
  severeDelta: number;
  /** Seed of the streaming shuffle and the bootstrap. */
  seed: number;
  /** Bootstrap resamples; defaults to 1000. */
  bootstrapResamples?: number;
  /** Sliding window of the streaming controller; defaults to the controller's (1000). */
  streamingWindow?: number;
  /** Name of the label metric, copied into the summary. */
  labelMetric: string;
  /** Policies skipped while building the set, and other notes, copied into the summary. */
  skipped?: readonly SkippedPolicy[];
  notes?: readonly string[];
  /** Also draw quality against realized cost in this unit, with each segment's weight in it. */
  costs?: { basis: CostBasis; weights: Float64Array };
}

/** Streaming replay at one budget. */
export interface StreamingPoint {
  realized: number;
  quality: number;
  mean_delta: number | null;
  hit_rate: number | null;
  severe_loss: number | null;
  regressions: number;
  /** Large decisions the controller's hard cap turned small. */
  cap_blocked: number;
}

/** One budget of a policy's curve (batch allocation), plus its streaming replay when the policy has scores. */
export interface CurveEntry {
  budget: number;
  /** Mean hybrid quality on the label metric's scale. */
  quality: number;
  /** Share routed to the large model. */
  realized: number;
  /** MeanDelta@p: mean true gain of the routed segments (null when none is routed). */
  mean_delta: number | null;
  /** HitRate@p: share of the routed segments among the true top-⌊p·N⌋ by gain. */
  hit_rate: number | null;
  /** Share of routed segments with gain < −δ. */
  severe_loss: number | null;
  /** Routed segments the large model made worse (averaged over seeds for random). */
  regressions: number;
  /** Segments routed. */
  routed: number;
  /** Candidates vetoed by a guard while filling the budget. */
  guarded: number;
  streaming: StreamingPoint | null;
}

export interface PolicySummary {
  family: PolicyFamily;
  description: string;
  cost: string | null;
  /** Realizations averaged (20 for random). */
  realizations: number;
  /** Spearman correlation of the policy's score with the true gain; null for guarded allocations. */
  spearman: number | null;
  /** Area under the quality–budget curve (trapezoid over the routed share, default grid), metric scale. */
  auc: number;
  /** Average performance-gap recovered (RouteLLM's APGR) over the default grid. */
  apgr: number | null;
  /** Routed share needed to recover 20/50/80 % of the small→large gap (null when never reached). */
  cpt: Record<(typeof CPT_TARGETS)[number], number | null>;
  curve: CurveEntry[];
}

/** RouteLMT's MeanDelta@p minus the best baseline's, with a paired-bootstrap 95 % interval. */
export interface ConfidenceInterval {
  /** The best baseline at this budget: highest MeanDelta among router-free, non-oracle policies. */
  vs: string;
  diff: number;
  lo: number;
  hi: number;
  routelmt_mean_delta: number;
  baseline_mean_delta: number;
  resamples: number;
  /**
   * For an averaged baseline (random): the number of seeds; diff, lo and hi are then means over
   * the per-seed bootstraps (the bounds are conservative for the seed average).
   */
  baseline_seeds_averaged?: number;
}

/** summary.json. Field names are read by other tooling: add, never rename. */
export interface EvalSummary {
  n: number;
  label_metric: string;
  label_higher_is_better: boolean;
  small_only: number;
  large_only: number;
  budgets: number[];
  policies: Record<string, PolicySummary>;
  ci: Record<string, ConfidenceInterval>;
  /**
   * RouteLMT against every ranking it should beat (each baseline and RouteLMT-Q), by budget then
   * policy; `ci` is the entry of the best baseline.
   */
  ci_by_policy: Record<string, Record<string, ConfidenceInterval>>;
  severe_delta: number;
  seed: number;
  bootstrap_resamples: number;
  /** Budgets of the report tables (those of 0.1, 0.2, 0.3, 0.5 in the grid). */
  reported_budgets: number[];
  /** Segments without a label, left out. */
  unlabelled: number;
  skipped: SkippedPolicy[];
  notes: string[];
  /** How the router was trained (blocks, selection, learning curve) and its guard's held-out trade-off; absent without a router. */
  router?: RouterFindings;
  /** Quality against realized tokens or cost (`--budget-unit`); absent otherwise. */
  cost?: CostSummary;
}

/** Parses `--budgets 0,0.1,0.3`: fractions in [0, 1], sorted and deduplicated. */
export function parseBudgets(text: string): number[] {
  const parts = text
    .split(",")
    .map((part) => part.trim())
    .filter((part) => part !== "");
  if (parts.length === 0) throw new UsageError("--budgets lists no budget");
  return normalizeBudgets(
    parts.map((part) => {
      const value = Number(part);
      if (!Number.isFinite(value) || !(value >= 0 && value <= 1)) {
        throw new UsageError(`--budgets: ${JSON.stringify(part)} is not a fraction in [0, 1]`);
      }
      return value;
    }),
  );
}

function normalizeBudgets(budgets: readonly number[]): number[] {
  for (const budget of budgets) checkBudget(budget);
  const sorted = [...budgets].sort((a, b) => a - b);
  return sorted.filter((budget, index) => index === 0 || budget - sorted[index - 1]! > SAME_BUDGET);
}

/** The seed from `ROUTELMT_SEED`, else {@link DEFAULT_EVAL_SEED}. */
export function seedFromEnvironment(environment: NodeJS.ProcessEnv = process.env): number {
  const text = environment.ROUTELMT_SEED;
  if (text === undefined || text.trim() === "") return DEFAULT_EVAL_SEED;
  const seed = Number(text);
  if (!Number.isInteger(seed))
    throw new UsageError(`ROUTELMT_SEED must be an integer, got ${JSON.stringify(text)}`);
  return seed;
}

function findBudget(grid: readonly number[], budget: number): number | undefined {
  return grid.find((candidate) => Math.abs(candidate - budget) <= SAME_BUDGET);
}

/** Mean of the non-null values; null when all are null. */
function meanOfKnown(values: readonly (number | null)[]): number | null {
  const known = values.filter((value): value is number => value !== null);
  return known.length === 0 ? null : meanOf(known);
}

/** Plain mean, exact when every value is the same (seeds that agree do not pick up rounding noise). */
function meanOf(values: readonly number[]): number {
  const first = values[0]!;
  if (values.every((value) => value === first)) return first;
  return values.reduce((sum, value) => sum + value, 0) / values.length;
}

/** Spearman of score and gain over the segments with a finite score; null when undefined. */
export function scoreGainSpearman(scores: ArrayLike<number>, gains: readonly number[]): number | null {
  const keptScores: number[] = [];
  const keptGains: number[] = [];
  for (let index = 0; index < gains.length; index++) {
    if (Number.isFinite(scores[index]!)) {
      keptScores.push(scores[index]!);
      keptGains.push(gains[index]!);
    }
  }
  const value = spearman(keptScores, keptGains);
  return Number.isFinite(value) ? value : null;
}

interface BatchPoint {
  measures: RoutingMeasures;
  guarded: number;
}

/** Batch measures of every realization at one budget, averaged. */
function averageBatch(
  points: readonly BatchPoint[],
  orientation: number,
  budget: number,
): Omit<CurveEntry, "streaming"> {
  return {
    budget,
    quality: orientation * meanOf(points.map((point) => point.measures.hybridQuality)),
    realized: meanOf(points.map((point) => point.measures.realizedFraction)),
    mean_delta: meanOfKnown(points.map((point) => point.measures.meanDelta)),
    hit_rate: meanOfKnown(points.map((point) => point.measures.hitRate)),
    severe_loss: meanOfKnown(points.map((point) => point.measures.severeLossRate)),
    regressions: meanOf(points.map((point) => point.measures.regressions)),
    routed: meanOf(points.map((point) => point.measures.routed)),
    guarded: meanOf(points.map((point) => point.guarded)),
  };
}

function evaluatePolicy(
  policy: EvalPolicy,
  segments: EvalSegments,
  budgets: readonly number[],
  options: EvalOptions,
): PolicySummary {
  const { outcomes, orientation } = segments;
  const gains = gainsOf(outcomes);
  const count = outcomes.ids.length;
  // Budget-free measures always use the default grid, so they compare across runs whatever --budgets says.
  const evaluated = normalizeBudgets([...budgets, ...DEFAULT_BUDGET_GRID]);
  const batch = new Map<number, Omit<CurveEntry, "streaming">>();
  for (const budget of evaluated) {
    const points = policy.realizations.map((realization) => {
      const allocation = realization.allocate(budget);
      return {
        measures: measureRouting(allocation.routed, outcomes, {
          budget,
          severeLossDelta: options.severeDelta,
        }),
        guarded: allocation.guarded,
      };
    });
    batch.set(budget, averageBatch(points, orientation, budget));
  }

  const freeGrid = DEFAULT_BUDGET_GRID.map((budget) => findBudget(evaluated, budget)!);
  const orientedCurve: QualityBudgetCurve = {
    points: freeGrid.map((budget) => ({
      budget,
      // The x axis is the share the budget allows, also for guarded policies that leave some unspent.
      routedFraction: Math.floor(budget * count + SAME_BUDGET) / count,
      quality: orientation * batch.get(budget)!.quality,
    })),
    qualitySmallOnly: meanOf(outcomes.qualitySmall),
    qualityLargeOnly: meanOf(outcomes.qualityLarge),
  };

  const scored = policy.realizations.filter((realization) => realization.scores !== null);
  const curve: CurveEntry[] = budgets.map((budget) => {
    const key = findBudget(evaluated, budget)!;
    let streaming: StreamingPoint | null = null;
    if (scored.length > 0) {
      const runs = scored.map((realization) =>
        runStreaming({
          scores: Array.from(realization.scores!),
          outcomes,
          controller: {
            budget,
            trainingScores: policy.streamingStartScores ?? Array.from(realization.scores!),
            ...(options.streamingWindow !== undefined ? { window: options.streamingWindow } : {}),
          },
          seed: options.seed,
          severeLossDelta: options.severeDelta,
        }),
      );
      streaming = {
        realized: meanOf(runs.map((run) => run.realizedFraction)),
        quality: orientation * meanOf(runs.map((run) => run.hybridQuality)),
        mean_delta: meanOfKnown(runs.map((run) => run.meanDelta)),
        hit_rate: meanOfKnown(runs.map((run) => run.hitRate)),
        severe_loss: meanOfKnown(runs.map((run) => run.severeLossRate)),
        regressions: meanOf(runs.map((run) => run.regressions)),
        cap_blocked: meanOf(runs.map((run) => run.capBlocked)),
      };
    }
    return { ...batch.get(key)!, budget, streaming };
  });

  const correlations = scored.map((realization) => scoreGainSpearman(realization.scores!, gains));
  const areaOriented = auc(orientedCurve);
  return {
    family: policy.family,
    description: policy.description,
    cost: policy.cost,
    realizations: policy.realizations.length,
    spearman: meanOfKnown(correlations),
    auc: orientation * areaOriented,
    apgr: apgr(orientedCurve),
    cpt: {
      "20": cpt(orientedCurve, 0.2),
      "50": cpt(orientedCurve, 0.5),
      "80": cpt(orientedCurve, 0.8),
    },
    curve,
  };
}

/** The best baseline at one budget: highest MeanDelta among router-free, non-oracle policies. */
export function bestBaseline(
  policies: readonly EvalPolicy[],
  summaries: Record<string, PolicySummary>,
  budget: number,
): { policy: EvalPolicy; meanDelta: number } | null {
  let best: { policy: EvalPolicy; meanDelta: number } | null = null;
  for (const policy of policies) {
    if (policy.family !== "baseline") continue;
    const entry = summaries[policy.name]?.curve.find(
      (point) => Math.abs(point.budget - budget) <= SAME_BUDGET,
    );
    const meanDelta = entry?.mean_delta ?? null;
    if (meanDelta === null) continue;
    if (best === null || meanDelta > best.meanDelta) best = { policy, meanDelta };
  }
  return best;
}

/**
 * RouteLMT's MeanDelta@p minus `policy`'s with a paired-bootstrap 95 % interval. An averaged policy
 * (random) is compared seed by seed; the mean difference then equals the table's, and the mean of
 * the per-seed bounds is a conservative interval for it.
 */
function routerInterval(
  routerScores: ArrayLike<number>,
  routerMeanDelta: number,
  policy: EvalPolicy,
  meanDelta: number,
  bootstrap: { outcomes: EvalSegments["outcomes"]; budget: number; resamples: number; seed: number },
): ConfidenceInterval {
  const intervals = policy.realizations.map((realization) =>
    pairedBootstrapMeanDelta({
      scoresA: Array.from(routerScores),
      scoresB: Array.from(realization.scores!),
      ...bootstrap,
    }),
  );
  return {
    vs: policy.name,
    diff: meanOf(intervals.map((interval) => interval.diff)),
    lo: meanOf(intervals.map((interval) => interval.lo)),
    hi: meanOf(intervals.map((interval) => interval.hi)),
    routelmt_mean_delta: routerMeanDelta,
    baseline_mean_delta: meanDelta,
    resamples: bootstrap.resamples,
    ...(intervals.length > 1 ? { baseline_seeds_averaged: intervals.length } : {}),
  };
}

/** Runs the whole evaluation; deterministic for a seed. */
export function runEval(
  segments: EvalSegments,
  policies: readonly EvalPolicy[],
  options: EvalOptions,
): EvalSummary {
  if (!(Number.isFinite(options.severeDelta) && options.severeDelta >= 0)) {
    throw new UsageError(`--severe-delta must be a non-negative number, got ${options.severeDelta}`);
  }
  const names = new Set<string>();
  for (const policy of policies) {
    if (names.has(policy.name)) throw new UsageError(`policy ${policy.name} is listed twice`);
    names.add(policy.name);
  }
  const budgets = normalizeBudgets(options.budgets ?? DEFAULT_BUDGET_GRID);
  const resamples = options.bootstrapResamples ?? DEFAULT_BOOTSTRAP_RESAMPLES;
  const { outcomes, orientation } = segments;
  const count = outcomes.ids.length;

  const summaries: Record<string, PolicySummary> = {};
  for (const policy of policies) summaries[policy.name] = evaluatePolicy(policy, segments, budgets, options);

  const reported = REPORTED_BUDGETS.map((budget) => findBudget(budgets, budget)).filter(
    (budget): budget is number => budget !== undefined,
  );
  const notes = [...(options.notes ?? [])];
  const ci: Record<string, ConfidenceInterval> = {};
  const ciByPolicy: Record<string, Record<string, ConfidenceInterval>> = {};
  const router = policies.find((policy) => policy.name === "routelmt");
  const routerScores = router?.realizations[0]?.scores;
  // Every ranking RouteLMT should beat: the baselines and the in-model quality router (RouteLMT-Q).
  const rivals = policies.filter(
    (policy) =>
      (policy.family === "baseline" || policy.name === "routelmt-q") &&
      policy.realizations.every((realization) => realization.scores !== null),
  );
  for (const budget of reported) {
    if (!router || !routerScores) break;
    const routerEntry = summaries.routelmt!.curve.find((point) => point.budget === budget)!;
    const routerMeanDelta = routerEntry.mean_delta;
    if (routerMeanDelta === null) continue;
    const each: Record<string, ConfidenceInterval> = {};
    for (const rival of rivals) {
      const meanDelta = summaries[rival.name]?.curve.find((point) => point.budget === budget)?.mean_delta;
      if (meanDelta === null || meanDelta === undefined) continue;
      each[rival.name] = routerInterval(routerScores, routerMeanDelta, rival, meanDelta, {
        outcomes,
        budget,
        resamples,
        seed: options.seed,
      });
    }
    if (Object.keys(each).length > 0) ciByPolicy[String(budget)] = each;
    const best = bestBaseline(policies, summaries, budget);
    if (best === null) continue;
    if (best.policy.realizations.some((realization) => realization.scores === null)) {
      notes.push(
        `no confidence interval at p = ${budget}: the best baseline ${best.policy.name} is not a ranking`,
      );
      continue;
    }
    // A baseline that ranks is one of the rivals: its interval is already there.
    ci[String(budget)] = each[best.policy.name]!;
  }

  return {
    n: count,
    label_metric: options.labelMetric,
    label_higher_is_better: orientation === 1,
    small_only: orientation * meanOf(outcomes.qualitySmall),
    large_only: orientation * meanOf(outcomes.qualityLarge),
    budgets,
    policies: summaries,
    ci,
    ci_by_policy: ciByPolicy,
    severe_delta: options.severeDelta,
    seed: options.seed,
    bootstrap_resamples: resamples,
    reported_budgets: reported,
    unlabelled: segments.unlabelled,
    skipped: [...(options.skipped ?? [])],
    notes,
    ...(options.costs
      ? {
          cost: costSummary(
            policies,
            outcomes,
            options.costs.weights,
            options.costs.basis,
            budgets,
            orientation,
          ),
        }
      : {}),
  };
}
