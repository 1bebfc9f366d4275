/**
 * Default δ for "severe loss" (a routed segment where the large model is worse by more than δ) and
 * for the risk head's label g < −δ, per label metric. Chosen to mean "clearly worse, not noise" on
 * each metric's own scale:
 * - chrF / chrF++ / BLEU (0–100): 10 points — about the spread of sentence scores between two
 *   adequate translations of the same sentence;
 * - MQM (0 = no error, −5 per major error, −25 per critical): 5 — one major error;
 * - neural metrics on a 0–1 scale (COMET, XCOMET, CometKiwi, BLEURT): 0.1;
 * - MetricX (0–25 error scale): 2.5.
 * Unknown metrics fall back to 10 % of a 0–100 scale; pass the value explicitly for them.
 */
export function defaultSevereDelta(metricName: string): number {
  const name = metricName.toLowerCase();
  if (name.startsWith("chrf") || name.startsWith("bleu")) return 10;
  if (name.startsWith("mqm")) return 5;
  if (name.includes("metricx")) return 2.5;
  if (/comet|kiwi|bleurt|xcomet/.test(name)) return 0.1;
  return 10;
}
