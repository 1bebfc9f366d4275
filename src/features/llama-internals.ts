/**
 * Everything routelmt does with node-llama-cpp internals (checked against 3.21.1) lives here, so an
 * upgrade has one file to re-check.
 *
 * **Why one sequence per batch.** llama.cpp's CPU matrix products take another kernel for a
 * one-token ubatch than for a longer one (`llamafile_sgemm` serves only n ≥ 2; one row goes through
 * `ggml_vec_dot`), and the two round differently. Decoding alone, every generated token is a one-row
 * ubatch; batched with other sequences (node-llama-cpp keeps a KV stream per sequence, and llama.cpp's
 * `split_equal` puts sequences with consecutive ids in one ubatch) it is a row of a longer one, and a
 * prompt batched with others can be cut into a one-token piece. Measured on tinymt-large, Multi30k
 * val 149: the greedy choice at step 19 is a near-tie (0.115046 against 0.114988 alone); with its
 * decode steps in shared ubatches it becomes 0.115009 against 0.115021 and the word changes
 * ("Sackel" / "Segelboot"). Within ubatches of two rows or more, a row's values do not depend on the
 * other rows (equal to the last bit). So `promptAloneStrategy` gives every batch one sequence: the
 * translations and features are those of one-sequence decoding to the last bit, at the price of
 * batched matrix products (on 2 cores and the tinymt models, concurrency gained nothing from them).
 *
 * **Why outputs need guarding.** With several sequences in a ubatch, llama.cpp's output rows come
 * out of batch order; it records the row swaps that restore the order and applies them lazily, on
 * the first `llama_get_logits_ith` / `llama_get_embeddings_ith` after the decode (`output_reorder`),
 * without a lock. node-llama-cpp samples every sequence of a batch in its own thread-pool worker, so
 * with several sequences those workers would apply the swaps concurrently: a row can be swapped twice or
 * read mid-swap, and a sequence gets another sequence's logits (a foreign first token, a corrupted
 * word mid-sentence). llama.cpp's own server samples on one thread and never sees this.
 *
 * Batches of one sequence have one output row, but `guardBatchOutputs` wraps the context's addon
 * calls so that no batch can race, whatever its shape:
 * - after each decode, the first sampling call of the batch runs alone (it applies the swaps, on one
 *   thread); the others start once it is done and find the rows in batch order;
 * - a feature-reading prompt's hidden state is copied right after the decode that evaluated its last
 *   token, before any sampling call, from the batch's last output row. Prompts are alone in their
 *   batches, and the copy is only taken when the batch's last item is that very prompt ending at its
 *   last token; otherwise the prefill fails instead of returning a wrong row.
 *
 * Internals used: the `_embeddings: true` context option (what `model.createEmbeddingContext()`
 * passes; llama.cpp then outputs every token's final-norm state next to its logits); the addon
 * context `context._ctx` and its `initBatch`, `addToBatch`, `decodeBatch`, `sampleToken` and
 * `getEmbedding` calls (the last copies the batch's last output row, `llama_get_embeddings_ith(ctx, -1)`
 * for pooling none); `sequence._sequenceId`.
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
 * Priority that marks a prompt evaluation whose last-token hidden state must be read. Priorities are
 * only tags here: `promptAloneStrategy` sorts by tag, not by value. Decode steps keep node-llama-cpp's
 * default priority, so a tag tells a prompt from a generation step whatever its length.
 * @internal
 */
export const featureEvaluationPriority: EvaluationPriority = 1;
/** Priority that marks any other prompt evaluation. @internal */
export const promptEvaluationPriority: EvaluationPriority = 2;

function isPromptItem(item: BatchItem): boolean {
  return (
    item.evaluationPriority === featureEvaluationPriority ||
    item.evaluationPriority === promptEvaluationPriority
  );
}

/**
 * Batch prioritisation that gives every sequence the numerics of one-sequence decoding (see the
 * module comment): each batch holds one sequence only — the next chunk of a prompt, cut at
 * multiples of `size` from its start as it is alone, or one decode step. Feature-reading prompts go
 * first (routing waits for them), then other prompts in arrival order; prompt and step batches
 * alternate while both wait, and steps take turns in arrival order, so a generating sequence is never
 * starved by arriving prompts. One strategy per context: it remembers the last batch's kind.
 * @internal
 */
export function promptAloneStrategy(): (options: {
  items: readonly BatchItem[];
  size: number;
}) => PrioritizedBatchItem[] {
  let lastWasPrompt = false;
  return ({ items, size }) => {
    const step = items.find((item) => !isPromptItem(item));
    const prompt =
      items.find((item) => item.evaluationPriority === featureEvaluationPriority) ?? items.find(isPromptItem);
    const item = prompt !== undefined && !(lastWasPrompt && step !== undefined) ? prompt : step;
    if (item === undefined) return [];
    lastWasPrompt = item === prompt;
    return [{ item, processAmount: Math.min(item.tokens.length, size) }];
  };
}

/** The addon context calls wrapped or used here (node-llama-cpp 3.21.1). */
interface AddonContext {
  initBatch(size: number): void;
  addToBatch(
    sequenceId: number,
    firstTokenSequenceIndex: number,
    tokens: Uint32Array,
    logitIndexes: Uint32Array,
  ): Uint32Array;
  decodeBatch(): Promise<void>;
  sampleToken(...args: unknown[]): Promise<unknown>;
  getEmbedding(inputTokensLength: number, maxVectorSize?: number): Float64Array | number[];
}

/** A pending read of a prompt's last-token hidden state, filled in by the decode that evaluates that token. */
interface FeatureRead {
  /** Sequence position just after the prompt's last token. */
  end: number;
  state: Float32Array | undefined;
}

/** What `guardBatchOutputs` keeps per context. */
interface BatchOutputGuard {
  /** Pending feature reads by sequence id. */
  featureReads: Map<number, FeatureRead>;
}

const guards = new WeakMap<LlamaContext, BatchOutputGuard>();

/** Defines `name` on the addon object itself: its methods are read-only prototype properties. */
function overrideAddonCall<Name extends keyof AddonContext>(
  addon: AddonContext,
  name: Name,
  implementation: AddonContext[Name],
): void {
  Object.defineProperty(addon, name, { value: implementation, configurable: true, writable: true });
}

/**
 * Makes a context's output rows safe to read with several sequences per batch (see the module
 * comment) and lets `prefillSequence` read hidden states when `readsFeatures` (an `_embeddings`
 * context). Must run before the context's first evaluation.
 * @internal
 */
export function guardBatchOutputs(context: LlamaContext, readsFeatures: boolean): void {
  const addon = (context as unknown as { _ctx: AddonContext })._ctx;
  const guard: BatchOutputGuard = { featureReads: new Map() };
  const initBatch = addon.initBatch.bind(addon);
  const addToBatch = addon.addToBatch.bind(addon);
  const decodeBatch = addon.decodeBatch.bind(addon);
  const sampleToken = addon.sampleToken.bind(addon);
  const getEmbedding = addon.getEmbedding.bind(addon);

  let lastItem: { sequenceId: number; end: number } | undefined;
  // Settles when the batch's first sampling call, the one that applies llama.cpp's row swaps, is done.
  let rowsInOrder: Promise<unknown> | undefined;

  overrideAddonCall(addon, "initBatch", (size) => {
    lastItem = undefined;
    initBatch(size);
  });
  overrideAddonCall(addon, "addToBatch", (sequenceId, firstTokenSequenceIndex, tokens, logitIndexes) => {
    const rows = addToBatch(sequenceId, firstTokenSequenceIndex, tokens, logitIndexes);
    lastItem = { sequenceId, end: firstTokenSequenceIndex + tokens.length };
    return rows;
  });
  overrideAddonCall(addon, "decodeBatch", async () => {
    rowsInOrder = undefined;
    await decodeBatch();
    const read = lastItem === undefined ? undefined : guard.featureReads.get(lastItem.sequenceId);
    if (read !== undefined && read.end === lastItem?.end) {
      // Synchronous, before node-llama-cpp starts this batch's sampling workers.
      read.state = Float32Array.from(getEmbedding(read.end));
    }
  });
  overrideAddonCall(addon, "sampleToken", (...args) => {
    if (rowsInOrder !== undefined) return rowsInOrder.then(() => sampleToken(...args));
    const first = sampleToken(...args);
    rowsInOrder = first.catch(() => undefined);
    return first;
  });
  if (readsFeatures) guards.set(context, guard);
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
 * A context for greedy decoding whose outputs are guarded (`guardBatchOutputs`). With
 * `readsFeatures`, its sequences also expose the last prompt token's final hidden state
 * (`prefillSequence`); llama.cpp then computes logits for every prompt token, so a context that only
 * translates leaves it off.
 * @internal
 */
export async function createGuardedContext(
  model: LlamaModel,
  options: FeatureContextOptions & { readsFeatures: boolean },
): Promise<LlamaContext> {
  if (options.readsFeatures) assertFinalFeatureSupport(model);
  const contextOptions: LlamaContextOptions & { _embeddings?: boolean } = {
    contextSize: options.contextSize,
    batchSize: options.batchSize,
    sequences: options.sequences,
    threads: options.threads,
    batching: { itemPrioritizationStrategy: promptAloneStrategy() },
    ...(options.readsFeatures ? { _embeddings: true } : {}),
  };
  const context = await model.createContext(contextOptions);
  guardBatchOutputs(context, options.readsFeatures);
  return context;
}

/** What one prompt evaluation yields: the greedy next token and, when asked, features and probabilities. */
export interface SequencePrefill {
  /** Greedy (argmax) next token after the prompt. */
  nextToken: Token;
  /** Final hidden state at the last prompt token; undefined unless `readFeatures`. */
  features: Float32Array | undefined;
  /** Softmax (temperature 1) over the full vocabulary at the last prompt token; undefined unless `readDistribution`. */
  probabilities: Map<Token, number> | undefined;
  /** Probability of `nextToken` under that softmax; undefined unless `readDistribution` or `readConfidence`. */
  confidence: number | undefined;
}

/**
 * Evaluates `tokens` on `sequence` (which must be empty), sampling the greedy next token from the
 * last one; with `readFeatures`, also reads that token's hidden state, and with `readDistribution`
 * its next-token distribution (costly for large vocabularies: llama.cpp sorts it, and it crosses
 * into JS as a Map), and with `readConfidence` the probability of the greedy token alone (llama.cpp
 * still sorts). The sequence keeps its KV cache, so decoding continues without a second prefill.
 * @internal
 */
export async function prefillSequence(
  sequence: LlamaContextSequence,
  tokens: readonly Token[],
  readFeatures: boolean,
  readDistribution = readFeatures,
  readConfidence = false,
): Promise<SequencePrefill> {
  const lastIndex = tokens.length - 1;
  const featureReads = guards.get(sequence.context)?.featureReads;
  if (readFeatures && featureReads === undefined) {
    throw new Error("this context does not read hidden states: create it with readsFeatures");
  }
  const sequenceId = (sequence as unknown as { _sequenceId: number })._sequenceId;
  const read: FeatureRead = { end: sequence.nextTokenIndex + tokens.length, state: undefined };
  if (readFeatures) featureReads?.set(sequenceId, read);
  const input: ControlledEvaluateInputItem[] = tokens.map((token, index) =>
    index === lastIndex
      ? [
          token,
          {
            generateNext: {
              token: true,
              probabilities: readDistribution,
              confidence: readConfidence && !readDistribution,
            },
          },
        ]
      : token,
  );
  let outputs: Awaited<ReturnType<LlamaContextSequence["controlledEvaluate"]>>;
  try {
    outputs = await sequence.controlledEvaluate(input, {
      evaluationPriority: readFeatures ? featureEvaluationPriority : promptEvaluationPriority,
    });
  } finally {
    if (readFeatures) featureReads?.delete(sequenceId);
  }
  const next = outputs[lastIndex]?.next;
  if (next?.token === undefined || next.token === null) {
    throw new Error("llama.cpp returned no next token for the prompt");
  }
  if (readFeatures && read.state === undefined) {
    // The prompt's last token was not the last row of its batch: refuse rather than read another row.
    throw new Error("the last prompt token's hidden state was not captured from its batch");
  }
  if (readDistribution && next.probabilities === undefined) {
    throw new Error("llama.cpp returned no distribution for the last prompt token");
  }
  const confidence = next.probabilities?.get(next.token) ?? next.confidence;
  return { nextToken: next.token, features: read.state, probabilities: next.probabilities, confidence };
}

/**
 * Forced decoding on an empty sequence: evaluates `tokens` as one prompt and returns the natural-log
 * probability the model gave each token from `answerStart` on where it stood, then that of the
 * likeliest of `endTokens` after the last one (the answer ending there; for an empty answer,
 * `answerStart` = `tokens.length`, that alone). Each is read from the full next-token distribution
 * of llama.cpp's greedy sampler, as `prefillSequence` reads the first token's.
 * @internal
 */
export async function forcedLogProbabilities(
  sequence: LlamaContextSequence,
  tokens: readonly Token[],
  answerStart: number,
  endTokens: readonly Token[],
): Promise<number[]> {
  if (answerStart < 1 || answerStart > tokens.length) {
    throw new Error(`answer start ${answerStart} is outside the ${tokens.length} tokens scored`);
  }
  const input: ControlledEvaluateInputItem[] = tokens.map((token, index) =>
    index >= answerStart - 1 ? [token, { generateNext: { probabilities: true } }] : token,
  );
  const outputs = await sequence.controlledEvaluate(input, { evaluationPriority: promptEvaluationPriority });
  const distribution = (index: number) => {
    const probabilities = outputs[index]?.next?.probabilities;
    if (probabilities === undefined) throw new Error(`llama.cpp returned no distribution at token ${index}`);
    return probabilities;
  };
  const logProbabilities: number[] = [];
  for (let index = answerStart; index < tokens.length; index++)
    logProbabilities.push(Math.log(distribution(index - 1).get(tokens[index]!) ?? 0));
  const last = distribution(tokens.length - 1);
  logProbabilities.push(Math.log(Math.max(0, ...endTokens.map((token) => last.get(token) ?? 0))));
  return logProbabilities;
}
