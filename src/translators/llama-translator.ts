import path from "node:path";
import type { LlamaContext, LlamaContextSequence, LlamaModel, Token } from "node-llama-cpp";
import { EngineCallError, RoutelmtError, UnsupportedError, UsageError } from "../errors/index.js";
import {
  DEFAULT_FEATURE_VIEWS,
  entropyOfProbabilities,
  featureViewSpans,
  featureViewsOf,
  normaliseFeatureViews,
} from "../features/index.js";
import {
  createGuardedContext,
  forcedLogProbabilities,
  prefillSequence,
} from "../features/llama-internals.js";
import { ggufFingerprint } from "./gguf-fingerprint.js";
import {
  asEngineError as asEngineErrorOf,
  assertPositiveInteger,
  assertPromptFits,
  assertRoomForPrompt,
  decodedTranslation,
  heldPrefill,
  loadModelFile,
  outputText,
  type PrefilledWithTokens,
  resolveMaxTokens,
  textStreamFor,
  WaitingPool,
} from "./llama-common.js";
import {
  continuationTokenIds,
  type PromptTokenizerModel,
  promptTokenIds,
  promptTokenizerModel,
  llamaInstance as sharedLlamaInstance,
} from "./llama-prompt.js";
import { defaultPromptTemplate, type PromptTemplate } from "./prompt-template.js";
import { assertOneStreamedRequest } from "./text-stream.js";
import type {
  DecodeOptions,
  FeatureIdentity,
  FinishReason,
  ProbedTranslator,
  Translation,
  TranslationRequest,
} from "./types.js";

const engineName = "llama";

/** Options of `LlamaTranslator.create`. */
export interface LlamaTranslatorOptions {
  /** GGUF model file. */
  modelPath: string;
  /** CPU threads for llama.cpp. Required: the default (all cores) starves everything else. */
  threads: number;
  /**
   * Token cells per sequence; a request needs prompt tokens + maxTokens of them. Defaults to
   * min(1024, the model's training context).
   */
  contextSize?: number;
  /** Sequences of the one context: requests decoded in parallel, and prefills held at once. Defaults to 4. */
  sequences?: number;
  /** Tokens per llama.cpp batch, shared by all sequences. Defaults to 512. */
  batchSize?: number;
  /**
   * Feature views; this engine reads only `last:final` (also spelled `final`). Defaults to `last:final`.
   */
  layer?: string;
  /** Prompt template. Defaults to `defaultPromptTemplate`. */
  template?: PromptTemplate;
  /** Default maximum new tokens per request. Defaults to 256. */
  maxTokens?: number;
  /**
   * Whether `prefill` computes the next-token entropy (else `entropy` is null). It costs a sort and
   * a copy of the whole vocabulary per prefill. Defaults to true.
   */
  entropy?: boolean;
  /**
   * Whether `prefill` reads the router's features. A translator that never prefills for features (a
   * large model) sets it false: its context then computes logits only where decoding needs them
   * instead of for every prompt token. Defaults to true.
   */
  readsFeatures?: boolean;
}

/** A prefill as `LlamaTranslator` returns it: also exposes the exact prompt token ids (part of the feature identity). */
export type LlamaPrefilled = PrefilledWithTokens<Token>;

export { renderChatPrompt } from "./llama-prompt.js";

/** One llama.cpp binding per process (shared with the FFI engine's tokenizer). */
function llamaInstance() {
  return sharedLlamaInstance(engineName);
}

/** Wraps anything node-llama-cpp throws; our own errors pass through. */
function asEngineError(error: unknown): Error {
  return asEngineErrorOf(engineName, error);
}

/**
 * Hands out the context's sequences, created once up front; waits when all are taken. Releasing
 * clears the sequence's KV cells before it goes back. (Disposing sequences instead would free
 * their ids only asynchronously, so a `getSequence()` right after could fail.)
 */
class SequencePool {
  private readonly pool: WaitingPool<LlamaContextSequence>;
  constructor(context: LlamaContext, size: number) {
    this.pool = new WaitingPool(Array.from({ length: size }, () => context.getSequence()));
  }

  acquire(): Promise<LlamaContextSequence> {
    return this.pool.acquire();
  }

  async release(sequence: LlamaContextSequence): Promise<void> {
    if (!sequence.disposed) await sequence.clearHistory();
    this.pool.giveBack(sequence);
  }

  /** Rejects requests waiting for a sequence, and later ones, with `error`. */
  close(error: Error): void {
    this.pool.close(error);
  }
}

/** What `decode` needs to know about a prompt that has been evaluated. */
interface DecodeStart {
  sequence: LlamaContextSequence;
  promptTokens: number;
  firstToken: Token;
  /** Probability of `firstToken` at the last prompt token, when the prefill read it. */
  firstConfidence: number | undefined;
  startedAt: number;
}

/**
 * The small translator, in process: a GGUF model on llama.cpp (CPU). One prefill of the prompt
 * yields the router's features (final hidden state at the last prompt token) and the next-token
 * entropy; decoding then continues from that same KV cache. Greedy, no repeat penalty.
 *
 * At most `sequences` requests are in flight; a prefill holds its sequence until `continue()` ends
 * or `release()` is called, so callers must not hold more prefills than sequences while waiting
 * for yet another one.
 */
export class LlamaTranslator implements ProbedTranslator, AsyncDisposable {
  readonly engine = engineName;
  readonly reportsConfidence = true;
  readonly modelId: string;
  readonly featureIdentity: FeatureIdentity;
  /** Token cells per sequence. */
  readonly contextSize: number;
  private readonly pool: SequencePool;
  private readonly eogCheck: (token: Token) => boolean;
  private readonly promptTokenizer: PromptTokenizerModel;
  private isDisposed = false;
  private disposing: Promise<void> | undefined;

  private constructor(
    private readonly model: LlamaModel,
    private readonly context: LlamaContext,
    private readonly template: PromptTemplate,
    private readonly maxTokens: number,
    private readonly readEntropy: boolean,
    private readonly readsFeatures: boolean,
    sequences: number,
    featureIdentity: FeatureIdentity,
  ) {
    this.modelId = path.basename(model.filename ?? "model.gguf");
    this.featureIdentity = featureIdentity;
    this.contextSize = context.contextSize;
    this.pool = new SequencePool(context, sequences);
    this.eogCheck = (token) => model.isEogToken(token);
    this.promptTokenizer = promptTokenizerModel(model, this.modelId);
  }

  /**
   * Loads the model and creates its one context.
   * @throws UnsupportedError for views other than `last:final` or a model whose final hidden state
   *   cannot be read; UsageError for bad numeric options; InputError for an unreadable model file.
   */
  static async create(options: LlamaTranslatorOptions): Promise<LlamaTranslator> {
    const views = normaliseFeatureViews(options.layer ?? DEFAULT_FEATURE_VIEWS);
    if (views !== DEFAULT_FEATURE_VIEWS) {
      throw new UnsupportedError(
        `feature views "${views}" are not supported by the node-llama-cpp engine: it reads only last:final (the final hidden state at the last prompt token); the ffi engine reads every view`,
      );
    }
    assertPositiveInteger("threads", options.threads);
    const sequences = options.sequences ?? 4;
    const batchSize = options.batchSize ?? 512;
    const maxTokens = options.maxTokens ?? 256;
    assertPositiveInteger("sequences", sequences);
    assertPositiveInteger("batchSize", batchSize);
    assertPositiveInteger("maxTokens", maxTokens);
    if (options.contextSize !== undefined) assertPositiveInteger("contextSize", options.contextSize);
    const template = options.template ?? defaultPromptTemplate;
    // Reading the header first gives a clean InputError for a missing or non-GGUF file.
    const fingerprint = await ggufFingerprint(options.modelPath);
    const llama = await llamaInstance();
    const model = await loadModelFile(llama, { modelPath: options.modelPath });
    try {
      const contextSize = options.contextSize ?? Math.min(1024, model.trainContextSize);
      assertRoomForPrompt(maxTokens, contextSize);
      const readsFeatures = options.readsFeatures ?? true;
      const context = await createGuardedContext(model, {
        contextSize,
        batchSize,
        sequences,
        threads: options.threads,
        readsFeatures,
      });
      const identity: FeatureIdentity = {
        fingerprint,
        arch: model.architecture,
        layer: views,
        dim: model.embeddingVectorSize,
        template: template.text,
        views: featureViewSpans(featureViewsOf(views, 1), () => model.embeddingVectorSize),
      };
      return new LlamaTranslator(
        model,
        context,
        template,
        maxTokens,
        options.entropy ?? true,
        readsFeatures,
        sequences,
        identity,
      );
    } catch (error) {
      await model.dispose();
      throw error instanceof RoutelmtError ? error : asEngineError(error);
    }
  }

  /**
   * The exact token ids a request's prompt is evaluated as: the rendered template wrapped as a user
   * message in the model's chat template when the GGUF has one, else `[BOS if the model adds it] +
   * tokenize(prompt)`. Validates the request (non-empty text, known languages, tokens in vocabulary).
   */
  tokenizePrompt(request: TranslationRequest): Token[] {
    this.assertUsable();
    return promptTokenIds(this.promptTokenizer, this.template, request);
  }

  /** Plain translations, decoded in parallel over the context's sequences. */
  async translate(requests: TranslationRequest[], options: DecodeOptions = {}): Promise<Translation[]> {
    this.assertUsable();
    assertOneStreamedRequest(requests.length, options.onText);
    const maxTokens = resolveMaxTokens(options, this.maxTokens);
    // Validate everything before any evaluation: a bad request must not leave others half-decoded.
    const prompts = requests.map((request) => this.checkedPromptTokens(request, maxTokens));
    return await Promise.all(
      prompts.map(async (tokens) => {
        const startedAt = performance.now();
        const sequence = await this.pool.acquire();
        try {
          const { nextToken, confidence } = await prefillSequence(
            sequence,
            tokens,
            false,
            false,
            options.confidence === true,
          );
          return await this.decode(
            {
              sequence,
              promptTokens: tokens.length,
              firstToken: nextToken,
              firstConfidence: confidence,
              startedAt,
            },
            maxTokens,
            options,
          );
        } catch (error) {
          throw asEngineError(error);
        } finally {
          await this.pool.release(sequence);
        }
      }),
    );
  }

  /**
   * Evaluates the prompt once and returns its features and entropy; `continue()` decodes from that
   * evaluation, `release()` drops it.
   */
  async prefill(request: TranslationRequest): Promise<LlamaPrefilled> {
    this.assertUsable();
    if (!this.readsFeatures) {
      throw new UsageError(`LlamaTranslator for ${this.modelId} was created without readsFeatures`);
    }
    const tokens = this.checkedPromptTokens(request, this.maxTokens);
    const startedAt = performance.now();
    const sequence = await this.pool.acquire();
    let prefill: Awaited<ReturnType<typeof prefillSequence>>;
    try {
      // The first token's confidence, for a continue() that asks for it: free when the entropy's
      // distribution is read anyway.
      prefill = await prefillSequence(sequence, tokens, true, this.readEntropy, true);
    } catch (error) {
      await this.pool.release(sequence);
      throw asEngineError(error);
    }
    const features = prefill.features ?? new Float32Array();
    if (features.length !== this.featureIdentity.dim) {
      await this.pool.release(sequence);
      throw new EngineCallError(
        engineName,
        `hidden state has ${features.length} values, expected ${this.featureIdentity.dim}`,
        { isRetryable: false },
      );
    }
    const entropy = prefill.probabilities
      ? entropyOfProbabilities(prefill.probabilities.values())
      : Number.NaN;
    const start: DecodeStart = {
      sequence,
      promptTokens: tokens.length,
      firstToken: prefill.nextToken,
      firstConfidence: prefill.confidence,
      startedAt,
    };
    return heldPrefill({
      engineName,
      tokens,
      features,
      entropy,
      contextSize: this.contextSize,
      defaultMaxTokens: this.maxTokens,
      assertUsable: () => this.assertUsable(),
      decode: (maxTokens, options) => this.decode(start, maxTokens, options),
      releaseSequence: () => this.pool.release(sequence),
    });
  }

  /**
   * The mean log-probability this model gives `translation` as its answer to `request` (see
   * `Translator.scoreTranslation`): one evaluation of prompt and answer on a sequence of the pool,
   * batched alone like any prompt, so the score does not depend on what else runs.
   */
  async scoreTranslation(request: TranslationRequest, translation: string): Promise<number> {
    this.assertUsable();
    const { tokens, answerStart } = continuationTokenIds(
      this.promptTokenizer,
      this.template,
      request,
      translation,
    );
    assertPromptFits(tokens.length, 1, this.contextSize, request.id);
    const endTokens = [this.model.tokens.eos, this.model.tokens.eot].filter(
      (token): token is Token => token !== null,
    );
    const sequence = await this.pool.acquire();
    try {
      const logProbabilities = await forcedLogProbabilities(sequence, tokens, answerStart, endTokens);
      return logProbabilities.reduce((sum, value) => sum + value, 0) / logProbabilities.length;
    } catch (error) {
      throw asEngineError(error);
    } finally {
      await this.pool.release(sequence);
    }
  }

  /** Frees the context and the model (the process-wide llama.cpp binding stays). Idempotent. */
  async dispose(): Promise<void> {
    this.isDisposed = true;
    this.pool.close(
      new UsageError(`LlamaTranslator for ${this.modelId} was disposed while this request waited`),
    );
    this.disposing ??= (async () => {
      await this.context.dispose();
      await this.model.dispose();
    })();
    await this.disposing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose();
  }

  private assertUsable(): void {
    if (this.isDisposed) throw new UsageError(`LlamaTranslator for ${this.modelId} is disposed`);
  }

  private checkedPromptTokens(request: TranslationRequest, maxTokens: number): Token[] {
    const tokens = this.tokenizePrompt(request);
    assertPromptFits(tokens.length, maxTokens, this.contextSize, request.id);
    return tokens;
  }

  /**
   * Greedy decoding from an evaluated prompt until end of generation, `maxTokens` or abort; with
   * `onText`, text streams out token by token (see `text-stream.ts`); with `confidence`, each
   * chosen token's probability is read too (the end token included) for `meanLogProbability`.
   */
  private async decode(start: DecodeStart, maxTokens: number, options: DecodeOptions): Promise<Translation> {
    const { signal } = options;
    const stream = textStreamFor(this.model, options.onText);
    const output: Token[] = [];
    const accept = (token: Token) => {
      output.push(token);
      stream?.push([token]);
    };
    const scoring = options.confidence === true && start.firstConfidence !== undefined;
    let logProbability = 0;
    let steps = 0;
    const score = (confidence: number | undefined) => {
      logProbability += Math.log(confidence ?? Number.NaN);
      steps++;
    };
    let finishReason: FinishReason = "stop";
    if (signal?.aborted) finishReason = "abort";
    else {
      if (scoring) score(start.firstConfidence);
      if (!this.eogCheck(start.firstToken)) {
        accept(start.firstToken);
        finishReason = "length";
        if (output.length < maxTokens) {
          // No repeat penalty is passed. Scoring, the end token is yielded (with its probability) and
          // ends the loop here; otherwise evaluate() stops by itself before it.
          const generated = scoring
            ? start.sequence.evaluateWithMetadata(
                [start.firstToken],
                { confidence: true },
                { temperature: 0, yieldEogToken: true },
              )
            : start.sequence.evaluate([start.firstToken], { temperature: 0 });
          for await (const step of generated) {
            if (signal?.aborted) {
              finishReason = "abort";
              break;
            }
            const token = typeof step === "number" ? step : step.token;
            if (typeof step !== "number") score(step.confidence);
            if (this.eogCheck(token)) break;
            accept(token);
            if (output.length >= maxTokens) break;
          }
        }
        if (finishReason === "length" && output.length < maxTokens) finishReason = "stop";
      }
    }
    const text = outputText(this.model, output, stream);
    const translation = decodedTranslation(text, this.modelId, start, output, finishReason);
    if (!scoring) return translation;
    return { ...translation, meanLogProbability: steps > 0 ? logProbability / steps : null };
  }
}
