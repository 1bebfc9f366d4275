/**
 * Router features read from the small translator: feature views (see `feature-views.ts`), their pooling
 * and the next-token entropy.
 * Engine-specific reading lives in `llama-internals.ts` (node-llama-cpp) and `llama-ffi*.ts`.
 * @module
 */
export {
  ALL_FEATURE_VIEWS,
  AUTO_FEATURE_VIEWS,
  allFeatureViews,
  autoFeatureViews,
  DEFAULT_FEATURE_VIEWS,
  FEATURE_POOLINGS,
  type FeatureLayer,
  type FeaturePooling,
  type FeatureView,
  type FeatureViewSpan,
  featureViewName,
  featureViewSpans,
  featureViewsOf,
  featureViewsText,
  isAutoSelection,
  isLastFinalOnly,
  normaliseFeatureViews,
  normaliseLayerSelection,
  parseFeatureView,
  pooledWidth,
  resolveAutoSelection,
  sameFeatureViews,
} from "./feature-views.js";
export { argmax, NORM_STATISTICS_DIM, normStatistics, RowPooler } from "./pooling.js";
export {
  SOURCE_BLOCK_NAMES,
  SOURCE_BLOCKS,
  SOURCE_LENGTH_BLOCK,
  SOURCE_LENGTH_DIM,
  type SourceBlock,
  type SourceText,
  sourceBlockNamed,
  sourceBlocksNamed,
  writeSourceBlocks,
  writeSourceLengthFeatures,
} from "./source-blocks.js";
export {
  fnv1a32,
  fnv1a32Utf8,
  SOURCE_WORDS_BLOCK,
  SOURCE_WORDS_DIM,
  sourceWordFeatures,
  sourceWords,
  writeSourceWordFeatures,
  writeWordBag,
} from "./source-words.js";

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
