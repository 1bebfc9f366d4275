/** report.md: the reading, the per-budget tables, the confidence intervals and the budget-free measures. */
import type { EvalSummary } from "../run-eval.js";
import { BUDGET_TABLE_HEADERS, budgetTableRows } from "./budget-table.js";
import { escapeMarkdown, formatBudget, formatNumber, formatPercent } from "./format.js";
import { intervalVerdict, measuresLegend, plainReading } from "./reading.js";

function markdownTable(headers: readonly string[], rows: readonly string[][]): string {
  const line = (cells: readonly string[]) => `| ${cells.map(escapeMarkdown).join(" | ")} |`;
  const alignment = headers.map((_, index) => (index === 0 ? ":---" : "---:"));
  return [line(headers), `| ${alignment.join(" | ")} |`, ...rows.map(line)].join("\n");
}

export function reportMarkdown(summary: EvalSummary): string {
  const parts: string[] = [
    "# Routing evaluation",
    "",
    escapeMarkdown(
      `N = ${summary.n} segments · label metric ${summary.label_metric} · small only ${formatNumber(summary.small_only)} · large only ${formatNumber(summary.large_only)} · severe loss: gain < −${formatNumber(summary.severe_delta)} · seed ${summary.seed}`,
    ),
    "",
    "![Hybrid quality vs budget](pareto.png)",
    "",
    "## Reading",
    "",
    ...plainReading(summary).flatMap((paragraph) => [escapeMarkdown(paragraph), ""]),
    "## At the reported budgets",
    "",
    escapeMarkdown(measuresLegend(summary)),
    "",
  ];
  if (summary.reported_budgets.length === 0)
    parts.push("None of 10, 20, 30, 50 % is in the budget grid.", "");
  for (const budget of summary.reported_budgets) {
    parts.push(
      `### Budget p = ${formatBudget(budget)}`,
      "",
      markdownTable(
        BUDGET_TABLE_HEADERS,
        budgetTableRows(summary, budget).map((row) => row.cells),
      ),
      "",
    );
  }
  parts.push("## RouteLMT vs the best baseline", "");
  const withInterval = summary.reported_budgets.filter((budget) => summary.ci[String(budget)] !== undefined);
  if (withInterval.length === 0)
    parts.push("No confidence interval (needs routelmt and a router-free baseline).", "");
  else {
    parts.push(
      `Paired bootstrap, ${summary.bootstrap_resamples} resamples, 95 % interval of the MeanDelta difference.`,
      "",
      markdownTable(
        [
          "Budget",
          "Best baseline",
          "RouteLMT MeanDelta",
          "Baseline MeanDelta",
          "Difference",
          "95 % CI",
          "Reading",
        ],
        withInterval.map((budget) => {
          const interval = summary.ci[String(budget)]!;
          const verdict = intervalVerdict(interval);
          return [
            formatBudget(budget),
            interval.vs,
            formatNumber(interval.routelmt_mean_delta),
            formatNumber(interval.baseline_mean_delta),
            formatNumber(interval.diff),
            `[${formatNumber(interval.lo)}, ${formatNumber(interval.hi)}]`,
            verdict === "above" ? "RouteLMT better" : verdict === "below" ? "RouteLMT worse" : "includes 0",
          ];
        }),
      ),
      "",
    );
  }
  if (summary.router?.guard && summary.router.guard.points.length > 0)
    parts.push("## Guard trade-off", "", "![Severe losses vs MeanDelta over λ](guard.png)", "");
  if (summary.router?.guard_qe && summary.router.guard_qe.points.length > 0)
    parts.push(
      "## Post-hoc guard trade-off (guarded-qe)",
      "",
      "![Severe losses vs MeanDelta over λ, guarded-qe](guard-qe.png)",
      "",
    );
  parts.push(
    "## Budget-free measures",
    "",
    markdownTable(
      ["Policy", "Kind", "Spearman(score, gain)", "AUC", "APGR", "CPT(20 %)", "CPT(50 %)", "CPT(80 %)"],
      Object.entries(summary.policies).map(([name, policy]) => [
        name,
        policy.family,
        formatNumber(policy.spearman),
        formatNumber(policy.auc),
        formatNumber(policy.apgr),
        formatPercent(policy.cpt["20"]),
        formatPercent(policy.cpt["50"]),
        formatPercent(policy.cpt["80"]),
      ]),
    ),
    "",
    "## Policies",
    "",
    ...Object.entries(summary.policies).map(
      ([name, policy]) =>
        `- **${escapeMarkdown(name)}**: ${escapeMarkdown(policy.description)}${policy.cost ? ` Extra cost: ${escapeMarkdown(policy.cost)}` : ""}`,
    ),
    ...summary.skipped.map((skip) => `- ${escapeMarkdown(`${skip.name} skipped: ${skip.reason}`)}`),
    ...summary.notes.map((note) => `- ${escapeMarkdown(note)}`),
    "",
  );
  return parts.join("\n");
}
