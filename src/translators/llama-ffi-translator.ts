/**
 * The small translator on the FFI llama engine: the router reads any feature views (see
 * `src/features/feature-views.ts`) from the one prefill the translation needs anyway; decoding then
 * continues greedily from the same KV cache.
 *
 * The engine runs in a worker thread of its own (`src/features/llama-ffi-worker-engine.ts`), so this
 * thread's event loop never waits on a decode. There, continuous batching decodes every request in
 * flight together — per step, one prompt chunk in a llama_decode of its own, then one llama_decode
 * holding the next token of each generating sequence — with the results of decoding each alone.
 * Prompts are tokenized here, exactly as `LlamaTranslator` does, and outputs detokenized here.
 * @module
 */
import path from "node:path";
import type { LlamaModel } from "node-llama-cpp";
import { EngineCallError, InputError, UsageError } from "../errors/index.js";
import {
  DEFAULT_FEATURE_VIEWS,
  type FeatureView,
  type FeatureViewSpan,
  featureViewSpans,
  featureViewsOf,
  featureViewsText,
  pooledWidth,
  resolveAutoSelection,
} from "../features/index.js";
import { type GenerationResult, LlamaFfiWorkerEngine } from "../features/llama-ffi-worker-engine.js";
import { assertViewsSupported, VIEW_ARCHITECTURES } from "../features/view-architectures.js";
import { ggufFingerprint, readGgufHeader } from "./gguf-fingerprint.js";
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
  llamaInstance,
  type PromptTokenizerModel,
  promptTokenIds,
  promptTokenizerModel,
} from "./llama-prompt.js";
import { defaultPromptTemplate, type PromptTemplate } from "./prompt-template.js";
import { assertOneStreamedRequest } from "./text-stream.js";
import type {
  DecodeOptions,
  FeatureIdentity,
  ProbedTranslator,
  Translation,
  TranslationRequest,
} from "./types.js";

const engineName = "llama-ffi";

/** Options of {@link LlamaFfiTranslator.create}. */
export interface LlamaFfiTranslatorOptions {
  /** GGUF model file. */
  modelPath: string;
  /** CPU threads for llama.cpp. Required: the default (all cores) starves everything else. */
  threads: number;
  /**
   * Token cells per sequence; a request needs prompt tokens + maxTokens of them. Defaults to
   * min(1024, the model's training context).
   */
  contextSize?: number;
  /**
   * Sequences of the one context: requests decoded together, and prefills held at once. Defaults to 4.
   */
  sequences?: number;
  /** Tokens per llama_decode call. Defaults to min(contextSize, 512), at least `sequences`. */
  batchSize?: number;
  /**
   * Feature views (see `feature-views.ts`): e.g. `last:final` (the final-norm state at the last
   * prompt token), `mean:8`, a comma list read in that order, the older `final` / `8` / `8,16,final`,
   * or `all`. Defaults to `last:final`.
   */
  layer?: string;
  /** Prompt template. Defaults to `defaultPromptTemplate`. */
  template?: PromptTemplate;
  /** Default maximum new tokens per request. Defaults to 256. */
  maxTokens?: number;
  /** Whether `prefill` computes the next-token entropy (else `entropy` is null). Defaults to true. */
  entropy?: boolean;
}

/** A prefill as `LlamaFfiTranslator` returns it: also exposes the exact prompt token ids (the same as `LlamaTranslator` evaluates). */
export type LlamaFfiPrefilled = PrefilledWithTokens<number>;

/** What of a model's GGUF header the view guard needs. */
export interface ViewGuardModel {
  /** GGUF `general.architecture`. */
  architecture: string;
  /** `<arch>.block_count`. */
  layerCount: number;
  /** Model name for messages. */
  modelId: string;
}

/**
 * Parses a selection into the model's views and checks them against the model, before any model is
 * loaded (llama.cpp aborts the process on some misuse, so nothing unsupported may reach it).
 * @throws UsageError for a malformed selection or a layer index outside 0…layerCount−1 (the message
 *   names the layer count); UnsupportedError for views the architecture cannot give.
 */
export function featureViewsFor(selection: string, model: ViewGuardModel): FeatureView[] {
  const readsViews = VIEW_ARCHITECTURES.has(model.architecture);
  const views = featureViewsOf(resolveAutoSelection(selection, readsViews), model.layerCount, model.modelId);
  assertViewsSupported(views, model.architecture, model.modelId);
  return views;
}

/** Wraps anything unexpected as an EngineCallError; our own errors pass through. */
function asEngineError(error: unknown): Error {
  return asEngineErrorOf(engineName, error);
}

/** A number from a GGUF header, or undefined when the key is missing or not a number. */
function headerNumber(metadata: Map<string, unknown>, key: string): number | undefined {
  const value = metadata.get(key);
  if (typeof value === "number") return value;
  if (typeof value === "bigint") return Number(value);
  return undefined;
}

/**
 * The small translator on the FFI llama engine: one prefill yields the selected views (concatenated,
 * see `featureIdentity.views`) and the next-token entropy, then greedy decoding (no repeat penalty)
 * continues from that KV cache. Prompts are tokenized exactly as `LlamaTranslator` does.
 *
 * At most `sequences` prefills are held or requests in flight; a prefill holds its sequence until
 * `continue()` ends or `release()` is called.
 */
export class LlamaFfiTranslator implements ProbedTranslator, AsyncDisposable {
  readonly engine = engineName;
  readonly reportsConfidence = true;
  readonly modelId: string;
  readonly featureIdentity: FeatureIdentity & { views: FeatureViewSpan[] };
  /** Token cells per sequence. */
  readonly contextSize: number;
  readonly #engine: LlamaFfiWorkerEngine;
  /** node-llama-cpp's vocabulary-only load of the same file: the prompt tokenizer and detokenizer. */
  readonly #vocabulary: LlamaModel;
  readonly #promptTokenizer: PromptTokenizerModel;
  readonly #views: FeatureView[];
  readonly #template: PromptTemplate;
  readonly #maxTokens: number;
  readonly #readEntropy: boolean;
  /** Sequence ids `0…sequences−1`, handed out lowest first. */
  readonly #pool: WaitingPool<number>;
  #isDisposed = false;
  #disposing: Promise<void> | undefined;

  private constructor(parts: {
    engine: LlamaFfiWorkerEngine;
    vocabulary: LlamaModel;
    modelId: string;
    views: FeatureView[];
    template: PromptTemplate;
    maxTokens: number;
    readEntropy: boolean;
    featureIdentity: FeatureIdentity & { views: FeatureViewSpan[] };
  }) {
    this.#engine = parts.engine;
    this.#vocabulary = parts.vocabulary;
    this.modelId = parts.modelId;
    this.#promptTokenizer = promptTokenizerModel(parts.vocabulary, parts.modelId);
    this.#views = parts.views;
    this.#template = parts.template;
    this.#maxTokens = parts.maxTokens;
    this.#readEntropy = parts.readEntropy;
    this.featureIdentity = parts.featureIdentity;
    this.contextSize = parts.engine.info.contextSize;
    const size = parts.engine.info.sequences;
    this.#pool = new WaitingPool(Array.from({ length: size }, (_, index) => size - 1 - index));
  }

  /**
   * Checks the options and the views against the GGUF header, then loads the model in a worker.
   * @throws UsageError for bad numeric options or a layer index out of range; UnsupportedError for
   *   views the architecture cannot give; InputError for an unreadable model file.
   */
  static async create(options: LlamaFfiTranslatorOptions): Promise<LlamaFfiTranslator> {
    assertPositiveInteger("threads", options.threads);
    const sequences = options.sequences ?? 4;
    const maxTokens = options.maxTokens ?? 256;
    assertPositiveInteger("sequences", sequences);
    assertPositiveInteger("maxTokens", maxTokens);
    if (options.contextSize !== undefined) assertPositiveInteger("contextSize", options.contextSize);
    if (options.batchSize !== undefined) assertPositiveInteger("batchSize", options.batchSize);
    const template = options.template ?? defaultPromptTemplate;
    const modelId = path.basename(options.modelPath);

    // The header alone decides whether the views can be read: nothing is loaded before that.
    const header = await readGgufHeader(options.modelPath);
    const architectureValue = header.metadata.get("general.architecture");
    const architecture = typeof architectureValue === "string" ? architectureValue : "";
    const layerCount = headerNumber(header.metadata, `${architecture}.block_count`);
    if (layerCount === undefined) {
      throw new InputError(`GGUF header has no ${architecture}.block_count`, { file: options.modelPath });
    }
    const views = featureViewsFor(options.layer ?? DEFAULT_FEATURE_VIEWS, {
      architecture,
      layerCount,
      modelId,
    });
    const trainContext = headerNumber(header.metadata, `${architecture}.context_length`) ?? 1024;
    const contextSize = options.contextSize ?? Math.min(1024, trainContext);
    assertRoomForPrompt(maxTokens, contextSize);
    const fingerprint = await ggufFingerprint(options.modelPath);

    // node-llama-cpp first: it tokenizes prompts (chat templates included) exactly as LlamaTranslator
    // does, and loading its binding first routes libllama's logs through its logger.
    const llama = await llamaInstance(engineName);
    const vocabulary = await loadModelFile(llama, { modelPath: options.modelPath, vocabOnly: true });
    let engine: LlamaFfiWorkerEngine;
    try {
      engine = await LlamaFfiWorkerEngine.open({
        modelPath: options.modelPath,
        threads: options.threads,
        contextSize,
        sequences,
        ...(options.batchSize !== undefined ? { batchSize: options.batchSize } : {}),
      });
    } catch (error) {
      await vocabulary.dispose();
      throw asEngineError(error);
    }
    const spans = featureViewSpans(views, (view) =>
      pooledWidth(view, view.layer === "final" ? engine.info.outputEmbeddingSize : engine.info.embeddingSize),
    );
    return new LlamaFfiTranslator({
      engine,
      vocabulary,
      modelId,
      views,
      template,
      maxTokens,
      readEntropy: options.entropy ?? true,
      featureIdentity: {
        fingerprint,
        arch: architecture,
        layer: featureViewsText(views),
        dim: spans.reduce((total, span) => total + span.dim, 0),
        template: template.text,
        views: spans,
      },
    });
  }

  /**
   * The exact token ids a request's prompt is evaluated as (see `promptTokenIds`); the same ids
   * `LlamaTranslator.tokenizePrompt` gives.
   * @throws InputError for empty text; UsageError for an unknown language code.
   */
  tokenizePrompt(request: TranslationRequest): number[] {
    this.#assertUsable();
    return promptTokenIds(this.#promptTokenizer, this.#template, request);
  }

  /** Plain translations (no features), decoded together with every other request in flight. */
  async translate(requests: TranslationRequest[], options: DecodeOptions = {}): Promise<Translation[]> {
    this.#assertUsable();
    assertOneStreamedRequest(requests.length, options.onText);
    const maxTokens = resolveMaxTokens(options, this.#maxTokens);
    // Validate everything before any evaluation: a bad request must not leave others half-decoded.
    const prompts = requests.map((request) => this.#checkedPromptTokens(request, maxTokens));
    return await Promise.all(
      prompts.map(async (tokens) => {
        const startedAt = performance.now();
        const sequenceId = await this.#pool.acquire();
        try {
          this.#assertUsable();
          const stream = textStreamFor(this.#vocabulary, options.onText);
          const result = await this.#engine.translate(sequenceId, tokens, {
            maxTokens,
            ...(options.signal ? { signal: options.signal } : {}),
            ...(stream ? { onTokens: (fresh: readonly number[]) => stream.push(fresh) } : {}),
            confidence: options.confidence === true,
          });
          return this.#translation(result, { promptTokens: tokens.length, startedAt }, stream);
        } catch (error) {
          throw asEngineError(error);
        } finally {
          this.#releaseSequence(sequenceId);
        }
      }),
    );
  }

  /**
   * Evaluates the prompt once and returns the views (concatenated in selection order, see
   * `featureIdentity.views`) and the next-token entropy; `continue()` decodes from that evaluation,
   * `release()` drops it.
   */
  async prefill(request: TranslationRequest): Promise<LlamaFfiPrefilled> {
    this.#assertUsable();
    const tokens = this.#checkedPromptTokens(request, this.#maxTokens);
    const startedAt = performance.now();
    const sequenceId = await this.#pool.acquire();
    let features: Float32Array;
    let entropy: number | null;
    try {
      this.#assertUsable();
      const result = await this.#engine.prefill(sequenceId, tokens, {
        views: this.#views,
        entropy: this.#readEntropy,
      });
      features = result.features;
      entropy = result.entropy;
      if (features.length !== this.featureIdentity.dim) {
        throw new EngineCallError(
          engineName,
          `hidden state has ${features.length} values, expected ${this.featureIdentity.dim}`,
          { isRetryable: false },
        );
      }
    } catch (error) {
      this.#releaseSequence(sequenceId);
      throw asEngineError(error);
    }
    const start = { promptTokens: tokens.length, startedAt };
    return heldPrefill({
      engineName,
      tokens,
      features,
      entropy: entropy ?? Number.NaN,
      contextSize: this.contextSize,
      defaultMaxTokens: this.#maxTokens,
      assertUsable: () => this.#assertUsable(),
      decode: async (maxTokens, options) => {
        const stream = textStreamFor(this.#vocabulary, options.onText);
        const result = await this.#engine.continueFrom(sequenceId, {
          maxTokens,
          ...(options.signal ? { signal: options.signal } : {}),
          ...(stream ? { onTokens: (fresh: readonly number[]) => stream.push(fresh) } : {}),
          confidence: options.confidence === true,
        });
        return this.#translation(result, start, stream);
      },
      releaseSequence: async () => this.#releaseSequence(sequenceId),
    });
  }

  /**
   * Fails requests in flight and those waiting for a sequence (UsageError), then frees the engine and
   * the tokenizer. Idempotent.
   */
  async dispose(): Promise<void> {
    this.#isDisposed = true;
    this.#pool.close(
      new UsageError(`LlamaFfiTranslator for ${this.modelId} was disposed while this request waited`),
    );
    this.#disposing ??= (async () => {
      await this.#engine.dispose();
      await this.#vocabulary.dispose();
    })();
    await this.#disposing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose();
  }

  #assertUsable(): void {
    if (this.#isDisposed) throw new UsageError(`LlamaFfiTranslator for ${this.modelId} is disposed`);
  }

  #checkedPromptTokens(request: TranslationRequest, maxTokens: number): number[] {
    const tokens = this.tokenizePrompt(request);
    assertPromptFits(tokens.length, maxTokens, this.contextSize, request.id);
    return tokens;
  }

  /** Clears the sequence's KV cells (the worker takes it before any later request) and hands the id on. */
  #releaseSequence(sequenceId: number): void {
    this.#engine.release(sequenceId);
    this.#pool.giveBack(sequenceId);
  }

  #translation(
    result: GenerationResult,
    start: { promptTokens: number; startedAt: number },
    stream: ReturnType<typeof textStreamFor>,
  ): Translation {
    const text = outputText(this.#vocabulary, result.tokens, stream);
    const translation = decodedTranslation(text, this.modelId, start, result.tokens, result.finishReason);
    if (result.logProbability === null) return translation;
    // Decoding steps: every generated token, and the end token the model chose when it stopped.
    const steps = result.tokens.length + (result.finishReason === "stop" ? 1 : 0);
    return { ...translation, meanLogProbability: steps > 0 ? result.logProbability / steps : null };
  }
}
