/**
 * Random-weight GGUF models for tests and benchmarks: deterministic (seeded), no download.
 * By default the graph is the standard one llama.cpp builds for `general.architecture = llama`: token
 * embedding, per layer RMSNorm → Q/K/V (rope NORMAL) → causal attention → output projection, RMSNorm →
 * SwiGLU FFN, then a final RMSNorm and an untied output matrix. Other architectures (`architecture`
 * option) get the tensors and metadata llama.cpp's loader requires for them (checked against the
 * bundled `src/models/<arch>.cpp`, see {@link TINY_ARCHITECTURES}); the reference forward pass models
 * `llama` only.
 */
import {
  type GgufMetadataValue,
  type GgufTensor,
  type GgufWriteSummary,
  gguf,
  writeGguf,
} from "./gguf-writer.js";

/**
 * Architectures the generator writes, with what each adds to or changes from `llama`:
 * - `mistral3`: the llama tensors under `mistral3.*` keys (Mistral Small 3.1, Ministral 3);
 * - `qwen2`: biases on Q, K and V;
 * - `qwen3`: RMS norms of each query and key head (`attn_q_norm`, `attn_k_norm`);
 * - `gemma2`: norms after attention and after the FFN (`post_attention_norm`, `post_ffw_norm`), GELU
 *   FFN, embeddings scaled by √dim, output tied to the embeddings, sliding-window attention on every
 *   other layer;
 * - `gemma3`: gemma2's layout plus query/key head norms, an untied output and a sliding window;
 * - `phi3`: fused QKV (`attn_qkv`) and fused gate/up (`ffn_up` of twice the FFN width);
 * - `qwen3moe`: qwen3's attention and a mixture-of-experts FFN ({@link TINY_EXPERTS} experts of half
 *   the FFN width, two used per token, chosen by a router matrix `ffn_gate_inp`).
 */
export const TINY_ARCHITECTURES = [
  "llama",
  "mistral3",
  "qwen2",
  "qwen3",
  "qwen3moe",
  "gemma2",
  "gemma3",
  "phi3",
] as const;
export type TinyArchitecture = (typeof TINY_ARCHITECTURES)[number];

/** Experts of a generated mixture-of-experts model, and how many each token uses. */
export const TINY_EXPERTS = { count: 4, used: 2 } as const;

/** Sliding window of the generated Gemma models: shorter than a long test prompt, so the mask matters. */
const TINY_SLIDING_WINDOW = 16;

/** Shape and seed of a generated model. */
export interface TinyLlamaOptions {
  /** `general.architecture`; see {@link TINY_ARCHITECTURES}. */
  architecture: TinyArchitecture;
  /** PRNG seed; the same options always give byte-identical files. */
  seed: number;
  nLayer: number;
  nEmbd: number;
  nHead: number;
  /** Key/value heads; fewer than `nHead` makes grouped-query attention. */
  nHeadKv: number;
  nFf: number;
  /** Vocabulary size; pieces beyond the built-in English ones are synthetic letter strings. */
  vocab: number;
  contextLength: number;
  ropeFreqBase: number;
  rmsEps: number;
  /** Element type of the 2-D weight matrices; norm vectors are always F32 (as llama.cpp's converters do). */
  matrixType: "F32" | "F16";
  /** `general.name`. */
  name: string;
  /** `tokenizer.chat_template` (a Jinja template), or null for a raw-completion model. */
  chatTemplate: string | null;
}

/**
 * Defaults of {@link writeTinyLlamaGguf}: 2 layers, dim 64, 4 query heads of 16 over 2 KV heads (GQA),
 * FFN 128, 512 pieces, context 256, rope base 10000, eps 1e-5, F32, seed 1234 — 0.14 M
 * parameters, a 0.57 MB file.
 */
export const TINY_LLAMA_DEFAULTS: Readonly<TinyLlamaOptions> = {
  architecture: "llama",
  seed: 1234,
  nLayer: 2,
  nEmbd: 64,
  nHead: 4,
  nHeadKv: 2,
  nFf: 128,
  vocab: 512,
  contextLength: 256,
  ropeFreqBase: 10000,
  rmsEps: 1e-5,
  matrixType: "F32",
  name: "routelmt-tiny-llama",
  chatTemplate: null,
};

/**
 * Shape of {@link writeBenchLlamaGguf}: 8 layers, dim 512, 8 heads of 64, FFN 2304, 32,000 pieces,
 * context 2048, F16 matrices — 69.5 M parameters (two 16.4 M embedding/output matrices plus
 * 8 × 4.59 M per layer), a 139 MB file.
 */
export const BENCH_LLAMA_OPTIONS: Readonly<TinyLlamaOptions> = {
  architecture: "llama",
  seed: 4321,
  nLayer: 8,
  nEmbd: 512,
  nHead: 8,
  nHeadKv: 8,
  nFf: 2304,
  vocab: 32000,
  contextLength: 2048,
  ropeFreqBase: 10000,
  rmsEps: 1e-5,
  matrixType: "F16",
  name: "routelmt-bench-llama",
  chatTemplate: null,
};

/** SentencePiece token types as llama.cpp reads them from `tokenizer.ggml.token_type`. */
export const TOKEN_TYPE = { normal: 1, unknown: 2, control: 3, userDefined: 4, unused: 5, byte: 6 } as const;

/** The SentencePiece word-boundary mark that stands for a space. */
export const SPACE_MARK = "\u2581";

/** A SentencePiece-style vocabulary as stored in GGUF. */
export interface Vocabulary {
  tokens: string[];
  scores: number[];
  tokenTypes: number[];
}

/** Ids of the special tokens every generated vocabulary has. */
export const SPECIAL_TOKEN_IDS = { unknown: 0, bos: 1, eos: 2 } as const;

/** Id of the byte-fallback token `<0xXX>` for a byte (they follow the three special tokens). */
export function byteTokenId(byte: number): number {
  return 3 + byte;
}

/**
 * English words in the vocabulary, each with and without the word-boundary mark, plus every prefix
 * of both, so that llama.cpp's SPM merge loop (which only joins adjacent pieces whose concatenation
 * is itself a piece) can build each word up from its letters.
 */
const VOCABULARY_WORDS = [
  "the",
  "The",
  "a",
  "A",
  "an",
  "and",
  "is",
  "was",
  "on",
  "in",
  "of",
  "to",
  "it",
  "at",
  "cat",
  "dog",
  "sat",
  "mat",
  "man",
  "red",
  "big",
  "house",
  "hello",
  "Hello",
  "world",
  "with",
  "this",
  "that",
  "English",
  "German",
];

const LETTERS = "abcdefghijklmnopqrstuvwxyz";
const SINGLE_CHARACTER_PIECES = [...LETTERS, ..."ATHEG", ".", ",", ":", "!", "?", "'", SPACE_MARK];

function englishPieces(): string[] {
  const pieces = new Set<string>(SINGLE_CHARACTER_PIECES);
  const multi = new Set<string>();
  for (const word of VOCABULARY_WORDS) {
    for (const form of [word, SPACE_MARK + word]) {
      const characters = [...form];
      for (let end = 2; end <= characters.length; end++) multi.add(characters.slice(0, end).join(""));
    }
  }
  // Shorter pieces get higher scores, like early BPE merges, so merging builds words bottom-up.
  const ordered = [...multi].filter((piece) => !pieces.has(piece));
  ordered.sort((left, right) => [...left].length - [...right].length || (left < right ? -1 : 1));
  return [...SINGLE_CHARACTER_PIECES, ...ordered];
}

/** Synthetic filler pieces: `▁xy`, `xy`, `▁xyz`, `xyz`, ... in a fixed order. */
function* syntheticPieces(): Generator<string> {
  for (let length = 2; ; length++) {
    const count = LETTERS.length ** length;
    for (let index = 0; index < count; index++) {
      let rest = index;
      let piece = "";
      for (let position = 0; position < length; position++) {
        piece = LETTERS[rest % LETTERS.length]! + piece;
        rest = Math.floor(rest / LETTERS.length);
      }
      yield SPACE_MARK + piece;
      yield piece;
    }
  }
}

/** Number of pieces the vocabulary needs before any synthetic filler. */
export function minimumVocabularySize(): number {
  return 3 + 256 + englishPieces().length;
}

/**
 * The vocabulary of every generated model: `<unk>`, `<s>`, `</s>`, the 256 byte tokens `<0x00>`…`<0xFF>`
 * (type BYTE), then single characters, English words and their prefixes, then synthetic letter pieces
 * up to `size`. Scores follow SentencePiece BPE (0 for special and byte tokens, −rank for the rest).
 */
export function buildVocabulary(size: number): Vocabulary {
  const tokens = ["<unk>", "<s>", "</s>"];
  const tokenTypes: number[] = [TOKEN_TYPE.unknown, TOKEN_TYPE.control, TOKEN_TYPE.control];
  for (let byte = 0; byte < 256; byte++) {
    tokens.push(`<0x${byte.toString(16).toUpperCase().padStart(2, "0")}>`);
    tokenTypes.push(TOKEN_TYPE.byte);
  }
  const seen = new Set(tokens);
  const add = (piece: string): void => {
    if (tokens.length >= size || seen.has(piece)) return;
    seen.add(piece);
    tokens.push(piece);
    tokenTypes.push(TOKEN_TYPE.normal);
  };
  if (size < minimumVocabularySize()) {
    throw new RangeError(`vocabulary size ${size} is below the minimum ${minimumVocabularySize()}`);
  }
  for (const piece of englishPieces()) add(piece);
  for (const piece of syntheticPieces()) {
    if (tokens.length >= size) break;
    add(piece);
  }
  const firstNormal = 3 + 256;
  const scores = tokens.map((_, id) => (id < firstNormal ? 0 : -(id - firstNormal)));
  return { tokens, scores, tokenTypes };
}

/** mulberry32: a tiny, fast, well-mixed 32-bit PRNG giving floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let mixed = state;
    mixed = Math.imul(mixed ^ (mixed >>> 15), mixed | 1);
    mixed ^= mixed + Math.imul(mixed ^ (mixed >>> 7), mixed | 61);
    return ((mixed ^ (mixed >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Fills `values` with `mean + std · N(0, 1)`: Box–Muller, two samples (cos, sin) per pair of uniforms.
 * `1 − u` keeps the logarithm's argument in (0, 1].
 */
export function fillNormal(values: Float32Array, uniform: () => number, mean: number, std: number): void {
  for (let i = 0; i < values.length; i += 2) {
    const radius = Math.sqrt(-2 * Math.log(1 - uniform()));
    const angle = 2 * Math.PI * uniform();
    values[i] = mean + std * radius * Math.cos(angle);
    if (i + 1 < values.length) values[i + 1] = mean + std * radius * Math.sin(angle);
  }
}

/** A tensor's values: `mean + std · N(0, 1)` from a PRNG seeded by (model seed, tensor index). */
function tensorValues(seed: number, tensorIndex: number, plan: TensorPlan): Float32Array {
  const values = new Float32Array(plan.dimensions.reduce((product, size) => product * size, 1));
  fillNormal(values, mulberry32((seed ^ Math.imul(tensorIndex + 1, 0x9e3779b9)) >>> 0), plan.mean, plan.std);
  const rowLength = plan.dimensions[0]!;
  for (const row of plan.zeroRows ?? []) values.fill(0, row * rowLength, (row + 1) * rowLength);
  return values;
}

/** One tensor of the generated model and how its values are drawn. */
interface TensorPlan {
  name: string;
  dimensions: number[];
  mean: number;
  std: number;
  /** Rows (ne[1] indices) set to zero after drawing. */
  zeroRows?: readonly number[];
}

/**
 * The tensors of a llama model in the order llama.cpp's converters write them. A weight used as
 * `W x` with `W` of shape `[out, in]` has ggml dimensions `[in, out]`.
 *
 * Scales: embeddings N(0, 1) so each token starts with a distinct, unit-size state; norm weights
 * 1 + N(0, 0.1) so a wrongly skipped norm weight shows; matrices N(0, 1/in) so each projection keeps
 * unit-size activations (0.02–0.125 here); the output matrix N(0, 4/in) so logits spread by about ±2
 * and greedy choices are not near-ties. The output rows of `<unk>`, `<s>` and the byte tokens are zero
 * (logit 0, far below the top logits), so greedy text is made of pieces — no stray invalid UTF-8 —
 * and `</s>` can still end it.
 */
function tensorPlan(options: TinyLlamaOptions, vocabulary: Vocabulary): TensorPlan[] {
  const { architecture, nEmbd, nFf, nHead, nHeadKv, nLayer, vocab } = options;
  const headDim = nEmbd / nHead;
  const kvDim = headDim * nHeadKv;
  const isGemma = architecture === "gemma2" || architecture === "gemma3";
  const matrix = (name: string, input: number, output: number, gain = 1): TensorPlan => ({
    name,
    dimensions: [input, output],
    mean: 0,
    std: gain / Math.sqrt(input),
  });
  const norm = (name: string, size = nEmbd): TensorPlan => ({ name, dimensions: [size], mean: 1, std: 0.1 });
  const bias = (name: string, size: number): TensorPlan => ({ name, dimensions: [size], mean: 0, std: 0.1 });
  // Gemma scales embeddings by √dim before the first layer: smaller draws keep the same unit-size states.
  const embeddingStd = isGemma ? 1 / Math.sqrt(nEmbd) : 1;
  const plan: TensorPlan[] = [
    { name: "token_embd.weight", dimensions: [nEmbd, vocab], mean: 0, std: embeddingStd },
  ];
  for (let layer = 0; layer < nLayer; layer++) {
    const prefix = `blk.${layer}`;
    plan.push(norm(`${prefix}.attn_norm.weight`));
    if (architecture === "phi3") {
      plan.push(matrix(`${prefix}.attn_qkv.weight`, nEmbd, nEmbd + 2 * kvDim));
    } else {
      plan.push(
        matrix(`${prefix}.attn_q.weight`, nEmbd, nEmbd),
        matrix(`${prefix}.attn_k.weight`, nEmbd, kvDim),
        matrix(`${prefix}.attn_v.weight`, nEmbd, kvDim),
      );
    }
    if (architecture === "qwen2") {
      plan.push(
        bias(`${prefix}.attn_q.bias`, nEmbd),
        bias(`${prefix}.attn_k.bias`, kvDim),
        bias(`${prefix}.attn_v.bias`, kvDim),
      );
    }
    if (architecture === "qwen3" || architecture === "qwen3moe" || architecture === "gemma3") {
      plan.push(norm(`${prefix}.attn_q_norm.weight`, headDim), norm(`${prefix}.attn_k_norm.weight`, headDim));
    }
    plan.push(matrix(`${prefix}.attn_output.weight`, nEmbd, nEmbd));
    if (isGemma) plan.push(norm(`${prefix}.post_attention_norm.weight`));
    plan.push(norm(`${prefix}.ffn_norm.weight`));
    if (architecture === "phi3") {
      plan.push(
        matrix(`${prefix}.ffn_up.weight`, nEmbd, 2 * nFf),
        matrix(`${prefix}.ffn_down.weight`, nFf, nEmbd),
      );
    } else if (architecture === "qwen3moe") {
      const expertFf = nFf / 2;
      const experts = (name: string, input: number, output: number): TensorPlan => ({
        name,
        dimensions: [input, output, TINY_EXPERTS.count],
        mean: 0,
        std: 1 / Math.sqrt(input),
      });
      plan.push(
        matrix(`${prefix}.ffn_gate_inp.weight`, nEmbd, TINY_EXPERTS.count),
        experts(`${prefix}.ffn_gate_exps.weight`, nEmbd, expertFf),
        experts(`${prefix}.ffn_down_exps.weight`, expertFf, nEmbd),
        experts(`${prefix}.ffn_up_exps.weight`, nEmbd, expertFf),
      );
    } else {
      plan.push(
        matrix(`${prefix}.ffn_gate.weight`, nEmbd, nFf),
        matrix(`${prefix}.ffn_up.weight`, nEmbd, nFf),
        matrix(`${prefix}.ffn_down.weight`, nFf, nEmbd),
      );
    }
    if (isGemma) plan.push(norm(`${prefix}.post_ffw_norm.weight`));
  }
  plan.push(norm("output_norm.weight"));
  // gemma2 always ties its output to the embeddings (llama.cpp has no output tensor for it).
  if (architecture !== "gemma2") {
    const zeroRows = vocabulary.tokenTypes.flatMap((type, id) =>
      type === TOKEN_TYPE.unknown || type === TOKEN_TYPE.byte || id === SPECIAL_TOKEN_IDS.bos ? [id] : [],
    );
    plan.push({ ...matrix("output.weight", nEmbd, vocab, 2), zeroRows });
  }
  return plan;
}

function validate(options: TinyLlamaOptions): void {
  const positive = ["nLayer", "nEmbd", "nHead", "nHeadKv", "nFf", "vocab", "contextLength"] as const;
  for (const key of positive) {
    if (!Number.isInteger(options[key]) || options[key] <= 0) {
      throw new RangeError(`${key} must be a positive integer`);
    }
  }
  if (options.nEmbd % options.nHead !== 0) throw new RangeError("nEmbd must be a multiple of nHead");
  if (options.nHead % options.nHeadKv !== 0) throw new RangeError("nHead must be a multiple of nHeadKv");
  if ((options.nEmbd / options.nHead) % 2 !== 0)
    throw new RangeError("the head dimension must be even (rope pairs)");
}

/** The GGUF metadata llama.cpp needs for a model of this architecture, shape and vocabulary. */
function modelMetadata(options: TinyLlamaOptions, vocabulary: Vocabulary): Map<string, GgufMetadataValue> {
  const arch = options.architecture;
  const isGemma = arch === "gemma2" || arch === "gemma3";
  return new Map<string, GgufMetadataValue>([
    ["general.architecture", gguf.str(arch)],
    ["general.name", gguf.str(options.name)],
    ["general.alignment", gguf.u32(32)],
    // llama_ftype: 0 = ALL_F32, 1 = MOSTLY_F16.
    ["general.file_type", gguf.u32(options.matrixType === "F16" ? 1 : 0)],
    [`${arch}.vocab_size`, gguf.u32(options.vocab)],
    [`${arch}.context_length`, gguf.u32(options.contextLength)],
    [`${arch}.embedding_length`, gguf.u32(options.nEmbd)],
    [`${arch}.block_count`, gguf.u32(options.nLayer)],
    [`${arch}.feed_forward_length`, gguf.u32(options.nFf)],
    [`${arch}.attention.head_count`, gguf.u32(options.nHead)],
    [`${arch}.attention.head_count_kv`, gguf.u32(options.nHeadKv)],
    [`${arch}.rope.dimension_count`, gguf.u32(options.nEmbd / options.nHead)],
    [`${arch}.attention.layer_norm_rms_epsilon`, gguf.f32(options.rmsEps)],
    [`${arch}.rope.freq_base`, gguf.f32(options.ropeFreqBase)],
    ...(isGemma ? [[`${arch}.attention.sliding_window`, gguf.u32(TINY_SLIDING_WINDOW)] as const] : []),
    ...(arch === "qwen3moe"
      ? ([
          [`${arch}.expert_count`, gguf.u32(TINY_EXPERTS.count)],
          [`${arch}.expert_used_count`, gguf.u32(TINY_EXPERTS.used)],
          [`${arch}.expert_feed_forward_length`, gguf.u32(options.nFf / 2)],
        ] as const)
      : []),
    ["tokenizer.ggml.model", gguf.str("llama")],
    ["tokenizer.ggml.tokens", gguf.strings(vocabulary.tokens)],
    ["tokenizer.ggml.scores", gguf.f32s(vocabulary.scores)],
    ["tokenizer.ggml.token_type", gguf.i32s(vocabulary.tokenTypes)],
    ["tokenizer.ggml.unknown_token_id", gguf.u32(SPECIAL_TOKEN_IDS.unknown)],
    ["tokenizer.ggml.bos_token_id", gguf.u32(SPECIAL_TOKEN_IDS.bos)],
    ["tokenizer.ggml.eos_token_id", gguf.u32(SPECIAL_TOKEN_IDS.eos)],
    ["tokenizer.ggml.add_bos_token", gguf.bool(true)],
    ["tokenizer.ggml.add_eos_token", gguf.bool(false)],
    ["tokenizer.ggml.add_space_prefix", gguf.bool(false)],
    ...(options.chatTemplate === null
      ? []
      : [["tokenizer.chat_template", gguf.str(options.chatTemplate)] as const]),
  ]);
}

/**
 * Parameters of a llama model with this shape: embedding and output matrices (vocab × nEmbd each),
 * per layer 2 norms + Q/O (nEmbd²) + K/V (nEmbd × kvDim) + 3 FFN matrices (nEmbd × nFf), final norm.
 */
export function llamaParameterCount(
  options: Pick<TinyLlamaOptions, "nLayer" | "nEmbd" | "nHead" | "nHeadKv" | "nFf" | "vocab">,
): number {
  const { nLayer, nEmbd, nHead, nHeadKv, nFf, vocab } = options;
  const kvDim = (nEmbd / nHead) * nHeadKv;
  const perLayer = 2 * nEmbd + 2 * nEmbd * nEmbd + 2 * nEmbd * kvDim + 3 * nEmbd * nFf;
  return 2 * vocab * nEmbd + nLayer * perLayer + nEmbd;
}

/** What {@link writeTinyLlamaGguf} wrote. */
export interface GeneratedLlama extends GgufWriteSummary {
  path: string;
  options: TinyLlamaOptions;
  vocabulary: Vocabulary;
}

/**
 * Writes a random-weight GGUF (a `llama` unless `architecture` says otherwise). Options default to
 * {@link TINY_LLAMA_DEFAULTS}; the file is a pure function of the options (seeded PRNG per tensor).
 */
export function writeTinyLlamaGguf(
  filePath: string,
  options: Partial<TinyLlamaOptions> = {},
): GeneratedLlama {
  const resolved: TinyLlamaOptions = { ...TINY_LLAMA_DEFAULTS, ...options };
  validate(resolved);
  const vocabulary = buildVocabulary(resolved.vocab);
  const tensors: GgufTensor[] = tensorPlan(resolved, vocabulary).map((plan, index) => ({
    name: plan.name,
    dimensions: plan.dimensions,
    type: plan.dimensions.length >= 2 ? resolved.matrixType : "F32",
    data: () => tensorValues(resolved.seed, index, plan),
  }));
  const summary = writeGguf(filePath, modelMetadata(resolved, vocabulary), tensors);
  return { ...summary, path: filePath, options: resolved, vocabulary };
}

/** Writes the ~70 M-parameter benchmark model ({@link BENCH_LLAMA_OPTIONS}, F16 matrices, 139 MB). */
export function writeBenchLlamaGguf(filePath: string): GeneratedLlama {
  return writeTinyLlamaGguf(filePath, BENCH_LLAMA_OPTIONS);
}
