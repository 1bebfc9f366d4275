/**
 * report.html: one self-contained page (inline SVG and CSS, no script, no external request; a
 * Content-Security-Policy forbids any) with the plot, the plain-language reading, the per-budget
 * tables, the confidence intervals and the budget-free measures. Every string that comes from the
 * data (policy names, metric, descriptions, notes) is HTML-escaped.
 */

import type { EvalSummary } from "../run-eval.js";
import { BUDGET_TABLE_HEADERS, budgetTableRows } from "./budget-table.js";
import { costSection } from "./cost-report.js";
import { escapeHtml, formatBudget, formatNumber, formatPercent } from "./format.js";
import { intervalVerdict, measuresLegend, plainReading } from "./reading.js";

const STYLE = `
:root { color-scheme: light; }
body { font-family: "DejaVu Sans", "Segoe UI", Helvetica, Arial, sans-serif; margin: 0; color: #1a1a1a; background: #fafafa; }
main { max-width: 1080px; margin: 0 auto; padding: 24px 28px 48px; background: #fff; }
h1 { font-size: 1.6rem; margin: 0 0 4px; }
h2 { font-size: 1.2rem; margin: 28px 0 8px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
h3 { font-size: 1rem; margin: 18px 0 6px; }
p.meta { color: #555; margin: 0 0 12px; }
.reading p { line-height: 1.5; margin: 6px 0; }
figure { margin: 8px 0; overflow-x: auto; }
figure svg { max-width: 100%; height: auto; }
figcaption { color: #555; font-size: 0.9rem; }
table { border-collapse: collapse; margin: 6px 0 12px; font-size: 0.9rem; }
th, td { padding: 4px 10px; border-bottom: 1px solid #e4e4e4; text-align: right; white-space: nowrap; }
th { background: #f2f2f2; font-weight: 600; }
td:first-child, th:first-child { text-align: left; }
tr.router td:first-child { font-weight: 600; }
tr.oracle td { color: #666; font-style: italic; }
td.above { color: #176b1a; } td.below { color: #a31515; }
dl dt { font-weight: 600; margin-top: 6px; } dl dd { margin: 2px 0 0 16px; }
ul.notes li { color: #555; }
`;

function table(
  headers: readonly string[],
  rows: { className?: string; cells: string[] }[],
  id?: string,
): string {
  const head = headers.map((header) => `<th scope="col">${escapeHtml(header)}</th>`).join("");
  const body = rows
    .map(
      (row) =>
        `<tr${row.className ? ` class="${escapeHtml(row.className)}"` : ""}>${row.cells.map((cell) => `<td>${cell}</td>`).join("")}</tr>`,
    )
    .join("\n");
  return `<table${id ? ` id="${escapeHtml(id)}"` : ""}><thead><tr>${head}</tr></thead><tbody>\n${body}\n</tbody></table>`;
}

function budgetTables(summary: EvalSummary): string {
  if (summary.reported_budgets.length === 0) {
    return "<p>None of the reported budgets (10, 20, 30, 50 %) is in the budget grid; see curves.csv.</p>";
  }
  return summary.reported_budgets
    .map((budget) => {
      const rows = budgetTableRows(summary, budget).map((row) => ({
        className: row.family,
        cells: row.cells.map(escapeHtml),
      }));
      return `<h3>Budget p = ${escapeHtml(formatBudget(budget))}</h3>\n${table(BUDGET_TABLE_HEADERS, rows, `table-p-${budget}`)}`;
    })
    .join("\n");
}

function confidenceTable(summary: EvalSummary): string {
  const budgets = summary.reported_budgets.filter((budget) => summary.ci[String(budget)] !== undefined);
  if (budgets.length === 0) {
    return "<p>No confidence interval: it needs the routelmt policy, a router-free baseline and a reported budget in the grid.</p>";
  }
  const rows = budgets.map((budget) => {
    const interval = summary.ci[String(budget)]!;
    const verdict = intervalVerdict(interval);
    const verdictText =
      verdict === "above"
        ? "RouteLMT better"
        : verdict === "below"
          ? "RouteLMT worse"
          : "not distinguishable (CI includes 0)";
    return {
      cells: [
        escapeHtml(formatBudget(budget)),
        escapeHtml(interval.vs),
        escapeHtml(formatNumber(interval.routelmt_mean_delta)),
        escapeHtml(formatNumber(interval.baseline_mean_delta)),
        escapeHtml(formatNumber(interval.diff)),
        escapeHtml(`[${formatNumber(interval.lo)}, ${formatNumber(interval.hi)}]`),
        `<span class="${verdict === "includes-zero" ? "" : verdict}">${escapeHtml(verdictText)}</span>`,
      ],
    };
  });
  return `<p>Paired bootstrap (${summary.bootstrap_resamples} resamples, seed ${summary.seed}) of MeanDelta@p of RouteLMT minus the best router-free baseline at that budget.</p>\n${table(
    [
      "Budget",
      "Best baseline",
      "RouteLMT MeanDelta",
      "Baseline MeanDelta",
      "Difference",
      "95 % CI",
      "Reading",
    ],
    rows,
    "ci-table",
  )}`;
}

function budgetFreeTable(summary: EvalSummary): string {
  const rows = Object.entries(summary.policies).map(([name, policy]) => ({
    className: policy.family,
    cells: [
      name,
      policy.family,
      formatNumber(policy.spearman),
      formatNumber(policy.auc),
      formatNumber(policy.apgr),
      formatPercent(policy.cpt["20"]),
      formatPercent(policy.cpt["50"]),
      formatPercent(policy.cpt["80"]),
    ].map(escapeHtml),
  }));
  return table(
    ["Policy", "Kind", "Spearman(score, gain)", "AUC", "APGR", "CPT(20 %)", "CPT(50 %)", "CPT(80 %)"],
    rows,
    "budget-free",
  );
}

function policyList(summary: EvalSummary): string {
  const items = Object.entries(summary.policies)
    .map(([name, policy]) => {
      const cost = policy.cost ? `<br><strong>Extra cost:</strong> ${escapeHtml(policy.cost)}` : "";
      return `<dt>${escapeHtml(name)}</dt><dd>${escapeHtml(policy.description)}${cost}</dd>`;
    })
    .join("\n");
  const skipped = summary.skipped.map(
    (skip) => `<li>${escapeHtml(`${skip.name} skipped: ${skip.reason}`)}</li>`,
  );
  const notes = summary.notes.map((note) => `<li>${escapeHtml(note)}</li>`);
  const noteList =
    skipped.length + notes.length > 0 ? `<ul class="notes">${[...skipped, ...notes].join("\n")}</ul>` : "";
  return `<dl>\n${items}\n</dl>\n${noteList}`;
}

/** The guard's trade-off figure and the learning curve table, when the router has them. */
function routerSection(summary: EvalSummary, guardSvg: string | null, guardQeSvg: string | null): string {
  const findings = summary.router;
  if (!findings) return "";
  const parts: string[] = ['<section id="router">', "<h2>Router: feature view, labels, guard</h2>"];
  parts.push(`<p>Feature blocks read: ${escapeHtml(findings.blocks.join(", "))}.</p>`);
  const curve = findings.learning_curve;
  if (curve) {
    parts.push(
      `<h3>Learning curve (cross-validated, training data)</h3>\n${table(
        ["Share of labels", "Training rows", "Mean MeanDelta", "95 % CI over folds"],
        curve.points.map((point) => ({
          cells: [
            formatBudget(point.share),
            String(point.rows),
            formatNumber(point.mean_delta),
            `[${formatNumber(point.lo)}, ${formatNumber(point.hi)}]`,
          ].map(escapeHtml),
        })),
        "learning-curve",
      )}\n<p>${escapeHtml(curve.reading)}</p>`,
    );
  }
  if (guardSvg !== null) {
    parts.push(
      `<h3>Guard trade-off</h3>\n<figure>\n${guardSvg}\n<figcaption>Severe-loss rate against MeanDelta on this data as λ grows from 0 (square: RouteLMT) over the router's grid, one line per budget; ring: the λ the router routes with; cross: random.</figcaption>\n</figure>`,
    );
  }
  if (guardQeSvg !== null) {
    parts.push(
      `<h3>Post-hoc guard trade-off (guarded-qe)</h3>\n<figure>\n${guardQeSvg}\n<figcaption>The same for guarded-qe, which ranks by ${summary.router?.guard_qe?.restack_inputs ? "the re-estimated gain" : "predicted gain"} − λ · ${summary.router?.guard_qe?.signal === "large-likelihood" ? "the large model's" : "the small model's"} mean token log-probability of the decoded small translation${summary.router?.guard_qe?.restack_inputs ? ", on the gain re-estimated after the decode (so its square, λ = 0, is the re-estimate, not RouteLMT)" : ""}.</figcaption>\n</figure>`,
    );
  }
  parts.push("</section>");
  return parts.join("\n");
}

/**
 * The whole page. `svg` is the quality–budget plot, `guardSvg` the guard's trade-off plot (or null),
 * `guardQeSvg` the post-hoc guard's (or null),
 * `costSvg` the quality-against-cost plot when the evaluation counted a budget unit, all as rendered
 * by Vega (their text is already escaped by Vega).
 */
export function reportHtml(
  summary: EvalSummary,
  svg: string,
  guardSvg: string | null = null,
  costSvg?: string,
  guardQeSvg: string | null = null,
): string {
  const metric = escapeHtml(summary.label_metric);
  const meta = [
    `N = ${summary.n} segments${summary.unlabelled > 0 ? ` (${summary.unlabelled} without a label left out)` : ""}`,
    `label metric ${summary.label_metric} (${summary.label_higher_is_better ? "higher" : "lower"} is better)`,
    `small only ${formatNumber(summary.small_only)}`,
    `large only ${formatNumber(summary.large_only)}`,
    `severe loss: gain < −${formatNumber(summary.severe_delta)}`,
    `seed ${summary.seed}`,
  ]
    .map(escapeHtml)
    .join(" · ");
  const reading = plainReading(summary)
    .map((paragraph) => `<p>${escapeHtml(paragraph)}</p>`)
    .join("\n");
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>routelmt eval: ${metric}, N = ${summary.n}</title>
<style>${STYLE}</style>
</head>
<body>
<main>
<h1>Routing evaluation</h1>
<p class="meta">${meta}</p>
<section class="reading" id="reading">
<h2>Reading</h2>
${reading}
</section>
<section id="plot">
<h2>Quality vs budget</h2>
<figure>
${svg}
<figcaption>Mean hybrid quality (${metric}) when the ⌊p·N⌋ segments a policy ranks first go to the large model. Dashed grey lines: small only and large only. Solid: router policies; dashed: baselines; dotted: oracles (they read the labels).</figcaption>
</figure>
</section>
${routerSection(summary, guardSvg, guardQeSvg)}
${costSection(summary, costSvg)}<section id="tables">
<h2>At the reported budgets</h2>
<p>${escapeHtml(measuresLegend(summary))}</p>
${budgetTables(summary)}
</section>
<section id="ci">
<h2>RouteLMT vs the best baseline</h2>
${confidenceTable(summary)}
</section>
<section id="budget-free-measures">
<h2>Budget-free measures</h2>
<p>Over the budgets 0, 5, …, 100 %. APGR: average share of the small-to-large gap recovered. CPT(x %): routed share needed to recover x % of it.</p>
${budgetFreeTable(summary)}
</section>
<section id="policies">
<h2>Policies</h2>
${policyList(summary)}
</section>
</main>
</body>
</html>
`;
}
