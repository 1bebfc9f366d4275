/**
 * A minimal llama.cpp engine over node-llama-cpp's own libllama (through `llama-ffi.ts`) that reads the
 * hidden state at the last prompt token — any layer's input, or the final-norm output — during the
 * prefill the translation needs anyway, then continues greedy decoding from the same KV cache.
 *
 * Why not node-llama-cpp: it does not expose its `llama_context`, and its embedding context outputs
 * every prompt token, which computes logits for all of them (about +80 % prefill time on a 32k vocabulary).
 * Here the prompt minus its last token is decoded with no outputs, and embeddings are switched on only
 * for the one-token decode of the last prompt token.
 *
 * Every method runs synchronously on the calling thread (it blocks the event loop for the duration of
 * the decode) and one engine must not be used from two places at once.
 *
 * @internal
 */

import { EngineCallError, InputError, UnsupportedError, UsageError } from "../errors/index.js";
import { type LlamaBatch, type LlamaFfi, loadLlamaFfi, type NativePointer } from "./llama-ffi.js";

/** A layer whose state to read: a layer index `i` means the residual stream entering layer `i`
 * (0 = token embeddings); `"final"` means the final RMSNorm output (what an embedding context returns). */
export type FeatureLayer = number | "final";

/**
 * Architectures (GGUF `general.architecture`) whose llama.cpp graph builder records every layer's input
 * (`res->t_layer_inp[il] = inpL` at the top of the layer loop; checked in the bundled llama.cpp source,
 * `src/models/{llama,qwen3,qwen3moe}.cpp`). Asking another architecture for a layer input makes llama.cpp
 * abort the whole process, so the engine refuses before calling into C.
 */
export const LAYER_INPUT_ARCHITECTURES: ReadonlySet<string> = new Set(["llama", "qwen3", "qwen3moe"]);

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
  /** Folder holding libllama; default: node-llama-cpp's prebuilt linux-x64 binaries. */
  libraryDir?: string;
}

/** Options of {@link LlamaFfiEngine.prefill}. */
export interface PrefillOptions {
  /** States to read at the last prompt token, in this order. Default: none. */
  layers?: readonly FeatureLayer[];
  /**
   * How the `"final"` state is obtained. `"last-token-decode"` (default): the prompt minus its last
   * token is decoded without outputs, then the last token alone with embeddings on.
   * `"embeddings-on-all"`: one decode with embeddings on, which makes llama.cpp output (and compute
   * logits for) every prompt token — what node-llama-cpp's embedding context does; kept to measure it.
   */
  finalStrategy?: "last-token-decode" | "embeddings-on-all";
}

/** What {@link LlamaFfiEngine.prefill} returns. */
export interface PrefillResult {
  /** One vector per requested layer, in request order (copies, safe to keep). */
  features: Float32Array[];
  /** Logits at the last prompt token (length = vocabulary size). */
  logitsLast: Float32Array;
}

const ENGINE_NAME = "llama-ffi";
/** llama.cpp's LLAMA_POOLING_TYPE_NONE: per-token embeddings. */
const POOLING_NONE = 0;
/** llama.cpp's LLAMA_FLASH_ATTN_TYPE_DISABLED, which is also what node-llama-cpp uses by default. */
const FLASH_ATTENTION_DISABLED = 0;
/** Largest physical batch; larger prompts are split into ubatches by llama.cpp itself. */
const MAX_UBATCH = 512;

/** Index of the largest value (the first one on ties), i.e. the greedy choice. */
export function argmax(values: ArrayLike<number>): number {
  if (values.length === 0) throw new UsageError("argmax of an empty array");
  let best = 0;
  let bestValue = values[0] as number;
  for (let i = 1; i < values.length; i++) {
    const value = values[i] as number;
    if (value > bestValue) {
      bestValue = value;
      best = i;
    }
  }
  return best;
}

/** Checks requested layers against the model before any C call; throws on the first bad one. */
export function validateFeatureLayers(
  layers: readonly FeatureLayer[],
  model: { layerCount: number; architecture: string },
): void {
  for (const layer of layers) {
    if (layer === "final") continue;
    if (!Number.isInteger(layer) || layer < 0 || layer >= model.layerCount) {
      throw new UsageError(
        `layer ${String(layer)} is out of range: this model has layers 0…${model.layerCount - 1} (or "final")`,
      );
    }
    if (!LAYER_INPUT_ARCHITECTURES.has(model.architecture)) {
      throw new UnsupportedError(
        `layer-input features are not recorded by llama.cpp for architecture "${model.architecture}" ` +
          `(supported: ${[...LAYER_INPUT_ARCHITECTURES].join(", ")}); use "final"`,
      );
    }
  }
}

/** A loaded model with one context; see the module comment. */
export class LlamaFfiEngine {
  /** GGUF `general.architecture`. */
  readonly architecture: string;
  /** Transformer layers. */
  readonly layerCount: number;
  /** Width of the residual stream (layer-input features). */
  readonly embeddingSize: number;
  /** Width of the final-norm output (the `"final"` feature). */
  readonly outputEmbeddingSize: number;
  /** Vocabulary size (logits length). */
  readonly vocabularySize: number;
  /** Token capacity of each sequence. */
  readonly contextSize: number;
  /** Number of sequence ids. */
  readonly sequences: number;
  /** Beginning-of-sequence token id. */
  readonly bosToken: number;

  readonly #ffi: LlamaFfi;
  readonly #model: NativePointer;
  readonly #context: NativePointer;
  readonly #vocab: NativePointer;
  readonly #memory: NativePointer;
  readonly #batch: LlamaBatch;
  readonly #batchCapacity: number;
  readonly #batchTokens: Int32Array;
  readonly #batchPositions: Int32Array;
  readonly #batchSeqIdCounts: Int32Array;
  readonly #batchSeqIds: Int32Array[];
  readonly #batchOutputs: Int8Array;
  /** Next free position of each sequence that holds state. */
  readonly #positions = new Map<number, number>();
  /** Layer inputs llama.cpp currently records; switching one re-reserves the compute graph, so
   * layers stay on once asked for (recording a layer costs one row copy per token). */
  readonly #recordedLayers = new Set<number>();
  #disposed = false;

  private constructor(
    ffi: LlamaFfi,
    handles: { model: NativePointer; context: NativePointer; contextSize: number; sequences: number },
  ) {
    this.#ffi = ffi;
    this.#model = handles.model;
    this.#context = handles.context;
    this.contextSize = handles.contextSize;
    this.sequences = handles.sequences;
    this.#vocab = ffi.modelGetVocab(handles.model);
    this.#memory = ffi.getMemory(handles.context);
    this.architecture = readMetadataString(ffi, handles.model, "general.architecture") ?? "";
    this.layerCount = ffi.modelNLayer(handles.model);
    this.embeddingSize = ffi.modelNEmbd(handles.model);
    this.outputEmbeddingSize = ffi.modelNEmbdOut(handles.model);
    this.vocabularySize = ffi.vocabNTokens(this.#vocab);
    this.bosToken = ffi.vocabBos(this.#vocab);

    this.#batchCapacity = ffi.nBatch(handles.context);
    this.#batch = ffi.batchInit(this.#batchCapacity, 0, 1);
    const { token, pos, n_seq_id, seq_id, logits } = this.#batch;
    if (!token || !pos || !n_seq_id || !seq_id || !logits) {
      throw new EngineCallError(ENGINE_NAME, "llama_batch_init returned an incomplete batch", {
        isRetryable: false,
      });
    }
    this.#batchTokens = ffi.int32View(token, this.#batchCapacity);
    this.#batchPositions = ffi.int32View(pos, this.#batchCapacity);
    this.#batchSeqIdCounts = ffi.int32View(n_seq_id, this.#batchCapacity);
    this.#batchOutputs = ffi.int8View(logits, this.#batchCapacity);
    this.#batchSeqIds = ffi
      .readPointers(seq_id, this.#batchCapacity)
      .map((pointer) => ffi.int32View(pointer, 1));
    this.#batchSeqIdCounts.fill(1);
  }

  /**
   * Loads the model and creates its context (CPU only).
   * @throws UnsupportedError when the platform or binaries are not the pinned ones.
   * @throws InputError when the model cannot be loaded.
   */
  static async open(options: LlamaFfiEngineOptions): Promise<LlamaFfiEngine> {
    const threads = options.threads ?? 1;
    const contextSize = options.contextSize ?? 512;
    const sequences = options.sequences ?? 1;
    for (const [name, value] of [
      ["threads", threads],
      ["contextSize", contextSize],
      ["sequences", sequences],
    ] as const) {
      if (!Number.isInteger(value) || value < 1) throw new UsageError(`${name} must be a positive integer`);
    }

    const ffi = await loadLlamaFfi(options.libraryDir);
    ffi.backendInit();
    const model = ffi.modelLoadFromFile(options.modelPath, { ...ffi.modelDefaultParams(), n_gpu_layers: 0 });
    if (!model) throw new InputError("llama.cpp could not load this model", { file: options.modelPath });

    const context = ffi.initFromModel(model, {
      ...ffi.contextDefaultParams(),
      // llama.cpp splits n_ctx evenly between sequences.
      n_ctx: contextSize * sequences,
      // A whole prompt fits one llama_decode call.
      n_batch: contextSize,
      n_ubatch: Math.min(contextSize, MAX_UBATCH),
      n_seq_max: sequences,
      n_threads: threads,
      n_threads_batch: threads,
      embeddings: false,
      pooling_type: POOLING_NONE,
      flash_attn_type: FLASH_ATTENTION_DISABLED,
      swa_full: false,
      no_perf: true,
    });
    if (!context) {
      ffi.modelFree(model);
      throw new EngineCallError(ENGINE_NAME, "llama_init_from_model failed", { isRetryable: false });
    }
    return new LlamaFfiEngine(ffi, { model, context, contextSize, sequences });
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

  /**
   * Evaluates a whole prompt on an empty sequence and reads the requested states at its last token.
   * With `"final"` requested the last token gets its own one-token decode with embeddings on; everything
   * else rides on the normal prefill.
   * @throws UsageError for a bad sequence id, a sequence that already holds state, or a layer out of range.
   * @throws UnsupportedError for layer inputs on an architecture outside {@link LAYER_INPUT_ARCHITECTURES}.
   * @throws InputError for an empty prompt, one longer than the context, or unknown token ids.
   */
  prefill(sequenceId: number, tokens: readonly number[], options: PrefillOptions = {}): PrefillResult {
    this.#assertOpen();
    this.#assertSequenceId(sequenceId);
    const layers = options.layers ?? [];
    validateFeatureLayers(layers, this);
    if (tokens.length === 0) throw new InputError("cannot prefill an empty token list");
    if (tokens.length > this.contextSize) {
      throw new InputError(
        `prompt has ${tokens.length} tokens; the context holds ${this.contextSize} per sequence`,
      );
    }
    for (const token of tokens) {
      if (!Number.isInteger(token) || token < 0 || token >= this.vocabularySize) {
        throw new InputError(`token id ${token} is outside the vocabulary (0…${this.vocabularySize - 1})`);
      }
    }
    if (this.#positions.has(sequenceId)) {
      throw new UsageError(`sequence ${sequenceId} already holds state; release it first`);
    }

    for (const layer of layers) {
      if (layer !== "final" && !this.#recordedLayers.has(layer)) {
        this.#ffi.setEmbeddingsLayerInp(this.#context, layer, true);
        this.#recordedLayers.add(layer);
      }
    }

    const wantsFinal = layers.includes("final");
    const splitLastToken =
      wantsFinal && (options.finalStrategy ?? "last-token-decode") === "last-token-decode";
    // Tokens decoded without any output: everything except the last token when the final state is
    // wanted (embeddings on would output every token of the decode), otherwise nothing is held back.
    const lastChunkStart = splitLastToken ? tokens.length - 1 : 0;
    this.#positions.set(sequenceId, 0);
    let lastRow = 0;
    try {
      let start = 0;
      while (start < lastChunkStart) {
        const end = Math.min(lastChunkStart, start + this.#batchCapacity);
        this.#decodeChunk(sequenceId, tokens, start, end, "none");
        start = end;
      }
      // The last llama_decode call holds the last prompt token as its last row.
      while (start < tokens.length) {
        const end = Math.min(tokens.length, start + this.#batchCapacity);
        const isLast = end === tokens.length;
        if (isLast && wantsFinal) this.#ffi.setEmbeddings(this.#context, true);
        try {
          // llama.cpp outputs every token while embeddings are on; asking for that avoids its warning.
          this.#decodeChunk(sequenceId, tokens, start, end, !isLast ? "none" : wantsFinal ? "all" : "last");
        } finally {
          if (isLast && wantsFinal) this.#ffi.setEmbeddings(this.#context, false);
        }
        lastRow = end - start - 1;
        start = end;
      }
    } catch (error) {
      this.releaseSequence(sequenceId);
      throw error;
    }

    const features = layers.map((layer) => {
      if (layer === "final") {
        return this.#readFloats(
          this.#ffi.getEmbeddingsIth(this.#context, -1),
          this.outputEmbeddingSize,
          0,
          "embeddings",
        );
      }
      const rows = this.#ffi.getEmbeddingsLayerInp(this.#context, layer);
      return this.#readFloats(rows, this.embeddingSize, lastRow * this.embeddingSize, `layer ${layer} input`);
    });
    const logitsLast = this.#readFloats(
      this.#ffi.getLogitsIth(this.#context, -1),
      this.vocabularySize,
      0,
      "logits",
    );
    return { features, logitsLast };
  }

  /**
   * Greedy continuation of a prefilled sequence. `firstToken` (normally the argmax of the prefill's
   * `logitsLast`) is the first generated token. Stops before an end-of-generation token, after
   * `maxTokens` tokens, or when the sequence's context is full. Returns the generated tokens without
   * the end-of-generation token.
   */
  decodeGreedy(sequenceId: number, firstToken: number, maxTokens: number): number[] {
    this.#assertOpen();
    this.#assertSequenceId(sequenceId);
    if (!Number.isInteger(maxTokens) || maxTokens < 0)
      throw new UsageError("maxTokens must be a non-negative integer");
    let position = this.#positions.get(sequenceId);
    if (position === undefined || position === 0) {
      throw new UsageError(`sequence ${sequenceId} holds no prompt; call prefill first`);
    }
    const generated: number[] = [];
    let token = firstToken;
    while (generated.length < maxTokens && !this.#ffi.vocabIsEog(this.#vocab, token)) {
      generated.push(token);
      if (generated.length === maxTokens || position >= this.contextSize) break;
      this.#decodeChunk(sequenceId, [token], 0, 1, "last");
      position += 1;
      const logits = this.#ffi.getLogitsIth(this.#context, -1);
      if (!logits)
        throw new EngineCallError(ENGINE_NAME, "llama_get_logits_ith returned no logits", {
          isRetryable: false,
        });
      // Argmax straight over llama.cpp's buffer: no copy of the vocabulary-sized row.
      token = argmax(this.#ffi.float32View(logits, this.vocabularySize));
    }
    return generated;
  }

  /** Frees a sequence's KV cache so its id can be prefilled again. Releasing an empty id is a no-op. */
  releaseSequence(sequenceId: number): void {
    this.#assertOpen();
    this.#assertSequenceId(sequenceId);
    this.#ffi.memorySeqRm(this.#memory, sequenceId, -1, -1);
    this.#positions.delete(sequenceId);
  }

  /** Frees the context, the model and the batch. Safe to call twice. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#ffi.batchFree(this.#batch);
    this.#ffi.free(this.#context);
    this.#ffi.modelFree(this.#model);
  }

  #decodeChunk(
    sequenceId: number,
    tokens: readonly number[],
    start: number,
    end: number,
    outputs: "none" | "last" | "all",
  ): void {
    const position = this.#positions.get(sequenceId) ?? 0;
    const count = end - start;
    for (let row = 0; row < count; row++) {
      this.#batchTokens[row] = tokens[start + row] as number;
      this.#batchPositions[row] = position + row;
      (this.#batchSeqIds[row] as Int32Array)[0] = sequenceId;
      this.#batchOutputs[row] = outputs === "all" ? 1 : 0;
    }
    if (outputs === "last") this.#batchOutputs[count - 1] = 1;
    this.#batch.n_tokens = count;
    const status = this.#ffi.decode(this.#context, this.#batch);
    if (status !== 0) {
      // 1 = no KV slot (retry once others are released); 2 = aborted; negative = invalid input or fatal.
      throw new EngineCallError(ENGINE_NAME, `llama_decode returned ${status}`, {
        isRetryable: status === 1,
      });
    }
    this.#positions.set(sequenceId, position + count);
  }

  #readFloats(pointer: NativePointer | null, count: number, offset: number, what: string): Float32Array {
    if (!pointer)
      throw new EngineCallError(ENGINE_NAME, `llama.cpp returned no ${what}`, { isRetryable: false });
    return this.#ffi.readFloats(pointer, count, offset);
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
