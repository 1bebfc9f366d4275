/**
 * A minimal llama.cpp engine over node-llama-cpp's own libllama (through `llama-ffi.ts`): it evaluates
 * prompts, reads feature views (see `feature-views.ts`) during a prompt's own prefill, and decodes
 * batches holding several sequences, each output read by its explicit batch index.
 *
 * **How views are read.** The context is created with llama.cpp's eval callback (`cb_eval`), which ggml
 * calls for every node of every compute graph, on the thread running `llama_decode`. The graph builders
 * name the tensors a view needs: the residual stream leaving layer i is `l_out-i` (so the input of layer
 * N ≥ 1 is `l_out-(N−1)`), the input of layer 0 is the architecture's embedding output (`embd`, or
 * `inp_scaled` for Gemma, which scales it first), and the final norm's output is `result_norm`. When a
 * decode reads views, the callback answers "wanted" for those names and copies their rows as soon as
 * they are computed; otherwise it answers "no" at once, which is all a plain decode costs.
 *
 * Two facts shape the prefill. (1) llama.cpp drops every non-output row before the last layer
 * (`inp_out_ids`), so `result_norm` holds output rows only: `last:final` reads the last prompt token's
 * row (an output anyway: its logits give the first generated token), and `mean:final` makes every
 * prompt token an output — which also computes logits for all of them (a vocabulary-sized matrix
 * product per prompt token). Layer views (`l_out-N` below the last layer, `embd`) hold every row.
 * (2) The callback sees a ubatch's rows in ubatch order, which is the batch's order only when the batch
 * holds one sequence. So a view-reading prefill gets `llama_decode` calls of its own, its prompt split
 * into chunks of at most one ubatch; decode steps of several sequences share batches
 * ({@link LlamaFfiEngine.decodeBatch}).
 *
 * Every method runs synchronously on the calling thread; the engine lives in a worker thread (see
 * `llama-ffi-worker.ts`) so decoding never blocks the event loop of the process that serves requests.
 *
 * @internal
 */

import { EngineCallError, InputError, UsageError } from "../errors/index.js";
import type { FeatureView } from "./feature-views.js";
import { entropyOfLogits } from "./index.js";
import {
  GGML_TYPE_F32,
  type LlamaBatch,
  type LlamaFfi,
  loadLlamaFfi,
  type NativePointer,
  type TensorAddress,
} from "./llama-ffi.js";
import { argmax, logSoftmaxAt, RowPooler } from "./pooling.js";
import { assertViewsSupported, VIEW_ARCHITECTURES } from "./view-architectures.js";

/** Options of {@link LlamaFfiEngine.open}. */
export interface LlamaFfiEngineOptions {
  /** GGUF file of the (small) model. */
  modelPath: string;
  /** CPU threads for prompt and generation. Default 1. */
  threads?: number;
  /** Token capacity of each sequence (prompt + generated). Default 512. */
  contextSize?: number;
  /** Number of sequences that can hold state at once (ids `0 … sequences-1`). Default 1. */
  sequences?: number;
  /**
   * Tokens per `llama_decode` call (also the ubatch size, so a single-sequence decode is one graph).
   * Default: min(contextSize, 512), and at least `sequences` (a decode step of every sequence).
   */
  batchSize?: number;
  /** Folder holding libllama; default: node-llama-cpp's prebuilt linux-x64 binaries. */
  libraryDir?: string;
  /**
   * Whether to install the eval callback that reads views. Without it a decode calls no JS per graph
   * node, and `prefill` reads only `last:final` through the embeddings output. Default true.
   */
  readsViews?: boolean;
}

/** Options of {@link LlamaFfiEngine.prefill}. */
export interface PrefillOptions {
  /** Views to read, in this order. Default: none (a plain prompt evaluation). */
  views?: readonly FeatureView[];
  /** Whether to compute the next-token entropy at the last prompt token. Default false. */
  entropy?: boolean;
  /** Whether to return a copy of the last prompt token's logits (for tests). Default false. */
  keepLogits?: boolean;
}

/** What {@link LlamaFfiEngine.prefill} returns. */
export interface PrefillResult {
  /** One vector per requested view, in request order (copies, safe to keep). */
  features: Float32Array[];
  /** The greedy next token after the prompt. */
  firstToken: number;
  /** Entropy (nats) of the next-token distribution, or null when not asked for. */
  entropy: number | null;
  /** Logits at the last prompt token, when `keepLogits`. */
  logits?: Float32Array;
}

/** One sequence's tokens in a shared batch. */
export interface BatchEntry {
  sequenceId: number;
  /** Tokens continuing the sequence from its current position. */
  tokens: readonly number[];
  /** Whether the last token is an output (its greedy next token is returned). */
  outputLast: boolean;
  /**
   * Whether to add the output token's log-probability to the sequence's sum
   * ({@link LlamaFfiEngine.generatedLogProbability}): a pass over the vocabulary, so only when asked.
   */
  scoreOutput?: boolean;
}

const ENGINE_NAME = "llama-ffi";
/** llama.cpp's LLAMA_POOLING_TYPE_NONE: per-token embeddings. */
const POOLING_NONE = 0;
/** llama.cpp's LLAMA_FLASH_ATTN_TYPE_AUTO (on where the backend has it, as on CPU) and _DISABLED. */
const FLASH_ATTENTION_AUTO = -1;
const FLASH_ATTENTION_DISABLED = 0;
/** Architectures node-llama-cpp 3.21.1 runs without flash attention (`GgufInsights`). */
const NO_FLASH_ATTENTION_ARCHITECTURES: ReadonlySet<string> = new Set(["gemma2"]);
/** Largest batch chosen by default; longer prompts are decoded in several calls. */
const DEFAULT_MAX_BATCH = 512;

/** Where one wanted tensor's rows go during a view-reading decode. */
interface TensorRead {
  width: number;
  expectedRows: number;
  poolers: RowPooler[];
  seen: number;
}

/**
 * The eval callback's state. Between view-reading decodes it holds nothing and the callback answers
 * "no" without looking at the tensor, so a plain decode pays one call per graph node and no more.
 * Errors are kept and rethrown after the decode: a JS exception in a koffi callback returns false to
 * C, which on a computed node would silently stop the graph half-way.
 */
class ViewCapture {
  #reads: Map<string, TensorRead> | undefined;
  #failure: Error | undefined;
  #scratch = new Float32Array(0);
  readonly #ffi: LlamaFfi;

  constructor(ffi: LlamaFfi) {
    this.#ffi = ffi;
  }

  readonly onEval = (tensor: TensorAddress, ask: boolean): boolean => {
    const reads = this.#reads;
    if (reads === undefined) return false;
    try {
      const read = reads.get(this.#ffi.tensorName(tensor));
      if (ask || read === undefined) return read !== undefined;
      this.#copyRows(tensor, read);
    } catch (error) {
      this.#failure ??= error as Error;
    }
    return true;
  };

  /** Starts capturing the named tensors for the next decode. */
  begin(reads: Map<string, TensorRead>): void {
    this.#reads = reads;
    this.#failure = undefined;
  }

  /**
   * Stops capturing and checks that each wanted tensor was computed exactly once with the expected rows.
   * @throws EngineCallError otherwise (a graph that does not name its tensors as expected).
   */
  end(): void {
    const reads = this.#reads;
    this.#reads = undefined;
    if (this.#failure !== undefined) {
      throw new EngineCallError(ENGINE_NAME, `reading a feature view failed: ${this.#failure.message}`, {
        isRetryable: false,
        cause: this.#failure,
      });
    }
    for (const [name, read] of reads ?? []) {
      if (read.seen !== 1) {
        throw new EngineCallError(
          ENGINE_NAME,
          `the compute graph had ${read.seen} tensors named ${name}, expected one`,
          { isRetryable: false },
        );
      }
    }
  }

  /** Drops a capture whose decode failed. */
  abandon(): void {
    this.#reads = undefined;
  }

  #copyRows(tensor: TensorAddress, read: TensorRead): void {
    const name = this.#ffi.tensorName(tensor);
    const { type, ne } = this.#ffi.tensorShape(tensor);
    if (type !== GGML_TYPE_F32 || !this.#ffi.tensorIsContiguous(tensor) || ne[2] !== 1 || ne[3] !== 1) {
      throw new Error(`${name} is not a contiguous 2-D float32 tensor (type ${type}, sizes ${ne.join("×")})`);
    }
    if (ne[0] !== read.width || ne[1] !== read.expectedRows) {
      throw new Error(`${name} is ${ne[0]}×${ne[1]}, expected ${read.width}×${read.expectedRows}`);
    }
    const count = ne[0] * ne[1];
    if (this.#scratch.length < count) this.#scratch = new Float32Array(count);
    this.#ffi.copyTensorData(tensor, this.#scratch, 0, count * Float32Array.BYTES_PER_ELEMENT);
    for (const pooler of read.poolers) pooler.add(this.#scratch, ne[1]);
    read.seen += 1;
  }
}

/** A loaded model with one context; see the module comment. */
export class LlamaFfiEngine {
  /** GGUF `general.architecture`. */
  readonly architecture: string;
  /** Transformer layers. */
  readonly layerCount: number;
  /** Width of the residual stream (layer views). */
  readonly embeddingSize: number;
  /** Width of the final-norm output (final views). */
  readonly outputEmbeddingSize: number;
  /** Vocabulary size (logits length). */
  readonly vocabularySize: number;
  /** Token capacity of each sequence. */
  readonly contextSize: number;
  /** Number of sequence ids. */
  readonly sequences: number;
  /** Tokens per llama_decode call. */
  readonly batchCapacity: number;
  /** Beginning-of-sequence token id. */
  readonly bosToken: number;

  readonly #ffi: LlamaFfi;
  readonly #model: NativePointer;
  readonly #context: NativePointer;
  readonly #vocab: NativePointer;
  readonly #memory: NativePointer;
  readonly #capture: ViewCapture;
  /** The registered eval callback, or null when views are not read. */
  readonly #callback: NativePointer | null;
  readonly #batch: LlamaBatch;
  readonly #batchTokens: Int32Array;
  readonly #batchPositions: Int32Array;
  readonly #batchSeqIds: Int32Array[];
  readonly #batchOutputs: Int8Array;
  /** Next free position of each sequence that holds state. */
  readonly #positions = new Map<number, number>();
  /** Per sequence, Σ log p of the greedy tokens it produced (an end-of-generation token included). */
  readonly #generatedLogProbabilities = new Map<number, number>();
  #disposed = false;

  private constructor(
    ffi: LlamaFfi,
    handles: {
      model: NativePointer;
      architecture: string;
      context: NativePointer;
      capture: ViewCapture;
      callback: NativePointer | null;
      contextSize: number;
      sequences: number;
    },
  ) {
    this.#ffi = ffi;
    this.#model = handles.model;
    this.#context = handles.context;
    this.#capture = handles.capture;
    this.#callback = handles.callback;
    this.contextSize = handles.contextSize;
    this.sequences = handles.sequences;
    this.#vocab = ffi.modelGetVocab(handles.model);
    this.#memory = ffi.getMemory(handles.context);
    this.architecture = handles.architecture;
    this.layerCount = ffi.modelNLayer(handles.model);
    this.embeddingSize = ffi.modelNEmbd(handles.model);
    this.outputEmbeddingSize = ffi.modelNEmbdOut(handles.model);
    this.vocabularySize = ffi.vocabNTokens(this.#vocab);
    this.bosToken = ffi.vocabBos(this.#vocab);

    this.batchCapacity = ffi.nBatch(handles.context);
    this.#batch = ffi.batchInit(this.batchCapacity, 0, 1);
    const { token, pos, n_seq_id, seq_id, logits } = this.#batch;
    if (!token || !pos || !n_seq_id || !seq_id || !logits) {
      throw new EngineCallError(ENGINE_NAME, "llama_batch_init returned an incomplete batch", {
        isRetryable: false,
      });
    }
    this.#batchTokens = ffi.int32View(token, this.batchCapacity);
    this.#batchPositions = ffi.int32View(pos, this.batchCapacity);
    this.#batchOutputs = ffi.int8View(logits, this.batchCapacity);
    this.#batchSeqIds = ffi
      .readPointers(seq_id, this.batchCapacity)
      .map((pointer) => ffi.int32View(pointer, 1));
    ffi.int32View(n_seq_id, this.batchCapacity).fill(1);
  }

  /**
   * Loads the model and creates its context (CPU only, one KV stream per sequence).
   * @throws UnsupportedError when the platform or binaries are not the pinned ones.
   * @throws InputError when the model cannot be loaded.
   */
  static async open(options: LlamaFfiEngineOptions): Promise<LlamaFfiEngine> {
    const threads = options.threads ?? 1;
    const contextSize = options.contextSize ?? 512;
    const sequences = options.sequences ?? 1;
    const batchSize = options.batchSize ?? Math.max(sequences, Math.min(contextSize, DEFAULT_MAX_BATCH));
    for (const [name, value] of [
      ["threads", threads],
      ["contextSize", contextSize],
      ["sequences", sequences],
      ["batchSize", batchSize],
    ] as const) {
      if (!Number.isInteger(value) || value < 1) throw new UsageError(`${name} must be a positive integer`);
    }
    if (batchSize < sequences) {
      throw new UsageError(`batchSize ${batchSize} cannot hold a decode step of ${sequences} sequences`);
    }

    const ffi = await loadLlamaFfi(options.libraryDir);
    ffi.backendInit();
    const model = ffi.modelLoadFromFile(options.modelPath, { ...ffi.modelDefaultParams(), n_gpu_layers: 0 });
    if (!model) throw new InputError("llama.cpp could not load this model", { file: options.modelPath });

    const architecture = readMetadataString(ffi, model, "general.architecture") ?? "";
    const capture = new ViewCapture(ffi);
    const callback = options.readsViews === false ? null : ffi.registerEvalCallback(capture.onEval);
    const context = ffi.initFromModel(model, {
      ...ffi.contextDefaultParams(),
      // llama.cpp splits n_ctx evenly between sequences.
      n_ctx: contextSize * sequences,
      n_batch: batchSize,
      n_ubatch: batchSize,
      n_seq_max: sequences,
      n_threads: threads,
      n_threads_batch: threads,
      embeddings: false,
      pooling_type: POOLING_NONE,
      // Attention as node-llama-cpp computes it, so that both engines give the same states and tokens.
      flash_attn_type: NO_FLASH_ATTENTION_ARCHITECTURES.has(architecture)
        ? FLASH_ATTENTION_DISABLED
        : FLASH_ATTENTION_AUTO,
      swa_full: false,
      // One KV stream per sequence: a sequence's cell layout, hence its numerics, do not depend on the others.
      kv_unified: false,
      no_perf: true,
      cb_eval: callback,
      cb_eval_user_data: null,
    });
    if (!context) {
      if (callback) ffi.unregisterCallback(callback);
      ffi.modelFree(model);
      throw new EngineCallError(ENGINE_NAME, "llama_init_from_model failed", { isRetryable: false });
    }
    return new LlamaFfiEngine(ffi, {
      model,
      architecture,
      context,
      capture,
      callback,
      contextSize,
      sequences,
    });
  }

  /** Tokenizes `text` literally (special-token text is not parsed), with BOS in front when `addBos`. */
  tokenize(text: string, addBos: boolean): number[] {
    this.#assertOpen();
    const textBytes = Buffer.byteLength(text);
    let tokens = new Int32Array(textBytes + 2);
    let count = this.#ffi.tokenize(this.#vocab, text, textBytes, tokens, tokens.length, false, false);
    if (count < 0) {
      tokens = new Int32Array(-count);
      count = this.#ffi.tokenize(this.#vocab, text, textBytes, tokens, tokens.length, false, false);
    }
    if (count < 0) throw new EngineCallError(ENGINE_NAME, "llama_tokenize failed", { isRetryable: false });
    const result = Array.from(tokens.subarray(0, count));
    return addBos ? [this.bosToken, ...result] : result;
  }

  /** Text of `tokens`; special tokens (BOS, EOS, …) render as nothing. */
  detokenize(tokens: readonly number[]): string {
    this.#assertOpen();
    if (tokens.length === 0) return "";
    const input = Int32Array.from(tokens);
    let text = Buffer.alloc(tokens.length * 8 + 16);
    let length = this.#ffi.detokenize(this.#vocab, input, input.length, text, text.length, false, false);
    if (length < 0) {
      text = Buffer.alloc(-length);
      length = this.#ffi.detokenize(this.#vocab, input, input.length, text, text.length, false, false);
    }
    if (length < 0) throw new EngineCallError(ENGINE_NAME, "llama_detokenize failed", { isRetryable: false });
    return text.subarray(0, length).toString("utf8");
  }

  /** Whether `token` ends generation (EOS, EOT, …). */
  isEndOfGeneration(token: number): boolean {
    return this.#ffi.vocabIsEog(this.#vocab, token);
  }

  /** Next free position of a sequence (0 when it holds nothing). */
  positionOf(sequenceId: number): number {
    return this.#positions.get(sequenceId) ?? 0;
  }

  /**
   * Evaluates a whole prompt on an empty sequence in `llama_decode` calls of its own and reads the
   * requested views; the sequence keeps its KV cache, so decoding continues without a second prefill.
   * @throws UsageError for a bad sequence id, a sequence that already holds state, or a layer out of range.
   * @throws UnsupportedError for views the architecture cannot give ({@link assertViewsSupported}).
   * @throws InputError for an empty prompt, one longer than the context, or unknown token ids.
   */
  prefill(sequenceId: number, tokens: readonly number[], options: PrefillOptions = {}): PrefillResult {
    this.#assertOpen();
    this.#assertSequenceId(sequenceId);
    const views = options.views ?? [];
    for (const view of views) {
      if (
        view.layer !== "final" &&
        (!Number.isInteger(view.layer) || view.layer < 0 || view.layer >= this.layerCount)
      ) {
        throw new UsageError(
          `layer ${String(view.layer)} is out of range: this model has layers 0…${this.layerCount - 1} (or "final")`,
        );
      }
    }
    assertViewsSupported(views, this.architecture, "this model");
    if (this.#callback === null && views.some((view) => view.name !== "last:final")) {
      throw new UsageError("this engine was opened without readsViews: it reads only last:final");
    }
    this.#assertTokens(tokens);
    if (tokens.length > this.contextSize) {
      throw new InputError(
        `prompt has ${tokens.length} tokens; the context holds ${this.contextSize} per sequence`,
      );
    }
    if (this.#positions.has(sequenceId)) {
      throw new UsageError(`sequence ${sequenceId} already holds state; release it first`);
    }

    this.#positions.set(sequenceId, 0);
    try {
      const graphViews = VIEW_ARCHITECTURES.has(this.architecture) && this.#callback !== null;
      const { features, lastRow } =
        views.length === 0 || graphViews
          ? this.#prefillReadingGraph(sequenceId, tokens, views)
          : this.#prefillReadingEmbeddings(sequenceId, tokens);
      const logits = this.#ffi.getLogitsIth(this.#context, lastRow);
      if (!logits) {
        throw new EngineCallError(ENGINE_NAME, "llama.cpp returned no logits for the last prompt token", {
          isRetryable: false,
        });
      }
      // Straight over llama.cpp's buffer: no copy of the vocabulary-sized row.
      const row = this.#ffi.float32View(logits, this.vocabularySize);
      const firstToken = argmax(row);
      this.#generatedLogProbabilities.set(sequenceId, 0);
      this.#countGenerated(sequenceId, row, firstToken);
      return {
        features,
        firstToken,
        entropy: options.entropy ? entropyOfLogits(row) : null,
        ...(options.keepLogits ? { logits: row.slice() } : {}),
      };
    } catch (error) {
      this.releaseSequence(sequenceId);
      throw error;
    }
  }

  /**
   * Decodes one batch holding several sequences' tokens (prompt chunks and decode steps) in one
   * `llama_decode`, and returns, for each entry with `outputLast`, the greedy next token, read by its
   * explicit batch index on this thread. Any mix of entries is decoded correctly, but only a batch
   * that is one prompt chunk alone, or one token per sequence in descending sequence order, gives
   * every sequence the numerics it has alone: llama.cpp (`kv_unified` false, `split_equal`) puts
   * ascending consecutive sequences in one ubatch and cuts a prompt batched with others into pieces of
   * their lengths. The scheduler builds only such batches.
   * @returns per entry, the next token, or undefined for entries without output.
   * @throws UsageError for a malformed batch; EngineCallError when llama_decode fails (the sequences of
   *   the batch are then in an unknown state: release them).
   */
  decodeBatch(entries: readonly BatchEntry[]): (number | undefined)[] {
    this.#assertOpen();
    const seen = new Set<number>();
    let total = 0;
    for (const entry of entries) {
      this.#assertSequenceId(entry.sequenceId);
      if (seen.has(entry.sequenceId))
        throw new UsageError(`sequence ${entry.sequenceId} appears twice in a batch`);
      seen.add(entry.sequenceId);
      if (entry.tokens.length === 0)
        throw new UsageError(`sequence ${entry.sequenceId} has no tokens in the batch`);
      this.#assertTokens(entry.tokens);
      if (this.positionOf(entry.sequenceId) + entry.tokens.length > this.contextSize) {
        throw new InputError(
          `sequence ${entry.sequenceId} would exceed its ${this.contextSize} context cells`,
        );
      }
      total += entry.tokens.length;
    }
    if (total === 0) throw new UsageError("an empty batch");
    if (total > this.batchCapacity) {
      throw new UsageError(`a batch of ${total} tokens exceeds the batch capacity ${this.batchCapacity}`);
    }
    const outputRows: (number | undefined)[] = [];
    let row = 0;
    for (const entry of entries) {
      const position = this.positionOf(entry.sequenceId);
      if (position === 0) this.#generatedLogProbabilities.set(entry.sequenceId, 0);
      for (let index = 0; index < entry.tokens.length; index++) {
        this.#batchTokens[row] = entry.tokens[index] as number;
        this.#batchPositions[row] = position + index;
        (this.#batchSeqIds[row] as Int32Array)[0] = entry.sequenceId;
        this.#batchOutputs[row] = entry.outputLast && index === entry.tokens.length - 1 ? 1 : 0;
        row += 1;
      }
      outputRows.push(entry.outputLast ? row - 1 : undefined);
    }
    this.#decode(row, entries);
    return outputRows.map((outputRow, entryIndex) => {
      if (outputRow === undefined) return undefined;
      const logits = this.#ffi.getLogitsIth(this.#context, outputRow);
      if (!logits) {
        throw new EngineCallError(ENGINE_NAME, `llama.cpp returned no logits for batch row ${outputRow}`, {
          isRetryable: false,
        });
      }
      const values = this.#ffi.float32View(logits, this.vocabularySize);
      const token = argmax(values);
      const entry = entries[entryIndex] as BatchEntry;
      if (entry.scoreOutput) this.#countGenerated(entry.sequenceId, values, token);
      return token;
    });
  }

  /**
   * Σ log p over the greedy tokens this sequence produced since it was empty, an end-of-generation
   * token included (each token's log-probability under the softmax of the logits it was chosen from):
   * divided by the decoding steps, the model's mean confidence in its own output. Counts the first
   * token after a view-reading prefill (one row) and the outputs of batch entries with `scoreOutput`.
   */
  generatedLogProbability(sequenceId: number): number {
    return this.#generatedLogProbabilities.get(sequenceId) ?? 0;
  }

  #countGenerated(sequenceId: number, logits: ArrayLike<number>, token: number): void {
    const sum = this.#generatedLogProbabilities.get(sequenceId) ?? 0;
    this.#generatedLogProbabilities.set(sequenceId, sum + logSoftmaxAt(logits, token));
  }

  /** Frees a sequence's KV cache so its id can be prefilled again. Releasing an empty id is a no-op. */
  releaseSequence(sequenceId: number): void {
    this.#assertOpen();
    this.#assertSequenceId(sequenceId);
    this.#ffi.memorySeqRm(this.#memory, sequenceId, -1, -1);
    this.#positions.delete(sequenceId);
    this.#generatedLogProbabilities.delete(sequenceId);
  }

  /** Frees the context, the model, the batch and the callback. Safe to call twice. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#ffi.batchFree(this.#batch);
    this.#ffi.free(this.#context);
    this.#ffi.modelFree(this.#model);
    if (this.#callback) this.#ffi.unregisterCallback(this.#callback);
  }

  /**
   * The prompt in chunks of at most one ubatch, each a decode of its own, while the eval callback pools
   * the views' tensors. Outputs: the last prompt token, or every token when a `mean:final` or
   * `norms:final` view needs the final norm of each.
   */
  #prefillReadingGraph(
    sequenceId: number,
    tokens: readonly number[],
    views: readonly FeatureView[],
  ): { features: Float32Array[]; lastRow: number } {
    const layerZeroInput = VIEW_ARCHITECTURES.get(this.architecture)?.layerZeroInput ?? "embd";
    const tensorOf = (view: FeatureView): string =>
      view.layer === "final" ? "result_norm" : view.layer === 0 ? layerZeroInput : `l_out-${view.layer - 1}`;
    const poolers = views.map(
      (view) =>
        new RowPooler(view.pooling, view.layer === "final" ? this.outputEmbeddingSize : this.embeddingSize),
    );
    const outputsEveryToken = views.some((view) => view.pooling !== "last" && view.layer === "final");
    let lastRow = 0;
    for (let start = 0; start < tokens.length; start += this.batchCapacity) {
      const end = Math.min(tokens.length, start + this.batchCapacity);
      const isLastChunk = end === tokens.length;
      const count = end - start;
      const finalRows = outputsEveryToken ? count : isLastChunk ? 1 : 0;
      const reads = new Map<string, TensorRead>();
      views.forEach((view, index) => {
        const name = tensorOf(view);
        const expectedRows = view.layer === "final" ? finalRows : count;
        if (expectedRows === 0) return;
        const read = reads.get(name) ?? {
          width: poolers[index]?.width ?? 0,
          expectedRows,
          poolers: [],
          seen: 0,
        };
        read.poolers.push(poolers[index] as RowPooler);
        reads.set(name, read);
      });
      const position = this.positionOf(sequenceId);
      for (let row = 0; row < count; row++) {
        this.#batchTokens[row] = tokens[start + row] as number;
        this.#batchPositions[row] = position + row;
        (this.#batchSeqIds[row] as Int32Array)[0] = sequenceId;
        this.#batchOutputs[row] = outputsEveryToken || (isLastChunk && row === count - 1) ? 1 : 0;
      }
      if (reads.size > 0) this.#capture.begin(reads);
      try {
        this.#decode(count, [{ sequenceId, tokens: tokens.slice(start, end), outputLast: isLastChunk }]);
      } catch (error) {
        this.#capture.abandon();
        throw error;
      }
      if (reads.size > 0) this.#capture.end();
      lastRow = count - 1;
    }
    return { features: poolers.map((pooler) => pooler.result()), lastRow };
  }

  /**
   * `last:final` of an architecture whose graph is not in {@link VIEW_ARCHITECTURES}: the prompt minus
   * its last token without outputs, then the last token alone with embeddings on (llama.cpp then
   * copies its final-norm state, whatever the graph calls it).
   */
  #prefillReadingEmbeddings(
    sequenceId: number,
    tokens: readonly number[],
  ): { features: Float32Array[]; lastRow: number } {
    const lastIndex = tokens.length - 1;
    for (let start = 0; start < lastIndex; start += this.batchCapacity) {
      const chunk = tokens.slice(start, Math.min(lastIndex, start + this.batchCapacity));
      this.#fillSingleSequence(sequenceId, chunk, false);
      this.#decode(chunk.length, [{ sequenceId, tokens: chunk, outputLast: false }]);
    }
    const last = [tokens[lastIndex] as number];
    this.#fillSingleSequence(sequenceId, last, true);
    this.#ffi.setEmbeddings(this.#context, true);
    try {
      this.#decode(1, [{ sequenceId, tokens: last, outputLast: true }]);
    } finally {
      this.#ffi.setEmbeddings(this.#context, false);
    }
    const embedding = this.#ffi.getEmbeddingsIth(this.#context, 0);
    if (!embedding) {
      throw new EngineCallError(ENGINE_NAME, "llama.cpp returned no embeddings", { isRetryable: false });
    }
    return { features: [this.#ffi.readFloats(embedding, this.outputEmbeddingSize)], lastRow: 0 };
  }

  #fillSingleSequence(sequenceId: number, tokens: readonly number[], outputLast: boolean): void {
    const position = this.positionOf(sequenceId);
    for (let row = 0; row < tokens.length; row++) {
      this.#batchTokens[row] = tokens[row] as number;
      this.#batchPositions[row] = position + row;
      (this.#batchSeqIds[row] as Int32Array)[0] = sequenceId;
      this.#batchOutputs[row] = outputLast && row === tokens.length - 1 ? 1 : 0;
    }
  }

  /** Runs llama_decode on the first `rowCount` batch rows and advances the entries' positions. */
  #decode(rowCount: number, entries: readonly BatchEntry[]): void {
    this.#batch.n_tokens = rowCount;
    const status = this.#ffi.decode(this.#context, this.#batch);
    if (status !== 0) {
      // 1 = no KV slot; 2 = aborted; negative = invalid input or fatal.
      throw new EngineCallError(ENGINE_NAME, `llama_decode returned ${status}`, {
        isRetryable: status === 1,
      });
    }
    for (const entry of entries) {
      this.#positions.set(entry.sequenceId, this.positionOf(entry.sequenceId) + entry.tokens.length);
    }
  }

  #assertTokens(tokens: readonly number[]): void {
    if (tokens.length === 0) throw new InputError("cannot evaluate an empty token list");
    for (const token of tokens) {
      if (!Number.isInteger(token) || token < 0 || token >= this.vocabularySize) {
        throw new InputError(`token id ${token} is outside the vocabulary (0…${this.vocabularySize - 1})`);
      }
    }
  }

  #assertOpen(): void {
    if (this.#disposed) throw new UsageError("the llama FFI engine is disposed");
  }

  #assertSequenceId(sequenceId: number): void {
    if (!Number.isInteger(sequenceId) || sequenceId < 0 || sequenceId >= this.sequences) {
      throw new UsageError(`sequence id ${sequenceId} is outside 0…${this.sequences - 1}`);
    }
  }
}

function readMetadataString(ffi: LlamaFfi, model: NativePointer, key: string): string | undefined {
  const buffer = Buffer.alloc(256);
  const length = ffi.modelMetaValStr(model, key, buffer, buffer.length);
  if (length < 0) return undefined;
  return buffer.subarray(0, Math.min(length, buffer.length - 1)).toString("utf8");
}
