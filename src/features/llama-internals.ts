/**
 * Everything routelmt does with node-llama-cpp internals (checked against 3.21.1) lives here, so an
 * upgrade has one file to re-check. The public API has no way to read a hidden state from a context
 * that also decodes; the internals used are:
 * - the `_embeddings: true` context option (what `model.createEmbeddingContext()` passes), which
 *   makes llama.cpp keep the output-norm hidden state of every output row next to its logits;
 * - `context._ctx.getEmbedding(n)`, the addon call that copies the LAST output row of the most
 *   recently decoded batch (`llama_get_embeddings_ith(ctx, -1)` when pooling is none).
 *
 * Because only the last row of a batch can be read, a feature-reading prompt gets a batch of its own
 * (`featureLastStrategy`, the context's batch prioritisation); `prefillSequence` reads the row inside the
 * sampling callback, which node-llama-cpp awaits before it decodes the next batch.
 * @internal
 * @module
 */
import type {
  BatchItem,
  ControlledEvaluateInputItem,
  EvaluationPriority,
  LlamaContext,
  LlamaContextOptions,
  LlamaContextSequence,
  LlamaModel,
  PrioritizedBatchItem,
  Token,
} from "node-llama-cpp";
import { UnsupportedError } from "../errors/index.js";

/**
 * Priority that marks a prompt evaluation whose last-token hidden state must be read. Every other
 * evaluation on a feature context uses `plainEvaluationPriority`. Priorities are only a tag here:
 * `featureLastStrategy` orders by tag, not by value.
 * @internal
 */
export const featureEvaluationPriority: EvaluationPriority = 1;
/** @internal */
export const plainEvaluationPriority: EvaluationPriority = 5;

/**
 * Batch prioritisation for feature contexts: queued items in arrival order, except that a
 * feature-reading item, when one is queued, gets a batch of its own (only its tokens, up to `size`),
 * so the batch's last output row is certainly its last prompt token. Sharing the batch with other
 * sequences' tokens, even with the feature item placed last, intermittently gave another row's
 * state under load; other sequences wait one batch instead. Items get tokens first-come
 * first-served up to `size`.
 * @internal
 */
export function featureLastStrategy({
  items,
  size,
}: {
  items: readonly BatchItem[];
  size: number;
}): PrioritizedBatchItem[] {
  const firstFeatureItem = items.find((item) => item.evaluationPriority === featureEvaluationPriority);
  if (firstFeatureItem !== undefined) {
    return [{ item: firstFeatureItem, processAmount: Math.min(firstFeatureItem.tokens.length, size) }];
  }
  const prioritized: PrioritizedBatchItem[] = [];
  let tokensLeft = size;
  for (const item of items) {
    const processAmount = Math.min(item.tokens.length, tokensLeft);
    if (processAmount <= 0) break;
    prioritized.push({ item, processAmount });
    tokensLeft -= processAmount;
  }
  return prioritized;
}

/** The shape of the internal members used here. */
interface ContextInternals {
  _ctx: { getEmbedding(inputTokensLength: number): Float64Array | number[] };
}

/** Options for `createFeatureContext`: the public context options plus what this file needs. */
export type FeatureContextOptions = Pick<LlamaContextOptions, "contextSize" | "batchSize" | "sequences"> & {
  threads: number;
};

/**
 * Checks that llama.cpp's embedding output of `model` is the final hidden state at a token (after
 * the output norm) and that the model can also produce logits. Throws UnsupportedError otherwise;
 * must run before any context is created, since llama.cpp aborts on some misuse instead of throwing.
 * @internal
 */
export function assertFinalFeatureSupport(model: LlamaModel): void {
  const insights = model.fileInsights;
  if (insights.hasEncoder) {
    throw new UnsupportedError(
      `${model.filename ?? "model"}: encoder-decoder architecture ${model.architecture} is not supported as a probed translator`,
    );
  }
  const architectureMetadata = model.fileInfo.architectureMetadata as { pooling_type?: number };
  if (architectureMetadata.pooling_type !== undefined && architectureMetadata.pooling_type !== 0) {
    // A pooled embedding model would return the pooled vector, not the last token's hidden state.
    throw new UnsupportedError(
      `${model.filename ?? "model"}: GGUF declares pooling type ${architectureMetadata.pooling_type}; layer "final" needs a decoder without pooling`,
    );
  }
  if (model.embeddingVectorSize <= 0) {
    throw new UnsupportedError(`${model.filename ?? "model"}: the model reports no hidden-state size`);
  }
}

/**
 * A context whose sequences both decode and expose the last prompt token's final hidden state.
 * @internal
 */
export async function createFeatureContext(
  model: LlamaModel,
  options: FeatureContextOptions,
): Promise<LlamaContext> {
  assertFinalFeatureSupport(model);
  const contextOptions: LlamaContextOptions & { _embeddings: boolean } = {
    contextSize: options.contextSize,
    batchSize: options.batchSize,
    sequences: options.sequences,
    threads: options.threads,
    batching: { itemPrioritizationStrategy: featureLastStrategy },
    _embeddings: true,
  };
  return await model.createContext(contextOptions);
}

/** What one prompt evaluation yields: the greedy next token and, when asked, features and probabilities. */
export interface SequencePrefill {
  /** Greedy (argmax) next token after the prompt. */
  nextToken: Token;
  /** Final hidden state at the last prompt token; undefined unless `readFeatures`. */
  features: Float32Array | undefined;
  /** Softmax (temperature 1) over the full vocabulary at the last prompt token; undefined unless `readDistribution`. */
  probabilities: Map<Token, number> | undefined;
}

/**
 * Evaluates `tokens` on `sequence` (which must be empty), sampling the greedy next token from the
 * last one; with `readFeatures`, also reads that token's hidden state, and with `readDistribution`
 * its next-token distribution (costly for large vocabularies: llama.cpp sorts it, and it crosses
 * into JS as a Map). The sequence keeps its KV cache, so decoding continues without a second prefill.
 * @internal
 */
export async function prefillSequence(
  sequence: LlamaContextSequence,
  tokens: readonly Token[],
  readFeatures: boolean,
  readDistribution = readFeatures,
): Promise<SequencePrefill> {
  const lastIndex = tokens.length - 1;
  const context = sequence.context as unknown as ContextInternals;
  let features: Float32Array | undefined;
  const input: ControlledEvaluateInputItem[] = tokens.map((token, index) =>
    index === lastIndex ? [token, { generateNext: { token: true, probabilities: readDistribution } }] : token,
  );
  const outputs = await sequence.controlledEvaluate(input, {
    evaluationPriority: readFeatures ? featureEvaluationPriority : plainEvaluationPriority,
    onTokenResult: (index) => {
      // Runs before the next batch is decoded, so the batch's last output row is still this prompt's
      // last token (featureLastStrategy put it last).
      if (readFeatures && index === lastIndex)
        features = Float32Array.from(context._ctx.getEmbedding(tokens.length));
    },
  });
  const next = outputs[lastIndex]?.next;
  if (next?.token === undefined || next.token === null) {
    throw new Error("llama.cpp returned no next token for the prompt");
  }
  if ((readFeatures && features === undefined) || (readDistribution && next.probabilities === undefined)) {
    throw new Error("llama.cpp returned no hidden state or distribution for the last prompt token");
  }
  return { nextToken: next.token, features, probabilities: next.probabilities };
}
