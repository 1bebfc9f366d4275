/**
 * The small translator on the FFI llama engine (`src/features/llama-ffi-engine.ts`): the router can
 * read any layer's input at the last prompt token, the final-norm state, or several of them
 * concatenated, from the one prefill the translation needs anyway; decoding then continues greedily
 * from the same KV cache.
 *
 * Engine calls are synchronous: each blocks the event loop while llama.cpp runs. They go through a
 * FIFO queue that waits for a turn of the event loop (`setImmediate`) before each call, and long
 * generations are decoded in slices of a few tokens, each its own queued call. So a server keeps
 * answering between slices, and concurrent generations take turns slice by slice instead of one
 * finishing before the next starts. The price is one event-loop turn per slice (microseconds) and
 * no batching: concurrent requests are decoded one call at a time, so throughput is that of one
 * sequence. A prompt's prefill is still one uninterrupted call, as long as the prompt's evaluation.
 * @module
 */
import path from "node:path";
import type { LlamaModel } from "node-llama-cpp";
import { EngineCallError, InputError, UnsupportedError, UsageError } from "../errors/index.js";
import { entropyOfLogits, normaliseLayerSelection } from "../features/index.js";
import {
  argmax,
  type FeatureLayer,
  LAYER_INPUT_ARCHITECTURES,
  LlamaFfiEngine,
} from "../features/llama-ffi-engine.js";
import { ggufFingerprint, readGgufHeader } from "./gguf-fingerprint.js";
import {
  asEngineError as asEngineErrorOf,
  assertPositiveInteger,
  assertPromptFits,
  assertRoomForPrompt,
  decodedTranslation,
  heldPrefill,
  loadModelFile,
  type PrefilledWithTokens,
  resolveMaxTokens,
  WaitingPool,
} from "./llama-common.js";
import {
  llamaInstance,
  type PromptTokenizerModel,
  promptTokenIds,
  promptTokenizerModel,
} from "./llama-prompt.js";
import { defaultPromptTemplate, type PromptTemplate } from "./prompt-template.js";
import type {
  DecodeOptions,
  FeatureIdentity,
  FinishReason,
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
  /** Prefills held (or requests in flight) at once; each owns a sequence of the one context. Defaults to 4. */
  sequences?: number;
  /**
   * Layer selection: `final` (the final-norm state), a layer index `i` (the residual stream entering
   * layer `i`; 0 = token embeddings), or a comma list such as `8,16,final` whose states are
   * concatenated in the listed order. Defaults to `final`.
   */
  layer?: string;
  /** Prompt template. Defaults to `defaultPromptTemplate`. */
  template?: PromptTemplate;
  /** Default maximum new tokens per request. Defaults to 256. */
  maxTokens?: number;
  /** Whether `prefill` computes the next-token entropy (else `entropy` is null). Defaults to true. */
  entropy?: boolean;
  /**
   * Tokens decoded per engine call before the event loop gets a turn. Smaller keeps a server more
   * responsive during long generations; larger saves the (small) per-call overhead. Defaults to 4.
   */
  decodeSliceTokens?: number;
}

/** A prefill as `LlamaFfiTranslator` returns it: also exposes the exact prompt token ids (the same as `LlamaTranslator` evaluates). */
export type LlamaFfiPrefilled = PrefilledWithTokens<number>;

/** What of a model's GGUF header the layer guard needs. */
export interface LayerGuardModel {
  /** GGUF `general.architecture`. */
  architecture: string;
  /** `<arch>.block_count`. */
  layerCount: number;
  /** Model name for messages. */
  modelId: string;
}

/**
 * Parses a normalised layer selection into the engine's layer list and checks it against the model,
 * before any model is loaded (llama.cpp aborts the process when asked for a layer input its graph
 * does not record).
 * @throws UsageError for an index outside 0…layerCount−1 (the message names the layer count);
 *   UnsupportedError for a layer index on an architecture outside `LAYER_INPUT_ARCHITECTURES`.
 */
export function featureLayersFor(selection: string, model: LayerGuardModel): FeatureLayer[] {
  const layers: FeatureLayer[] = normaliseLayerSelection(selection)
    .split(",")
    .map((entry) => (entry === "final" ? "final" : Number(entry)));
  for (const layer of layers) {
    if (layer === "final") continue;
    if (layer >= model.layerCount) {
      throw new UsageError(
        `layer ${layer} is out of range: ${model.modelId} has ${model.layerCount} layers (indices 0…${model.layerCount - 1}, or "final")`,
      );
    }
    if (!LAYER_INPUT_ARCHITECTURES.has(model.architecture)) {
      throw new UnsupportedError(
        `layer ${layer} cannot be read from ${model.modelId}: llama.cpp does not record layer inputs for architecture "${model.architecture}" ` +
          `(only ${[...LAYER_INPUT_ARCHITECTURES].join(", ")}); layer "final" works for every architecture`,
      );
    }
  }
  return layers;
}

/** Concatenates vectors in order into one. */
export function concatenateFeatures(parts: readonly Float32Array[]): Float32Array {
  const joined = new Float32Array(parts.reduce((total, part) => total + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    joined.set(part, offset);
    offset += part.length;
  }
  return joined;
}

/**
 * Runs synchronous work one job at a time in the order asked, each after a turn of the event loop
 * (so timers and I/O run between jobs). A failed job rejects its own promise only.
 * @internal
 */
export class SerialQueue {
  #tail: Promise<unknown> = Promise.resolve();

  run<T>(work: () => T): Promise<T> {
    const result = this.#tail.then(() => new Promise<void>((resolve) => setImmediate(resolve))).then(work);
    this.#tail = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }
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

/** What `decode` needs to know about an evaluated prompt. */
interface DecodeStart {
  sequenceId: number;
  promptTokens: number;
  firstToken: number;
  startedAt: number;
}

/**
 * The small translator on the FFI llama engine: one prefill yields the selected layers' states at
 * the last prompt token (concatenated) and the next-token entropy, then greedy decoding (no repeat
 * penalty) continues from that KV cache. Prompts are tokenized exactly as `LlamaTranslator` does.
 *
 * At most `sequences` prefills are held or requests in flight; a prefill holds its sequence until
 * `continue()` ends or `release()` is called. See the module comment for how engine calls are
 * scheduled.
 */
export class LlamaFfiTranslator implements ProbedTranslator, AsyncDisposable {
  readonly engine = engineName;
  readonly modelId: string;
  readonly featureIdentity: FeatureIdentity;
  /** Token cells per sequence. */
  readonly contextSize: number;
  readonly #engine: LlamaFfiEngine;
  /** node-llama-cpp's vocabulary-only load of the same file: the prompt tokenizer and detokenizer. */
  readonly #vocabulary: LlamaModel;
  readonly #promptTokenizer: PromptTokenizerModel;
  readonly #layers: FeatureLayer[];
  readonly #template: PromptTemplate;
  readonly #maxTokens: number;
  readonly #readEntropy: boolean;
  readonly #sliceTokens: number;
  readonly #queue = new SerialQueue();
  /** Sequence ids `0…sequences−1`, handed out lowest first. */
  readonly #pool: WaitingPool<number>;
  #isDisposed = false;
  #disposing: Promise<void> | undefined;

  private constructor(parts: {
    engine: LlamaFfiEngine;
    vocabulary: LlamaModel;
    modelId: string;
    layers: FeatureLayer[];
    template: PromptTemplate;
    maxTokens: number;
    readEntropy: boolean;
    sliceTokens: number;
    featureIdentity: FeatureIdentity;
  }) {
    this.#engine = parts.engine;
    this.#vocabulary = parts.vocabulary;
    this.modelId = parts.modelId;
    this.#promptTokenizer = promptTokenizerModel(parts.vocabulary, parts.modelId);
    this.#layers = parts.layers;
    this.#template = parts.template;
    this.#maxTokens = parts.maxTokens;
    this.#readEntropy = parts.readEntropy;
    this.#sliceTokens = parts.sliceTokens;
    this.featureIdentity = parts.featureIdentity;
    this.contextSize = parts.engine.contextSize;
    const size = parts.engine.sequences;
    this.#pool = new WaitingPool(Array.from({ length: size }, (_, index) => size - 1 - index));
  }

  /**
   * Checks the options and the layer selection against the GGUF header, then loads the model.
   * @throws UsageError for bad numeric options or a layer index out of range; UnsupportedError for a
   *   layer index on an architecture whose layer inputs llama.cpp does not record; InputError for an
   *   unreadable model file.
   */
  static async create(options: LlamaFfiTranslatorOptions): Promise<LlamaFfiTranslator> {
    assertPositiveInteger("threads", options.threads);
    const sequences = options.sequences ?? 4;
    const maxTokens = options.maxTokens ?? 256;
    const sliceTokens = options.decodeSliceTokens ?? 4;
    assertPositiveInteger("sequences", sequences);
    assertPositiveInteger("maxTokens", maxTokens);
    assertPositiveInteger("decodeSliceTokens", sliceTokens);
    if (options.contextSize !== undefined) assertPositiveInteger("contextSize", options.contextSize);
    const template = options.template ?? defaultPromptTemplate;
    const modelId = path.basename(options.modelPath);

    // The header alone decides whether the selection can be read: nothing is loaded before that.
    const header = await readGgufHeader(options.modelPath);
    const architectureValue = header.metadata.get("general.architecture");
    const architecture = typeof architectureValue === "string" ? architectureValue : "";
    const layerCount = headerNumber(header.metadata, `${architecture}.block_count`);
    if (layerCount === undefined) {
      throw new InputError(`GGUF header has no ${architecture}.block_count`, { file: options.modelPath });
    }
    const normalisedLayer = normaliseLayerSelection(options.layer ?? "final");
    const layers = featureLayersFor(normalisedLayer, { architecture, layerCount, modelId });
    const trainContext = headerNumber(header.metadata, `${architecture}.context_length`) ?? 1024;
    const contextSize = options.contextSize ?? Math.min(1024, trainContext);
    assertRoomForPrompt(maxTokens, contextSize);
    const fingerprint = await ggufFingerprint(options.modelPath);

    // node-llama-cpp first: it tokenizes prompts (chat templates included) exactly as LlamaTranslator
    // does, and loading its binding first routes libllama's logs through its logger.
    const llama = await llamaInstance(engineName);
    const vocabulary = await loadModelFile(llama, { modelPath: options.modelPath, vocabOnly: true });
    let engine: LlamaFfiEngine;
    try {
      engine = await LlamaFfiEngine.open({
        modelPath: options.modelPath,
        threads: options.threads,
        contextSize,
        sequences,
      });
    } catch (error) {
      await vocabulary.dispose();
      throw asEngineError(error);
    }
    const dim = layers.reduce<number>(
      (total, layer) => total + (layer === "final" ? engine.outputEmbeddingSize : engine.embeddingSize),
      0,
    );
    return new LlamaFfiTranslator({
      engine,
      vocabulary,
      modelId,
      layers,
      template,
      maxTokens,
      readEntropy: options.entropy ?? true,
      sliceTokens,
      featureIdentity: {
        fingerprint,
        arch: architecture,
        layer: normalisedLayer,
        dim,
        template: template.text,
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

  /**
   * Plain translations (no features). Requests take turns on the engine; see the module comment.
   * The prompt is evaluated in one decode, whereas a feature prefill reading `final` decodes its last
   * token on its own; logits then differ only by float rounding (under 1e-4 in the engine's tests).
   */
  async translate(requests: TranslationRequest[], options: DecodeOptions = {}): Promise<Translation[]> {
    this.#assertUsable();
    const maxTokens = resolveMaxTokens(options, this.#maxTokens);
    // Validate everything before any evaluation: a bad request must not leave others half-decoded.
    const prompts = requests.map((request) => this.#checkedPromptTokens(request, maxTokens));
    return await Promise.all(
      prompts.map(async (tokens) => {
        const startedAt = performance.now();
        const sequenceId = await this.#pool.acquire();
        try {
          const { logitsLast } = await this.#queue.run(() => this.#engine.prefill(sequenceId, tokens));
          return await this.#decode(
            { sequenceId, promptTokens: tokens.length, firstToken: argmax(logitsLast), startedAt },
            maxTokens,
            options.signal,
          );
        } catch (error) {
          throw asEngineError(error);
        } finally {
          await this.#releaseSequence(sequenceId);
        }
      }),
    );
  }

  /**
   * Evaluates the prompt once and returns the selected layers' states (concatenated in selection
   * order) and the next-token entropy; `continue()` decodes from that evaluation, `release()` drops it.
   */
  async prefill(request: TranslationRequest): Promise<LlamaFfiPrefilled> {
    this.#assertUsable();
    const tokens = this.#checkedPromptTokens(request, this.#maxTokens);
    const startedAt = performance.now();
    const sequenceId = await this.#pool.acquire();
    let features: Float32Array;
    let logitsLast: Float32Array;
    try {
      const result = await this.#queue.run(() =>
        this.#engine.prefill(sequenceId, tokens, { layers: this.#layers }),
      );
      features = concatenateFeatures(result.features);
      logitsLast = result.logitsLast;
      if (features.length !== this.featureIdentity.dim) {
        throw new EngineCallError(
          engineName,
          `hidden state has ${features.length} values, expected ${this.featureIdentity.dim}`,
          { isRetryable: false },
        );
      }
    } catch (error) {
      await this.#releaseSequence(sequenceId);
      throw asEngineError(error);
    }
    const entropy = this.#readEntropy ? entropyOfLogits(logitsLast) : Number.NaN;
    const start: DecodeStart = {
      sequenceId,
      promptTokens: tokens.length,
      firstToken: argmax(logitsLast),
      startedAt,
    };
    return heldPrefill({
      engineName,
      tokens,
      features,
      entropy,
      contextSize: this.contextSize,
      defaultMaxTokens: this.#maxTokens,
      assertUsable: () => this.#assertUsable(),
      decode: (maxTokens, signal) => this.#decode(start, maxTokens, signal),
      releaseSequence: () => this.#releaseSequence(sequenceId),
    });
  }

  /** Frees the engine and the tokenizer after engine calls already queued. Idempotent. */
  async dispose(): Promise<void> {
    this.#isDisposed = true;
    this.#disposing ??= (async () => {
      await this.#queue.run(() => this.#engine.dispose());
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

  /** Clears the sequence's KV cells (unless the engine is gone) and hands the id to the next waiter. */
  async #releaseSequence(sequenceId: number): Promise<void> {
    try {
      await this.#queue.run(() => {
        if (!this.#isDisposed) this.#engine.releaseSequence(sequenceId);
      });
    } finally {
      this.#pool.giveBack(sequenceId);
    }
  }

  /**
   * Greedy decoding from an evaluated prompt until end of generation, `maxTokens` or abort, in
   * slices of `decodeSliceTokens` tokens. The engine returns a slice's last token without decoding
   * it, so each later slice starts by decoding that token (and drops it from its result).
   */
  async #decode(
    start: DecodeStart,
    maxTokens: number,
    signal: AbortSignal | undefined,
  ): Promise<Translation> {
    const output: number[] = [];
    let finishReason: FinishReason = "stop";
    let pending = start.firstToken;
    let isFirstSlice = true;
    for (;;) {
      if (signal?.aborted) {
        finishReason = "abort";
        break;
      }
      const wanted = Math.min(this.#sliceTokens, maxTokens - output.length);
      const carried = isFirstSlice ? 0 : 1;
      const slice = await this.#queue.run(() => {
        this.#assertUsable();
        return this.#engine.decodeGreedy(start.sequenceId, pending, wanted + carried);
      });
      isFirstSlice = false;
      const fresh = slice.slice(carried);
      output.push(...fresh);
      // Fewer tokens than asked: the next one ended the generation (the prompt-length guard keeps
      // the context from filling before maxTokens).
      if (fresh.length < wanted) break;
      if (output.length >= maxTokens) {
        finishReason = "length";
        break;
      }
      pending = output[output.length - 1] as number;
    }
    return decodedTranslation(this.#vocabulary, this.modelId, start, output, finishReason);
  }
}
