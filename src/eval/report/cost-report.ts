/**
 * The report's quality-against-realized-cost parts (`eval --budget-unit tokens|cost`): the plot's
 * axis, `curves-cost.csv`, and the HTML section. Absent from a report evaluated in segments only.
 */
import type { EvalSummary } from "../run-eval.js";
import { csvField } from "./curves-csv.js";
import { escapeHtml, formatNumber } from "./format.js";
import type { ParetoAxis } from "./pareto-chart.js";

/** What the x axis counts, in words. */
function unitWords(summary: EvalSummary): string {
  return summary.cost?.unit === "tokens"
    ? "share of the tokens the large model would process for every segment"
    : "share of the large model's bill for every segment";
}

/** Quality against the realized share of the large model's tokens or bill. */
export function costAxis(summary: EvalSummary): ParetoAxis {
  const cost = summary.cost!;
  return {
    points: Object.entries(cost.policies).flatMap(([name, curve]) =>
      curve.map((point) => ({ policy: name, x: point.realized_cost, quality: point.quality })),
    ),
    title: `Hybrid quality vs realized ${cost.unit}`,
    subtitle: `${summary.label_metric}, N = ${summary.n} segments, the highest-ranked segments within each budget`,
    xTitle: `Realized ${cost.unit} (${unitWords(summary)})`,
    domain: [0, 1],
  };
}

export const COST_CSV_COLUMNS = [
  "policy",
  "unit",
  "budget",
  "realized_cost",
  "realized_segments",
  "quality",
] as const;

/** curves-cost.csv: every policy × budget of summary.json's `cost`. */
export function costCurvesCsv(summary: EvalSummary): string {
  const cost = summary.cost!;
  const lines = [COST_CSV_COLUMNS.join(",")];
  for (const [name, curve] of Object.entries(cost.policies)) {
    for (const point of curve) {
      lines.push(
        [name, cost.unit, point.budget, point.realized_cost, point.realized_segments, point.quality]
          .map(csvField)
          .join(","),
      );
    }
  }
  return `${lines.join("\n")}\n`;
}

/** The HTML section with the cost plot; empty without cost curves. */
export function costSection(summary: EvalSummary, svg: string | undefined): string {
  const cost = summary.cost;
  if (cost === undefined || svg === undefined) return "";
  const prices =
    cost.prices === null
      ? ""
      : ` at ${escapeHtml(formatNumber(cost.prices.input))} per 1000 input and ${escapeHtml(formatNumber(cost.prices.output))} per 1000 output tokens`;
  const skipped =
    cost.skipped.length > 0
      ? ` Not drawn (allocations without a ranking): ${escapeHtml(cost.skipped.join(", "))}.`
      : "";
  return `<section id="cost">
<h2>Quality vs realized ${escapeHtml(cost.unit)}</h2>
<figure>
${svg}
<figcaption>At each budget p, a policy's highest-ranked segments go to the large model while their ${cost.unit === "tokens" ? "tokens (prompt plus output, as the large model reported them)" : `cost${prices}`} stay within p of what routing every segment would take; the x axis is the share realized.${skipped}</figcaption>
</figure>
</section>
`;
}
