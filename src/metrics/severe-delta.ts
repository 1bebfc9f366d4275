/**
 * Default δ for "severe loss" (a routed segment where the large model is worse by more than δ) and
 * for the risk head's label g < −δ, per label metric. Chosen to mean "clearly worse, not noise" on
 * each metric's own scale:
 * - chrF / chrF++ / BLEU (0–100): 10 points — about the spread of sentence scores between two
 *   adequate translations of the same sentence;
 * - MQM (0 = no error, −5 per major error, −25 per critical): 5 — one major error;
 * - neural metrics on a 0–1 scale (COMET, XCOMET, CometKiwi, BLEURT): 0.1;
 * - MetricX (0–25 error scale): 2.5.
 * Null for a metric of unknown scale: see {@link severeDeltaFor}.
 */
export function defaultSevereDelta(metricName: string): number | null {
  const name = metricName.toLowerCase();
  if (name.startsWith("chrf") || name.startsWith("bleu")) return 10;
  if (name.startsWith("mqm")) return 5;
  if (name.includes("metricx")) return 2.5;
  if (/comet|kiwi|bleurt|xcomet/.test(name)) return 0.1;
  return null;
}

/** Share of the label's spread that δ is for a metric of unknown scale: 10 points of chrF's 0–100. */
const UNKNOWN_METRIC_SHARE = 0.1;

/**
 * δ for a label metric: its default, or — for a metric whose name says nothing of its scale (an
 * `http:` service named `http`, an imported `metrics` path) — a tenth of the spread of its scores,
 * from the 1st to the 99th percentile, with a note saying so. A fixed fallback of 10 would mean
 * "never" on a 0–1 scale and every severe-loss rate would read 0 %.
 * @param qualities every known score of the label (both models).
 */
export function severeDeltaFor(
  metricName: string,
  qualities: Iterable<number | null | undefined>,
): { delta: number; note: string | null } {
  const known = defaultSevereDelta(metricName);
  if (known !== null) return { delta: known, note: null };
  const values: number[] = [];
  for (const value of qualities) if (typeof value === "number" && Number.isFinite(value)) values.push(value);
  values.sort((a, b) => a - b);
  const at = (share: number) => values[Math.round(share * (values.length - 1))]!;
  const spread = values.length === 0 ? 0 : at(0.99) - at(0.01);
  const delta = spread > 0 ? Number((UNKNOWN_METRIC_SHARE * spread).toPrecision(2)) : 10;
  const basis =
    spread > 0
      ? `a tenth of the spread of its scores (1st to 99th percentile, ${formatValue(at(0.01))} to ${formatValue(at(0.99))})`
      : "10 (its scores do not spread)";
  return {
    delta,
    note: `label metric ${JSON.stringify(metricName)} has no known scale: severe loss means a gain below −${delta}, ${basis}`,
  };
}

function formatValue(value: number): string {
  return Number(value.toPrecision(3)).toString();
}
