/**
 * The guard's trade-off plot: for each reported budget, the severe-loss rate (x) against MeanDelta
 * (y) of the risk-adjusted ranking gain − λ·risk as λ grows over the router's grid, on the evaluated
 * data. λ = 0 is RouteLMT (square), the λ the router routes with is ringed, Random is a cross: a
 * guard that guards moves left without dropping far.
 */
import type { TopLevelSpec } from "vega-lite";
import type { EvalSummary } from "../run-eval.js";
import { entryAt } from "./budget-table.js";
import { formatBudget, formatNumber } from "./format.js";
import { CHART_CONFIG } from "./pareto-chart.js";

/** A threshold as people write it (10, not 10.00). */
function plain(value: number): string {
  return String(Number(value.toPrecision(4)));
}

const BUDGET_COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"];

/**
 * The Vega-Lite spec, or null when the summary holds no such trade-off: `guard` is the in-model
 * guard of `guarded` (the risk head), `guard_qe` the post-hoc guard of `guarded-qe` (its signal of
 * the decoded small translation; on the re-estimated gain, RouteLMT is drawn as a diamond apart).
 */
export function guardTradeoffSpec(
  summary: EvalSummary,
  which: "guard" | "guard_qe" = "guard",
): TopLevelSpec | null {
  const tradeoff = summary.router?.[which];
  if (!tradeoff || tradeoff.points.length === 0) return null;
  const budgets = tradeoff.budgets.map(formatBudget);
  // On the re-estimated gain, λ = 0 is the re-estimate; RouteLMT itself is then drawn apart.
  const restacked = which === "guard_qe" && tradeoff.restack_inputs !== undefined;
  const baseRole = restacked ? "λ = 0 (re-estimate)" : "λ = 0 (RouteLMT)";
  const line = tradeoff.points.flatMap((point, order) =>
    tradeoff.budgets.flatMap((_, column) => {
      const meanDelta = point.mean_delta[column];
      const severe = point.severe_loss[column];
      if (meanDelta === null || meanDelta === undefined || severe === null || severe === undefined) return [];
      return [
        {
          budget: budgets[column],
          order,
          lambda: formatNumber(point.lambda),
          severe,
          meanDelta,
          role:
            point.lambda === 0 ? baseRole : point.lambda === tradeoff.chosen_lambda ? "chosen λ" : "other λ",
        },
      ];
    }),
  );
  const policyPoints = (name: string) => {
    const policy = summary.policies[name];
    if (!policy) return [];
    return tradeoff.budgets.flatMap((budget, column) => {
      const entry = entryAt(policy.curve, budget);
      if (!entry || entry.mean_delta === null || entry.severe_loss === null) return [];
      return [
        { budget: budgets[column], severe: entry.severe_loss, meanDelta: entry.mean_delta, role: name },
      ];
    });
  };
  const randomPoints = policyPoints("random");
  const signalText =
    tradeoff.signal === "large-likelihood"
      ? "the large model's mean token log-probability of the small translation"
      : "the small model's mean token log-probability";
  const colour = {
    field: "budget",
    type: "nominal" as const,
    title: "Budget p",
    sort: budgets,
    scale: {
      domain: budgets,
      range: budgets.map((_, index) => BUDGET_COLOURS[index % BUDGET_COLOURS.length]!),
    },
  };
  const x = {
    field: "severe",
    type: "quantitative" as const,
    title: `Severe-loss rate of the routed segments (gain < −${plain(summary.severe_delta)})`,
    axis: { format: ".1%" },
  };
  const y = {
    field: "meanDelta",
    type: "quantitative" as const,
    title: `MeanDelta (${summary.label_metric})`,
    scale: { zero: false },
  };
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    width: 560,
    height: 340,
    background: "white",
    padding: 12,
    title: {
      text: `${which === "guard" ? "Guard" : "Post-hoc guard (guarded-qe)"} trade-off: severe losses vs MeanDelta over λ`,
      subtitle: [
        `Ranking by ${restacked ? "the re-estimated gain" : "gain"} − λ · ${which === "guard" ? `P(gain < −${plain(tradeoff.risk_delta)})` : signalText}, λ from 0 (square: ${restacked ? "the re-estimate" : "RouteLMT"}) up the router's grid.`,
        `Ring: λ = ${formatNumber(tradeoff.chosen_lambda)}, in use. Cross: random.${restacked ? " Diamond: RouteLMT." : ""}`,
      ],
    },
    config: CHART_CONFIG,
    layer: [
      {
        data: { values: line },
        mark: { type: "line", strokeWidth: 1.5, point: { filled: true, size: 20 } },
        encoding: { x, y, color: colour, order: { field: "order", type: "quantitative" } },
      },
      {
        data: { values: line.filter((point) => point.role === baseRole) },
        mark: { type: "point", shape: "square", filled: true, size: 90 },
        encoding: { x, y, color: colour },
      },
      {
        data: { values: line.filter((point) => point.role === "chosen λ") },
        mark: { type: "point", shape: "circle", filled: false, size: 260, strokeWidth: 2.5 },
        encoding: { x, y, color: colour },
      },
      {
        data: { values: randomPoints },
        mark: { type: "point", shape: "cross", filled: true, size: 110 },
        encoding: { x, y, color: colour },
      },
      ...(restacked
        ? [
            {
              data: { values: policyPoints("routelmt") },
              mark: { type: "point" as const, shape: "diamond", filled: true, size: 110 },
              encoding: { x, y, color: colour },
            },
          ]
        : []),
    ],
  };
}
