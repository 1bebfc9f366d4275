/**
 * The quality–budget plot: every policy's batch curve as a line with points, the small-only and
 * large-only qualities as horizontal reference lines. A Vega-Lite spec compiled to Vega, rendered
 * headless to SVG (no DOM, no canvas), and to PNG with resvg using real font files.
 */
import { existsSync } from "node:fs";
import path from "node:path";
import { Resvg } from "@resvg/resvg-js";
import { parse, View } from "vega";
import { compile, type TopLevelSpec } from "vega-lite";
import { UnsupportedError } from "../../errors/index.js";
import type { EvalSummary } from "../run-eval.js";
import { formatNumber } from "./format.js";

/** Font family named in the SVG; the PNG renderer is given its files explicitly. */
export const CHART_FONT_FAMILY = "DejaVu Sans";
const FONT_FILE_NAMES = ["DejaVuSans.ttf", "DejaVuSans-Bold.ttf"];
/** Where Debian/Ubuntu (`fonts-dejavu-core`), Fedora/Arch and common local installs keep DejaVu. */
const FONT_DIRECTORIES = [
  "/usr/share/fonts/truetype/dejavu",
  "/usr/share/fonts/dejavu",
  "/usr/share/fonts/dejavu-sans-fonts",
  "/usr/share/fonts/TTF",
  "/usr/local/share/fonts",
];

/** Distinct colours for up to 12 policies; the dash pattern tells router, baseline and oracle apart. */
const PALETTE = [
  "#1f77b4",
  "#d62728",
  "#2ca02c",
  "#9467bd",
  "#ff7f0e",
  "#8c564b",
  "#e377c2",
  "#7f7f7f",
  "#bcbd22",
  "#17becf",
  "#393b79",
  "#637939",
];

const FAMILY_ORDER = ["router", "baseline", "oracle"];

/** Fonts, title and axis styling every chart of the report shares. */
export const CHART_CONFIG = {
  font: CHART_FONT_FAMILY,
  title: { fontSize: 16, subtitleFontSize: 12, subtitleColor: "#444", anchor: "start" as const },
  axis: { titleFontSize: 13, labelFontSize: 11, titlePadding: 10 },
  legend: { titleFontSize: 12, labelFontSize: 11, labelLimit: 280, symbolStrokeWidth: 2.5 },
};
/** What the plot draws against quality: the budget (the default), or another share such as realized cost. */
export interface ParetoAxis {
  /** One point per policy and budget; `x` is the axis value. */
  points: { policy: string; x: number; quality: number }[];
  title: string;
  subtitle: string;
  xTitle: string;
  domain: [number, number];
}

/** Quality against the budget p, every policy's batch curve. */
export function budgetAxis(summary: EvalSummary): ParetoAxis {
  return {
    points: Object.entries(summary.policies).flatMap(([name, policy]) =>
      policy.curve.map((entry) => ({ policy: name, x: entry.budget, quality: entry.quality })),
    ),
    title: "Hybrid quality vs budget",
    subtitle: `${summary.label_metric}, N = ${summary.n} segments, batch allocation`,
    xTitle: "Budget p (share of segments sent to the large model)",
    domain: [summary.budgets[0] ?? 0, summary.budgets[summary.budgets.length - 1] ?? 1],
  };
}

/**
 * Legend names of the policies: a policy whose curve is point for point another's, drawn exactly
 * under or over it, says so (`guarded (= routelmt)`), so that the hidden line is not taken for a
 * missing one.
 */
export function policyLabels(
  points: readonly { policy: string; x: number; quality: number }[],
): Map<string, string> {
  const curves = new Map<string, string>();
  for (const point of points) {
    curves.set(point.policy, `${curves.get(point.policy) ?? ""}${point.x}:${point.quality};`);
  }
  const labels = new Map<string, string>();
  const firstWithCurve = new Map<string, string>();
  for (const [policy, curve] of curves) {
    const twin = firstWithCurve.get(curve);
    labels.set(policy, twin === undefined ? policy : `${policy} (= ${twin})`);
    if (twin === undefined) firstWithCurve.set(curve, policy);
  }
  return labels;
}

/** The Vega-Lite spec of the plot. */
export function paretoSpec(summary: EvalSummary, axis: ParetoAxis = budgetAxis(summary)): TopLevelSpec {
  const labels = policyLabels(axis.points);
  const names = [...new Set(axis.points.map((point) => labels.get(point.policy)!))];
  const points = axis.points.map((point) => ({
    ...point,
    policy: labels.get(point.policy)!,
    family: summary.policies[point.policy]!.family,
  }));
  const [firstBudget, lastBudget] = axis.domain;
  const references = [
    { label: `small only ${formatNumber(summary.small_only)}`, quality: summary.small_only },
    { label: `large only ${formatNumber(summary.large_only)}`, quality: summary.large_only },
  ];
  const families = FAMILY_ORDER.filter((family) => points.some((point) => point.family === family));
  const dashes: Record<string, number[]> = { router: [1, 0], baseline: [6, 3], oracle: [2, 2] };
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    width: 640,
    height: 380,
    background: "white",
    padding: 12,
    title: { text: axis.title, subtitle: axis.subtitle },
    config: CHART_CONFIG,
    layer: [
      {
        data: { values: references },
        mark: { type: "rule", color: "#555", strokeDash: [4, 4], strokeWidth: 1.2 },
        encoding: { y: { field: "quality", type: "quantitative" } },
      },
      {
        data: { values: references },
        mark: { type: "text", align: "right", baseline: "bottom", dy: -3, fontSize: 11, color: "#333" },
        encoding: {
          x: { datum: lastBudget, type: "quantitative" },
          y: { field: "quality", type: "quantitative" },
          text: { field: "label", type: "nominal" },
        },
      },
      {
        data: { values: points },
        mark: { type: "line", strokeWidth: 2, point: { filled: true, size: 36 } },
        encoding: {
          x: {
            field: "x",
            type: "quantitative",
            title: axis.xTitle,
            scale: { domain: [firstBudget, lastBudget] },
            axis: { format: ".0%" },
          },
          y: {
            field: "quality",
            type: "quantitative",
            title: `Mean hybrid quality (${summary.label_metric})`,
            scale: { zero: false },
          },
          color: {
            field: "policy",
            type: "nominal",
            title: "Policy",
            sort: names,
            scale: { domain: names, range: names.map((_, index) => PALETTE[index % PALETTE.length]!) },
          },
          strokeDash: {
            field: "family",
            type: "nominal",
            title: "Kind",
            sort: families,
            legend: {
              symbolType: "stroke",
              symbolSize: 500,
              symbolStrokeWidth: 2,
              // Vega-Lite draws a dash-only legend's strokes transparent; restate its symbol encoding
              // in full (a partial one conflicts with it) with a visible stroke.
              encoding: {
                symbols: {
                  fill: { value: "black" },
                  fillOpacity: { value: 1 },
                  opacity: { value: 1 },
                  stroke: { value: "#333" },
                },
              },
            },
            scale: { domain: families, range: families.map((family) => dashes[family]!) },
          },
        },
      },
    ],
  };
}

/** The plot as a standalone SVG document (headless Vega, renderer "none"). */
export async function renderParetoSvg(summary: EvalSummary, axis?: ParetoAxis): Promise<string> {
  return renderSpecSvg(paretoSpec(summary, axis));
}

/** Any Vega-Lite spec as a standalone SVG document (headless Vega, renderer "none"). */
export async function renderSpecSvg(spec: TopLevelSpec): Promise<string> {
  const view = new View(parse(compile(spec).spec), { renderer: "none" });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** The DejaVu Sans files to render text with; an UnsupportedError naming the package if none is installed. */
export function findChartFonts(directories: readonly string[] = FONT_DIRECTORIES): string[] {
  for (const directory of directories) {
    const files = FONT_FILE_NAMES.map((name) => path.join(directory, name)).filter((file) =>
      existsSync(file),
    );
    if (files.length > 0) return files;
  }
  throw new UnsupportedError(
    `no font to render pareto.png: DejaVu Sans was not found in ${directories.join(", ")}; install it (Debian/Ubuntu: apt-get install -y fonts-dejavu-core)`,
  );
}

/** The SVG rendered to PNG at 2× scale on white, with the given font files only (no system font scan). */
export function renderPng(svg: string, fontFiles: readonly string[] = findChartFonts()): Buffer {
  const renderer = new Resvg(svg, {
    fitTo: { mode: "zoom", value: 2 },
    background: "white",
    font: {
      loadSystemFonts: false,
      fontFiles: [...fontFiles],
      defaultFontFamily: CHART_FONT_FAMILY,
      sansSerifFamily: CHART_FONT_FAMILY,
    },
  });
  return renderer.render().asPng();
}
