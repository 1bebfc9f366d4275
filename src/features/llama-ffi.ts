/**
 * Raw FFI bindings (koffi) to the libllama and ggml that node-llama-cpp 3.21.1 ships, for reading hidden
 * states node-llama-cpp does not expose. This is the only file that declares C signatures or struct
 * layouts.
 *
 * The layouts below were taken from the llama.cpp source bundled with node-llama-cpp 3.21.1
 * (`node-llama-cpp/llama/gitRelease.bundle`, tag `v0.4.0`, `include/llama.h` and `ggml/include/ggml.h`)
 * and checked against the shipped binary: `llama_context_default_params` writes exactly 160 bytes and
 * `llama_model_default_params` 80 bytes, and `ggml_tensor_overhead()` (a `struct ggml_tensor` plus
 * ggml's 32-byte object header) is 368, which `loadLlamaFfi` re-checks through `koffi.sizeof`. Another
 * llama.cpp build may change them, so loading refuses any package version other than the pinned one.
 *
 * @internal
 */

import path from "node:path";
import koffi from "koffi";
import { UnsupportedError } from "../errors/index.js";

/** node-llama-cpp binary package version whose struct layouts are declared here. */
export const PINNED_BINARY_VERSION = "3.21.1";

/** An opaque C pointer as koffi hands it out (never dereferenced in JS except through the readers below). */
export type NativePointer = object;

/**
 * A `struct ggml_tensor *` as the eval callback receives it: the address as a number. koffi passes an
 * integer several times faster than a pointer object, and the callback runs for every graph node of
 * every decode.
 */
export type TensorAddress = number;

/**
 * llama.cpp's eval callback (`cb_eval`), called on the decoding thread for every node of the compute
 * graph: first with `ask` true (return whether this node's data is wanted), then, for a wanted node,
 * with `ask` false once its data is computed (return false to stop the computation).
 */
export type EvalCallback = (tensor: TensorAddress, ask: boolean) => boolean;

/** What of a `struct ggml_tensor` the engine reads. */
export interface TensorShape {
  /** `enum ggml_type` (0 = F32). */
  type: number;
  /** Elements per dimension, `ne[0]` fastest. */
  ne: [number, number, number, number];
  /** Byte strides per dimension. */
  nb: [number, number, number, number];
}

/** `enum ggml_type` value of 32-bit floats. */
export const GGML_TYPE_F32 = 0;

/** `struct llama_batch` as koffi decodes it: pointer members are opaque. */
export interface LlamaBatch {
  n_tokens: number;
  token: NativePointer | null;
  embd: NativePointer | null;
  pos: NativePointer | null;
  n_seq_id: NativePointer | null;
  seq_id: NativePointer | null;
  logits: NativePointer | null;
}

/** The members of `struct llama_context_params` this project sets; the others keep their defaults. */
export interface LlamaContextParams {
  n_ctx: number;
  n_batch: number;
  n_ubatch: number;
  n_seq_max: number;
  n_threads: number;
  n_threads_batch: number;
  embeddings: boolean;
  no_perf: boolean;
  /** A callback from {@link LlamaFfi.registerEvalCallback}, or null. */
  cb_eval: NativePointer | null;
  [member: string]: unknown;
}

/** The members of `struct llama_model_params` this project sets; the others keep their defaults. */
export interface LlamaModelParams {
  n_gpu_layers: number;
  vocab_only: boolean;
  [member: string]: unknown;
}

/** Typed view of the C functions used by the engine. */
export interface LlamaFfi {
  readonly libraryDir: string;
  backendInit(): void;
  modelDefaultParams(): LlamaModelParams;
  contextDefaultParams(): LlamaContextParams;
  modelLoadFromFile(modelPath: string, params: LlamaModelParams): NativePointer | null;
  modelFree(model: NativePointer): void;
  initFromModel(model: NativePointer, params: LlamaContextParams): NativePointer | null;
  free(context: NativePointer): void;
  modelGetVocab(model: NativePointer): NativePointer;
  modelNLayer(model: NativePointer): number;
  modelNEmbd(model: NativePointer): number;
  modelNEmbdOut(model: NativePointer): number;
  modelMetaValStr(model: NativePointer, key: string, buffer: Buffer, bufferSize: number): number;
  nCtx(context: NativePointer): number;
  nCtxSeq(context: NativePointer): number;
  nBatch(context: NativePointer): number;
  vocabNTokens(vocab: NativePointer): number;
  vocabBos(vocab: NativePointer): number;
  vocabIsEog(vocab: NativePointer, token: number): boolean;
  tokenize(
    vocab: NativePointer,
    text: string,
    textLength: number,
    tokens: Int32Array,
    maxTokens: number,
    addSpecial: boolean,
    parseSpecial: boolean,
  ): number;
  detokenize(
    vocab: NativePointer,
    tokens: Int32Array,
    tokenCount: number,
    text: Buffer,
    maxTextLength: number,
    removeSpecial: boolean,
    unparseSpecial: boolean,
  ): number;
  batchInit(tokenCapacity: number, embeddingSize: number, maxSequencesPerToken: number): LlamaBatch;
  batchFree(batch: LlamaBatch): void;
  decode(context: NativePointer, batch: LlamaBatch): number;
  getLogitsIth(context: NativePointer, index: number): NativePointer | null;
  getEmbeddingsIth(context: NativePointer, index: number): NativePointer | null;
  setEmbeddings(context: NativePointer, enabled: boolean): void;
  getMemory(context: NativePointer): NativePointer;
  memorySeqRm(memory: NativePointer, sequenceId: number, fromPosition: number, toPosition: number): boolean;
  memorySeqPosMax(memory: NativePointer, sequenceId: number): number;
  synchronize(context: NativePointer): void;
  /** Copies `count` floats from C memory into a fresh array (the C buffer is reused by the next decode). */
  readFloats(pointer: NativePointer, count: number, offsetFloats?: number): Float32Array;
  /** View over C memory of `count` floats; valid only until the next decode on that context. */
  float32View(pointer: NativePointer, count: number): Float32Array;
  /** Writable view over C memory of `count` int32 values. */
  int32View(pointer: NativePointer, count: number): Int32Array;
  /** Writable view over C memory of `count` int8 values. */
  int8View(pointer: NativePointer, count: number): Int8Array;
  /** Reads `count` pointers stored at `pointer` (an array of pointers). */
  readPointers(pointer: NativePointer, count: number): NativePointer[];
  /**
   * Makes `callback` callable from C (for `cb_eval`). It must be called only on the thread that
   * registered it, inside a C call made from that thread (llama_decode runs the callback synchronously).
   */
  registerEvalCallback(callback: EvalCallback): NativePointer;
  /** Frees a registration slot (koffi has a limited number). */
  unregisterCallback(handle: NativePointer): void;
  /** `ggml_get_name`: the name llama.cpp's graph builder gave a tensor (e.g. `l_out-3`). */
  tensorName(tensor: TensorAddress): string;
  /** Type, sizes and strides of a tensor, checked against `ggml_nelements` / `ggml_nrows`. */
  tensorShape(tensor: TensorAddress): TensorShape;
  /** `ggml_is_contiguous`. */
  tensorIsContiguous(tensor: TensorAddress): boolean;
  /** `ggml_backend_tensor_get`: copies `byteCount` bytes from `byteOffset` of the tensor's data into `target`. */
  copyTensorData(tensor: TensorAddress, target: Float32Array, byteOffset: number, byteCount: number): void;
}

// `enum` members are `int` on every ABI llama.cpp supports; C function pointers are plain pointers here.
const modelParamsType = koffi.struct("routelmt_llama_model_params", {
  devices: "void *",
  tensor_buft_overrides: "void *",
  n_gpu_layers: "int32_t",
  split_mode: "int",
  load_mode: "int",
  lazy_mode: "int",
  main_gpu: "int32_t",
  tensor_split: "void *",
  progress_callback: "void *",
  progress_callback_user_data: "void *",
  kv_overrides: "void *",
  vocab_only: "bool",
  check_tensors: "bool",
  use_extra_bufts: "bool",
  no_host: "bool",
  no_alloc: "bool",
  load_mtp: "bool",
});

const contextParamsType = koffi.struct("routelmt_llama_context_params", {
  n_ctx: "uint32_t",
  n_batch: "uint32_t",
  n_ubatch: "uint32_t",
  n_seq_max: "uint32_t",
  n_rs_seq: "uint32_t",
  n_outputs_max: "uint32_t",
  n_outputs_max_per_seq: "uint32_t",
  n_threads: "int32_t",
  n_threads_batch: "int32_t",
  ctx_type: "int",
  rope_scaling_type: "int",
  pooling_type: "int",
  attention_type: "int",
  flash_attn_type: "int",
  rope_freq_base: "float",
  rope_freq_scale: "float",
  yarn_ext_factor: "float",
  yarn_attn_factor: "float",
  yarn_beta_fast: "float",
  yarn_beta_slow: "float",
  yarn_orig_ctx: "uint32_t",
  defrag_thold: "float",
  cb_eval: "void *",
  cb_eval_user_data: "void *",
  type_k: "int",
  type_v: "int",
  abort_callback: "void *",
  abort_callback_data: "void *",
  embeddings: "bool",
  offload_kqv: "bool",
  no_perf: "bool",
  op_offload: "bool",
  swa_full: "bool",
  kv_unified: "bool",
  samplers: "void *",
  n_samplers: "size_t",
  ctx_other: "void *",
});

const batchType = koffi.struct("routelmt_llama_batch", {
  n_tokens: "int32_t",
  token: "void *",
  embd: "void *",
  pos: "void *",
  n_seq_id: "void *",
  seq_id: "void *",
  logits: "void *",
});

// `struct ggml_tensor` with GGML_MAX_DIMS 4, GGML_MAX_OP_PARAMS 64, GGML_MAX_SRC 10, GGML_MAX_NAME 64.
const tensorType = koffi.struct("routelmt_ggml_tensor", {
  type: "int",
  buffer: "void *",
  ne: koffi.array("int64_t", 4),
  nb: koffi.array("size_t", 4),
  op: "int",
  op_params: koffi.array("int32_t", 16),
  flags: "int32_t",
  src: koffi.array("void *", 10),
  view_src: "void *",
  view_offs: "size_t",
  data: "void *",
  name: koffi.array("char", 64),
  extra: "void *",
  padding: koffi.array("char", 8),
});

const evalCallbackType = koffi.proto(
  "bool routelmt_ggml_eval_callback(uintptr_t tensor, bool ask, uintptr_t user_data)",
);

/** Sizes measured from the header compiled against the shipped binary (x86-64 Linux). */
const EXPECTED_SIZES = { modelParams: 80, contextParams: 160, batch: 56, tensor: 336 } as const;
/** `sizeof(struct ggml_object)`, which `ggml_tensor_overhead()` adds to the tensor's size. */
const GGML_OBJECT_SIZE = 32;

/** Shared-library file names inside the node-llama-cpp binaries folder. */
const LIBGGML_FILE = "libggml.v0.4.0.so";
const LIBGGML_BASE_FILE = "libggml-base.so";
const LIBLLAMA_FILE = "libllama.v0.4.0.so";
const LIBC_FILE = "libc.so.6";

let loaded: Promise<LlamaFfi> | undefined;

/**
 * Finds node-llama-cpp's prebuilt CPU binaries for this platform. Only linux-x64 is supported: it is the
 * only platform whose struct layouts were checked.
 */
export async function findPrebuiltLibraryDir(): Promise<string> {
  if (process.platform !== "linux" || process.arch !== "x64") {
    throw new UnsupportedError(
      `llama FFI: only linux-x64 is supported (this is ${process.platform}-${process.arch})`,
    );
  }
  let binsInfo: { binsDir: string; packageVersion: string };
  try {
    // The package ships no type declarations; a variable specifier keeps tsc from resolving it.
    const specifier = "@node-llama-cpp/linux-x64";
    const prebuilt = (await import(specifier)) as {
      getBinsDir(): { binsDir: string; packageVersion: string };
    };
    binsInfo = prebuilt.getBinsDir();
  } catch (error) {
    throw new UnsupportedError("llama FFI: @node-llama-cpp/linux-x64 is not installed", { cause: error });
  }
  if (binsInfo.packageVersion !== PINNED_BINARY_VERSION) {
    throw new UnsupportedError(
      `llama FFI: struct layouts are pinned to @node-llama-cpp/linux-x64 ${PINNED_BINARY_VERSION}, found ${binsInfo.packageVersion}`,
    );
  }
  return path.join(binsInfo.binsDir, "linux-x64");
}

/**
 * Loads libllama once per process (later calls return the same bindings) and makes sure a CPU backend
 * is registered. Loading beside node-llama-cpp's addon is safe: both name the same files, so the
 * dynamic loader hands back the already-mapped library and its single backend registry.
 */
export function loadLlamaFfi(libraryDir?: string): Promise<LlamaFfi> {
  loaded ??= (async () => bind(libraryDir ?? (await findPrebuiltLibraryDir())))();
  return loaded;
}

function bind(libraryDir: string): LlamaFfi {
  const sizes = {
    modelParams: koffi.sizeof(modelParamsType),
    contextParams: koffi.sizeof(contextParamsType),
    batch: koffi.sizeof(batchType),
    tensor: koffi.sizeof(tensorType),
  };
  for (const key of Object.keys(EXPECTED_SIZES) as (keyof typeof EXPECTED_SIZES)[]) {
    if (sizes[key] !== EXPECTED_SIZES[key]) {
      throw new UnsupportedError(`llama FFI: ${key} is ${sizes[key]} bytes, expected ${EXPECTED_SIZES[key]}`);
    }
  }

  const ggml = koffi.load(path.join(libraryDir, LIBGGML_FILE));
  const ggmlBase = koffi.load(path.join(libraryDir, LIBGGML_BASE_FILE));
  const llama = koffi.load(path.join(libraryDir, LIBLLAMA_FILE));

  const tensorOverhead = Number(ggmlBase.func("ggml_tensor_overhead", "size_t", [])());
  if (tensorOverhead !== EXPECTED_SIZES.tensor + GGML_OBJECT_SIZE) {
    throw new UnsupportedError(
      `llama FFI: ggml_tensor_overhead() is ${tensorOverhead}, expected ${EXPECTED_SIZES.tensor + GGML_OBJECT_SIZE}`,
    );
  }
  // Tensors are passed by address (see TensorAddress): `uintptr_t` has a pointer's size and registers.
  const ggmlGetName = ggmlBase.func("ggml_get_name", "str", ["uintptr_t"]);
  const ggmlNelements = ggmlBase.func("ggml_nelements", "int64_t", ["uintptr_t"]);
  const ggmlNrows = ggmlBase.func("ggml_nrows", "int64_t", ["uintptr_t"]);
  const ggmlIsContiguous = ggmlBase.func("ggml_is_contiguous", "bool", ["uintptr_t"]);
  const ggmlBackendTensorGet = ggmlBase.func("ggml_backend_tensor_get", "void", [
    "uintptr_t",
    "void *",
    "size_t",
    "size_t",
  ]);
  // A tensor's fields are read from a copy of the struct: koffi decodes pointer objects, not addresses.
  const memcpyFromAddress = koffi.load(LIBC_FILE).func("memcpy", "void *", ["void *", "uintptr_t", "size_t"]);
  const tensorBytes = Buffer.alloc(EXPECTED_SIZES.tensor);
  const tensorFields = new DataView(tensorBytes.buffer, tensorBytes.byteOffset, tensorBytes.length);
  const neOffset = koffi.offsetof(tensorType, "ne");
  const nbOffset = koffi.offsetof(tensorType, "nb");
  const typeOffset = koffi.offsetof(tensorType, "type");

  const ggmlBackendDevCount = ggml.func("ggml_backend_dev_count", "size_t", []);
  const ggmlBackendLoadAllFromPath = ggml.func("ggml_backend_load_all_from_path", "void", ["str"]);
  // node-llama-cpp registers its backends the same way; the registry ignores a backend registered twice.
  if (Number(ggmlBackendDevCount()) === 0) ggmlBackendLoadAllFromPath(libraryDir);
  if (Number(ggmlBackendDevCount()) === 0) {
    throw new UnsupportedError(`llama FFI: no ggml backend could be loaded from ${libraryDir}`);
  }

  const fn = <T>(
    name: string,
    result: string | ReturnType<typeof koffi.struct>,
    args: (string | ReturnType<typeof koffi.struct>)[],
  ): T => llama.func(name, result, args) as unknown as T;

  return {
    libraryDir,
    backendInit: fn("llama_backend_init", "void", []),
    modelDefaultParams: fn("llama_model_default_params", modelParamsType, []),
    contextDefaultParams: fn("llama_context_default_params", contextParamsType, []),
    modelLoadFromFile: fn("llama_model_load_from_file", "void *", ["str", modelParamsType]),
    modelFree: fn("llama_model_free", "void", ["void *"]),
    initFromModel: fn("llama_init_from_model", "void *", ["void *", contextParamsType]),
    free: fn("llama_free", "void", ["void *"]),
    modelGetVocab: fn("llama_model_get_vocab", "void *", ["void *"]),
    modelNLayer: fn("llama_model_n_layer", "int32_t", ["void *"]),
    modelNEmbd: fn("llama_model_n_embd", "int32_t", ["void *"]),
    modelNEmbdOut: fn("llama_model_n_embd_out", "int32_t", ["void *"]),
    modelMetaValStr: fn("llama_model_meta_val_str", "int32_t", ["void *", "str", "void *", "size_t"]),
    nCtx: fn("llama_n_ctx", "uint32_t", ["void *"]),
    nCtxSeq: fn("llama_n_ctx_seq", "uint32_t", ["void *"]),
    nBatch: fn("llama_n_batch", "uint32_t", ["void *"]),
    vocabNTokens: fn("llama_vocab_n_tokens", "int32_t", ["void *"]),
    vocabBos: fn("llama_vocab_bos", "int32_t", ["void *"]),
    vocabIsEog: fn("llama_vocab_is_eog", "bool", ["void *", "int32_t"]),
    tokenize: fn("llama_tokenize", "int32_t", [
      "void *",
      "str",
      "int32_t",
      "int32_t *",
      "int32_t",
      "bool",
      "bool",
    ]),
    detokenize: fn("llama_detokenize", "int32_t", [
      "void *",
      "int32_t *",
      "int32_t",
      "void *",
      "int32_t",
      "bool",
      "bool",
    ]),
    batchInit: fn("llama_batch_init", batchType, ["int32_t", "int32_t", "int32_t"]),
    batchFree: fn("llama_batch_free", "void", [batchType]),
    decode: fn("llama_decode", "int32_t", ["void *", batchType]),
    getLogitsIth: fn("llama_get_logits_ith", "void *", ["void *", "int32_t"]),
    getEmbeddingsIth: fn("llama_get_embeddings_ith", "void *", ["void *", "int32_t"]),
    setEmbeddings: fn("llama_set_embeddings", "void", ["void *", "bool"]),
    getMemory: fn("llama_get_memory", "void *", ["void *"]),
    memorySeqRm: fn("llama_memory_seq_rm", "bool", ["void *", "int32_t", "int32_t", "int32_t"]),
    memorySeqPosMax: fn("llama_memory_seq_pos_max", "int32_t", ["void *", "int32_t"]),
    synchronize: fn("llama_synchronize", "void", ["void *"]),
    readFloats(pointer, count, offsetFloats = 0) {
      const bytes = koffi.view(pointer, (offsetFloats + count) * Float32Array.BYTES_PER_ELEMENT);
      return new Float32Array(bytes, offsetFloats * Float32Array.BYTES_PER_ELEMENT, count).slice();
    },
    float32View(pointer, count) {
      return new Float32Array(koffi.view(pointer, count * Float32Array.BYTES_PER_ELEMENT));
    },
    int32View(pointer, count) {
      return new Int32Array(koffi.view(pointer, count * Int32Array.BYTES_PER_ELEMENT));
    },
    int8View(pointer, count) {
      return new Int8Array(koffi.view(pointer, count));
    },
    readPointers(pointer, count) {
      return koffi.decode(pointer, "void *", count) as NativePointer[];
    },
    registerEvalCallback(callback) {
      return koffi.register(callback, koffi.pointer(evalCallbackType)) as NativePointer;
    },
    unregisterCallback(handle) {
      koffi.unregister(handle as ReturnType<typeof koffi.register>);
    },
    tensorName(tensor) {
      return ggmlGetName(tensor) as string;
    },
    tensorShape(tensor) {
      memcpyFromAddress(tensorBytes, tensor, tensorBytes.length);
      const dimensions = [0, 1, 2, 3];
      const ne = dimensions.map((index) => Number(tensorFields.getBigInt64(neOffset + 8 * index, true)));
      const nb = dimensions.map((index) => Number(tensorFields.getBigUint64(nbOffset + 8 * index, true)));
      const type = tensorFields.getInt32(typeOffset, true);
      // A wrong layout would show here first: the decoded sizes must agree with ggml's own accessors.
      const elements = ne.reduce((product, size) => product * size, 1);
      const rows = elements / (ne[0] || 1);
      if (elements !== Number(ggmlNelements(tensor)) || rows !== Number(ggmlNrows(tensor))) {
        throw new UnsupportedError(
          `llama FFI: decoded tensor sizes [${ne.join(", ")}] disagree with ggml_nelements/ggml_nrows`,
        );
      }
      return { type, ne: ne as TensorShape["ne"], nb: nb as TensorShape["nb"] };
    },
    tensorIsContiguous(tensor) {
      return ggmlIsContiguous(tensor) as boolean;
    },
    copyTensorData(tensor, target, byteOffset, byteCount) {
      if (byteCount > target.byteLength) {
        throw new RangeError(`cannot copy ${byteCount} bytes into ${target.byteLength}`);
      }
      ggmlBackendTensorGet(tensor, target, byteOffset, byteCount);
    },
  };
}
