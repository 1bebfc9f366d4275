/** curves.csv: every policy × budget of summary.json as one flat table (RFC 4180 quoting). */
import type { EvalSummary } from "../run-eval.js";

export const CURVES_CSV_COLUMNS = [
  "policy",
  "family",
  "budget",
  "quality",
  "realized",
  "mean_delta",
  "hit_rate",
  "severe_loss",
  "regressions",
  "routed",
  "guarded",
  "streaming_realized",
  "streaming_quality",
  "streaming_mean_delta",
  "streaming_hit_rate",
  "streaming_severe_loss",
  "streaming_regressions",
  "streaming_cap_blocked",
] as const;

/** A CSV field: numbers at full precision, null as empty, text quoted when it holds , " or a line break. */
export function csvField(value: string | number | null | undefined): string {
  if (value === null || value === undefined) return "";
  const text = String(value);
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export function curvesCsv(summary: EvalSummary): string {
  const lines = [CURVES_CSV_COLUMNS.join(",")];
  for (const [name, policy] of Object.entries(summary.policies)) {
    for (const entry of policy.curve) {
      const streaming = entry.streaming;
      lines.push(
        [
          name,
          policy.family,
          entry.budget,
          entry.quality,
          entry.realized,
          entry.mean_delta,
          entry.hit_rate,
          entry.severe_loss,
          entry.regressions,
          entry.routed,
          entry.guarded,
          streaming?.realized,
          streaming?.quality,
          streaming?.mean_delta,
          streaming?.hit_rate,
          streaming?.severe_loss,
          streaming?.regressions,
          streaming?.cap_blocked,
        ]
          .map(csvField)
          .join(","),
      );
    }
  }
  return `${lines.join("\n")}\n`;
}
