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
 * guard of `guarded` (the risk head), `guard_qe` the post-hoc guard of `guarded-qe` (the small
 * model's confidence in its decoded translation).
 */
export function guardTradeoffSpec(
  summary: EvalSummary,
  which: "guard" | "guard_qe" = "guard",
): TopLevelSpec | null {
  const tradeoff = summary.router?.[which];
  if (!tradeoff || tradeoff.points.length === 0) return null;
  const budgets = tradeoff.budgets.map(formatBudget);
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
            point.lambda === 0
              ? "λ = 0 (RouteLMT)"
              : point.lambda === tradeoff.chosen_lambda
                ? "chosen λ"
                : "other λ",
        },
      ];
    }),
  );
  const random = summary.policies.random;
  const randomPoints = random
    ? tradeoff.budgets.flatMap((budget, column) => {
        const entry = entryAt(random.curve, budget);
        if (!entry || entry.mean_delta === null || entry.severe_loss === null) return [];
        return [
          { budget: budgets[column], severe: entry.severe_loss, meanDelta: entry.mean_delta, role: "random" },
        ];
      })
    : [];
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
        `Ranking by gain − λ · ${which === "guard" ? `P(gain < −${plain(tradeoff.risk_delta)})` : "the small model's mean token log-probability"}, λ from 0 (square: RouteLMT) up the router's grid.`,
        `Ring: λ = ${formatNumber(tradeoff.chosen_lambda)}, in use. Cross: random.`,
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
        data: { values: line.filter((point) => point.role === "λ = 0 (RouteLMT)") },
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
    ],
  };
}
