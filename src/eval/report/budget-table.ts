/**
 * The per-budget comparison table (quality, MeanDelta, HitRate, severe loss, realized share in
 * batch and streaming) as plain cells, rendered by the HTML, Markdown and terminal outputs.
 */
import type { CurveEntry, EvalSummary } from "../run-eval.js";
import { formatNumber, formatPercent } from "./format.js";

export const BUDGET_TABLE_HEADERS = [
  "Policy",
  "Quality",
  "MeanDelta",
  "HitRate",
  "Severe loss",
  "Realized",
  "Streaming realized",
  "Streaming quality",
] as const;

export interface BudgetTableRow {
  policy: string;
  family: string;
  /** Cells in the order of {@link BUDGET_TABLE_HEADERS}, policy first. */
  cells: string[];
}

/** The curve entry of a policy at `budget` (budgets in the summary are exact grid values). */
export function entryAt(curve: readonly CurveEntry[], budget: number): CurveEntry | undefined {
  return curve.find((entry) => Math.abs(entry.budget - budget) <= 1e-9);
}

/** One row per policy at `budget`, in the summary's policy order. */
export function budgetTableRows(summary: EvalSummary, budget: number): BudgetTableRow[] {
  const rows: BudgetTableRow[] = [];
  for (const [name, policy] of Object.entries(summary.policies)) {
    const entry = entryAt(policy.curve, budget);
    if (!entry) continue;
    rows.push({
      policy: name,
      family: policy.family,
      cells: [
        name,
        formatNumber(entry.quality),
        formatNumber(entry.mean_delta),
        formatPercent(entry.hit_rate),
        formatPercent(entry.severe_loss),
        formatPercent(entry.realized),
        formatPercent(entry.streaming?.realized ?? null),
        formatNumber(entry.streaming?.quality ?? null),
      ],
    });
  }
  return rows;
}

/** The table as aligned plain text for the terminal. */
export function budgetTableText(summary: EvalSummary, budget: number): string {
  const lines = [
    Array.from(BUDGET_TABLE_HEADERS),
    ...budgetTableRows(summary, budget).map((row) => row.cells),
  ];
  const widths = BUDGET_TABLE_HEADERS.map((_, column) =>
    Math.max(...lines.map((cells) => [...(cells[column] ?? "")].length)),
  );
  return lines
    .map((cells) =>
      cells
        .map((cell, column) => {
          const padding = " ".repeat(widths[column]! - [...cell].length);
          return column === 0 ? cell + padding : padding + cell;
        })
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}
