/**
 * Writes the evaluation report directory: summary.json, curves.csv, pareto.svg/png, guard.svg/png, guard-qe.svg/png
 * (with a router that carries a guard), report.html, report.md.
 */
import path from "node:path";
import { writeFileAtomic } from "../../util/atomic-file.js";
import { makeDirectory } from "../../util/make-directory.js";
import type { EvalSummary } from "../run-eval.js";
import { costAxis, costCurvesCsv } from "./cost-report.js";
import { curvesCsv } from "./curves-csv.js";
import { guardTradeoffSpec } from "./guard-chart.js";
import { findChartFonts, renderParetoSvg, renderPng, renderSpecSvg } from "./pareto-chart.js";
import { reportHtml } from "./report-html.js";
import { reportMarkdown } from "./report-markdown.js";

export { BUDGET_TABLE_HEADERS, budgetTableRows, budgetTableText, entryAt } from "./budget-table.js";
export { COST_CSV_COLUMNS, costAxis, costCurvesCsv, costSection } from "./cost-report.js";
export { CURVES_CSV_COLUMNS, csvField, curvesCsv } from "./curves-csv.js";
export { escapeHtml, escapeMarkdown, formatBudget, formatNumber, formatPercent } from "./format.js";
export { guardTradeoffSpec } from "./guard-chart.js";
export { findChartFonts, paretoSpec, renderParetoSvg, renderPng, renderSpecSvg } from "./pareto-chart.js";
export { intervalVerdict, plainReading, routerReading } from "./reading.js";
export { reportHtml } from "./report-html.js";
export { reportMarkdown } from "./report-markdown.js";

/** Paths of the files {@link writeReport} writes. */
export interface ReportFiles {
  summary: string;
  curves: string;
  svg: string;
  png: string;
  html: string;
  markdown: string;
  /** The guard's trade-off plot, when the router carries a guard. */
  guardSvg?: string;
  guardPng?: string;
  guardQeSvg?: string;
  guardQePng?: string;
  /** With a budget unit: curves-cost.csv and pareto-cost.svg/png. */
  cost?: { curves: string; svg: string; png: string };
}

/**
 * Writes every report file into `directory` (created if needed). The fonts for the PNG are looked
 * up first, so a missing font fails before anything is written.
 */
export async function writeReport(summary: EvalSummary, directory: string): Promise<ReportFiles> {
  const fontFiles = findChartFonts();
  await makeDirectory(directory);
  const files: ReportFiles = {
    summary: path.join(directory, "summary.json"),
    curves: path.join(directory, "curves.csv"),
    svg: path.join(directory, "pareto.svg"),
    png: path.join(directory, "pareto.png"),
    html: path.join(directory, "report.html"),
    markdown: path.join(directory, "report.md"),
  };
  const svg = await renderParetoSvg(summary);
  const guardSpec = guardTradeoffSpec(summary);
  const guardSvg = guardSpec ? await renderSpecSvg(guardSpec) : null;
  const guardQeSpec = guardTradeoffSpec(summary, "guard_qe");
  const guardQeSvg = guardQeSpec ? await renderSpecSvg(guardQeSpec) : null;
  const costSvg = summary.cost ? await renderParetoSvg(summary, costAxis(summary)) : undefined;
  await writeFileAtomic(files.summary, `${JSON.stringify(summary, null, 2)}\n`);
  await writeFileAtomic(files.curves, curvesCsv(summary));
  await writeFileAtomic(files.svg, svg);
  await writeFileAtomic(files.png, renderPng(svg, fontFiles));
  if (guardSvg !== null) {
    files.guardSvg = path.join(directory, "guard.svg");
    files.guardPng = path.join(directory, "guard.png");
    await writeFileAtomic(files.guardSvg, guardSvg);
    await writeFileAtomic(files.guardPng, renderPng(guardSvg, fontFiles));
  }
  if (guardQeSvg !== null) {
    files.guardQeSvg = path.join(directory, "guard-qe.svg");
    files.guardQePng = path.join(directory, "guard-qe.png");
    await writeFileAtomic(files.guardQeSvg, guardQeSvg);
    await writeFileAtomic(files.guardQePng, renderPng(guardQeSvg, fontFiles));
  }
  if (costSvg !== undefined) {
    files.cost = {
      curves: path.join(directory, "curves-cost.csv"),
      svg: path.join(directory, "pareto-cost.svg"),
      png: path.join(directory, "pareto-cost.png"),
    };
    await writeFileAtomic(files.cost.curves, costCurvesCsv(summary));
    await writeFileAtomic(files.cost.svg, costSvg);
    await writeFileAtomic(files.cost.png, renderPng(costSvg, fontFiles));
  }
  await writeFileAtomic(files.html, reportHtml(summary, svg, guardSvg, costSvg, guardQeSvg));
  await writeFileAtomic(files.markdown, reportMarkdown(summary));
  return files;
}
