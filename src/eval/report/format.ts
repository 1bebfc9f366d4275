/**
 * Text for report numbers and data strings: one formatting for the HTML, Markdown and terminal
 * tables, so the three always show the same figures.
 */

/** Below this, a figure is shown as 0 (differences of equal means are rounding noise). */
const ZERO_BELOW = 1e-12;

/**
 * A metric-scale number with about three significant digits, at most 2 decimals above 1 and 1
 * decimal above 100 (chrF 41.27, COMET 0.812, gain −0.0153); "–" for null or non-finite.
 */
export function formatNumber(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return "–";
  const magnitude = Math.abs(value);
  if (magnitude < ZERO_BELOW) return "0";
  let text: string;
  if (magnitude >= 100) text = value.toFixed(1);
  else if (magnitude >= 1) text = value.toFixed(2);
  else text = value.toFixed(Math.min(8, 2 - Math.floor(Math.log10(magnitude))));
  return text.replace(/^-/, "−");
}

/** A fraction as a percentage with one decimal ("30.0 %"); "–" for null. */
export function formatPercent(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return "–";
  return `${(value * 100).toFixed(1).replace(/^-/, "−")} %`;
}

/** A budget as a short percentage ("30 %", "5 %", "12.5 %"). */
export function formatBudget(budget: number): string {
  return `${Number((budget * 100).toFixed(2))} %`;
}

/** A count that may be an average over seeds (random): an integer shown plainly, else one decimal. */
export function formatCount(value: number): string {
  return Number.isInteger(value) ? String(value) : value.toFixed(1);
}

const HTML_ENTITIES: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
};

/** Escapes text for HTML element content and quoted attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (character) => HTML_ENTITIES[character]!);
}

/**
 * Escapes text for Markdown (table cells and paragraphs): `&`, `<` and `>` as HTML entities
 * (renderers pass raw HTML through), Markdown's emphasis, code, link and table characters
 * backslash-escaped, newlines flattened.
 */
export function escapeMarkdown(text: string): string {
  return text
    .replace(/[&<>]/g, (character) => HTML_ENTITIES[character]!)
    .replace(/[\\`*_[\]|]/g, (character) => `\\${character}`)
    .replace(/\r?\n/g, " ");
}
