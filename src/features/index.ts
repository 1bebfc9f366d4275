/**
 * Router features read from the small translator: layer selections and the next-token entropy.
 * Engine-specific reading lives in `llama-internals.ts` (node-llama-cpp) and `llama-ffi*.ts`.
 * @module
 */
import { UsageError } from "../errors/index.js";

export {
  ALL_FEATURE_VIEWS,
  allFeatureViews,
  DEFAULT_FEATURE_VIEWS,
  type FeatureLayer,
  type FeaturePooling,
  type FeatureView,
  type FeatureViewSpan,
  featureViewName,
  featureViewSpans,
  featureViewsOf,
  featureViewsText,
  isLastFinalOnly,
  normaliseFeatureViews,
  sameFeatureViews,
} from "./feature-views.js";
export { argmax, RowPooler } from "./pooling.js";

/**
 * Normalises a layer selection: comma-separated block indices (0-based) and/or `final` (the hidden
 * state after the output norm), e.g. ` 8, 16 ,FINAL` → `8,16,final`. Order is kept (it is the
 * concatenation order of the feature vector); duplicates are refused.
 * @throws UsageError for an empty selection, a malformed entry or a duplicate.
 */
export function normaliseLayerSelection(selection: string): string {
  const entries = selection.split(",").map((entry) => entry.trim().toLowerCase());
  const normalised: string[] = [];
  for (const entry of entries) {
    let value: string;
    if (entry === "final") value = "final";
    else if (/^\d+$/.test(entry)) value = String(Number(entry));
    else
      throw new UsageError(
        `invalid layer ${JSON.stringify(entry)} in ${JSON.stringify(selection)}: use block indices and/or "final"`,
      );
    if (normalised.includes(value))
      throw new UsageError(`layer ${value} appears twice in ${JSON.stringify(selection)}`);
    normalised.push(value);
  }
  return normalised.join(",");
}

/**
 * Shannon entropy in nats of a probability distribution given as probabilities (zeros contribute
 * nothing). The values are renormalised by their sum, so float32 rounding in a softmax computed
 * elsewhere does not bias the result.
 */
export function entropyOfProbabilities(probabilities: Iterable<number>): number {
  let total = 0;
  let weightedLog = 0;
  for (const probability of probabilities) {
    if (probability > 0) {
      total += probability;
      weightedLog += probability * Math.log(probability);
    }
  }
  if (total <= 0) return Number.NaN;
  // H = -Σ (p/Z) log(p/Z) = log Z - (Σ p log p) / Z
  return Math.log(total) - weightedLog / total;
}

/**
 * Shannon entropy in nats of softmax(logits) at temperature 1, computed stably in float64:
 * H = logsumexp(z) - Σ softmax(z)·z.
 */
export function entropyOfLogits(logits: ArrayLike<number>): number {
  let maximum = Number.NEGATIVE_INFINITY;
  for (let index = 0; index < logits.length; index++) maximum = Math.max(maximum, logits[index] ?? maximum);
  if (!Number.isFinite(maximum)) return Number.NaN;
  let sum = 0;
  let weighted = 0;
  for (let index = 0; index < logits.length; index++) {
    const shifted = (logits[index] ?? maximum) - maximum;
    const weight = Math.exp(shifted);
    sum += weight;
    weighted += weight * shifted;
  }
  return Math.log(sum) - weighted / sum;
}
