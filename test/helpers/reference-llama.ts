/**
 * A plain-TypeScript forward pass of llama.cpp's `llama` graph over the weights of a parsed GGUF, to
 * check what node-llama-cpp computes. Arithmetic is float64; results are returned as float32.
 *
 * Per layer (pre-norm residual): h += Wo · attention(rope(Wq · n), rope(Wk · n), Wv · n) with
 * n = RMSNorm(h) ⊙ attn_norm; h += W_down · (silu(W_gate · m) ⊙ (W_up · m)) with m = RMSNorm(h) ⊙ ffn_norm.
 * Then RMSNorm(h) ⊙ output_norm gives the final hidden state and `output` the logits.
 */

import { metadataNumber, type ParsedGguf, tensorData } from "./gguf-reader.js";
import { roundToFloat16 } from "./gguf-writer.js";

/** Options of {@link referenceForward}. */
export interface ReferenceForwardOptions {
  /**
   * Round queries, keys, values and attention weights to float16, as llama.cpp's CPU attention without
   * flash attention does with its default f16 KV cache (K·Q and V·softmax run as f16 dot products).
   * With flash attention the rounding differs (f16 accumulation), so this only brings the two closer.
   * Defaults to false (exact float64 attention).
   */
  simulateF16Attention?: boolean;
}

/** What {@link referenceForward} returns: states at the last token, and at every token for pooling. */
export interface ReferenceForwardResult {
  /** The final hidden state after `output_norm` (what llama.cpp returns as the embedding), length nEmbd. */
  hiddenFinal: Float32Array;
  /** The residual stream entering each layer (index 0 = token embedding), length nLayer, each nEmbd. */
  layerInputs: Float32Array[];
  /** Next-token logits, length vocab. */
  logitsLast: Float32Array;
  /** `hiddenFinal` at every prompt position, in order. */
  hiddenFinalAll: Float32Array[];
  /** `layerInputs` at every prompt position: `layerInputsAll[layer][position]`. */
  layerInputsAll: Float32Array[][];
}

/** The element-wise mean of equally long rows (float64 sums, float32 result), e.g. a mean-pooled view. */
export function meanRows(rows: readonly ArrayLike<number>[]): Float32Array {
  const first = rows[0];
  if (first === undefined) throw new RangeError("meanRows needs at least one row");
  const sums = new Float64Array(first.length);
  for (const row of rows) for (let i = 0; i < sums.length; i++) sums[i]! += row[i]!;
  return Float32Array.from(sums, (sum) => sum / rows.length);
}

/** The Euclidean norm of a row (float64), what a `norms` view summarises per token. */
export function euclideanNorm(row: ArrayLike<number>): number {
  let squares = 0;
  for (let i = 0; i < row.length; i++) squares += row[i]! * row[i]!;
  return Math.sqrt(squares);
}

/** x / sqrt(mean(x²) + eps) ⊙ weight: ggml_rms_norm followed by the norm weight. */
export function rmsNorm(x: ArrayLike<number>, weight: ArrayLike<number>, eps: number): Float64Array {
  let sumOfSquares = 0;
  for (let i = 0; i < x.length; i++) sumOfSquares += x[i]! * x[i]!;
  const scale = 1 / Math.sqrt(sumOfSquares / x.length + eps);
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = x[i]! * scale * weight[i]!;
  return out;
}

/**
 * W · x for a ggml matrix with dimensions `[inputs, outputs]` (row-major `[outputs][inputs]` in memory).
 */
export function matVec(
  weight: ArrayLike<number>,
  inputs: number,
  outputs: number,
  x: ArrayLike<number>,
): Float64Array {
  if (weight.length !== inputs * outputs || x.length !== inputs) {
    throw new RangeError(
      `matVec: weight ${weight.length} values, x ${x.length}, expected ${inputs}×${outputs}`,
    );
  }
  const out = new Float64Array(outputs);
  for (let row = 0; row < outputs; row++) {
    let sum = 0;
    const base = row * inputs;
    for (let column = 0; column < inputs; column++) sum += weight[base + column]! * x[column]!;
    out[row] = sum;
  }
  return out;
}

/**
 * Rotary embedding in GGML's NORMAL layout, in place over one head: adjacent pairs (x[2i], x[2i+1])
 * rotate by position · base^(−2i/headDim).
 */
export function applyRopeNormal(head: Float64Array, position: number, base: number): void {
  const headDim = head.length;
  for (let i = 0; i < headDim / 2; i++) {
    const theta = position * base ** ((-2 * i) / headDim);
    const cos = Math.cos(theta);
    const sin = Math.sin(theta);
    const x0 = head[2 * i]!;
    const x1 = head[2 * i + 1]!;
    head[2 * i] = x0 * cos - x1 * sin;
    head[2 * i + 1] = x0 * sin + x1 * cos;
  }
}

/** x · sigmoid(x). */
export function silu(x: number): number {
  return x / (1 + Math.exp(-x));
}

/** Softmax, numerically stable. */
export function softmax(values: ArrayLike<number>): Float64Array {
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < values.length; i++) max = Math.max(max, values[i]!);
  const out = new Float64Array(values.length);
  let sum = 0;
  for (let i = 0; i < values.length; i++) {
    out[i] = Math.exp(values[i]! - max);
    sum += out[i]!;
  }
  for (let i = 0; i < values.length; i++) out[i]! /= sum;
  return out;
}

/** Hyper-parameters of a llama GGUF, read from its metadata. */
export interface LlamaHyperparameters {
  nLayer: number;
  nEmbd: number;
  nHead: number;
  nHeadKv: number;
  nFf: number;
  vocab: number;
  headDim: number;
  ropeFreqBase: number;
  rmsEps: number;
}

/** Reads the llama hyper-parameters from GGUF metadata; vocab is the token list's length. */
export function llamaHyperparameters(model: ParsedGguf): LlamaHyperparameters {
  const architecture = model.metadata.get("general.architecture");
  if (architecture !== "llama") throw new Error(`expected a llama GGUF, got ${String(architecture)}`);
  const tokens = model.metadata.get("tokenizer.ggml.tokens");
  const nEmbd = metadataNumber(model, "llama.embedding_length");
  const nHead = metadataNumber(model, "llama.attention.head_count");
  const headDim = nEmbd / nHead;
  const ropeDimensions = metadataNumber(model, "llama.rope.dimension_count");
  if (ropeDimensions !== headDim)
    throw new Error(`partial rope (${ropeDimensions} of ${headDim}) is not modelled`);
  return {
    nLayer: metadataNumber(model, "llama.block_count"),
    nEmbd,
    nHead,
    nHeadKv: model.metadata.has("llama.attention.head_count_kv")
      ? metadataNumber(model, "llama.attention.head_count_kv")
      : nHead,
    nFf: metadataNumber(model, "llama.feed_forward_length"),
    vocab: Array.isArray(tokens) ? tokens.length : metadataNumber(model, "llama.vocab_size"),
    headDim,
    ropeFreqBase: model.metadata.has("llama.rope.freq_base")
      ? metadataNumber(model, "llama.rope.freq_base")
      : 10000,
    rmsEps: metadataNumber(model, "llama.attention.layer_norm_rms_epsilon"),
  };
}

/** Causal attention of one layer over all positions, before the output projection. */
function attention(
  normed: Float64Array[],
  layer: string,
  model: ParsedGguf,
  shape: LlamaHyperparameters,
  simulateF16: boolean,
): Float64Array[] {
  const { nEmbd, nHead, nHeadKv, headDim, ropeFreqBase } = shape;
  const kvDim = nHeadKv * headDim;
  const round = (vector: Float64Array): Float64Array => (simulateF16 ? vector.map(roundToFloat16) : vector);
  const project = (name: string, outputs: number): Float64Array[] =>
    normed.map((x) => matVec(tensorData(model, `${layer}.${name}.weight`).data, nEmbd, outputs, x));
  const ropeHeads = (vectors: Float64Array[], heads: number): Float64Array[] =>
    vectors.map((vector, position) => {
      for (let head = 0; head < heads; head++) {
        applyRopeNormal(vector.subarray(head * headDim, (head + 1) * headDim), position, ropeFreqBase);
      }
      return round(vector);
    });
  const queries = ropeHeads(project("attn_q", nEmbd), nHead);
  const keys = ropeHeads(project("attn_k", kvDim), nHeadKv);
  const values = project("attn_v", kvDim).map(round);
  const scale = 1 / Math.sqrt(headDim);
  const group = nHead / nHeadKv;
  return queries.map((query, position) => {
    const mixed = new Float64Array(nEmbd);
    for (let head = 0; head < nHead; head++) {
      const kvOffset = Math.floor(head / group) * headDim;
      const scores = new Float64Array(position + 1);
      for (let past = 0; past <= position; past++) {
        let dot = 0;
        for (let i = 0; i < headDim; i++) dot += query[head * headDim + i]! * keys[past]![kvOffset + i]!;
        scores[past] = dot * scale;
      }
      const weights = round(softmax(scores));
      for (let past = 0; past <= position; past++) {
        for (let i = 0; i < headDim; i++) {
          mixed[head * headDim + i]! += weights[past]! * values[past]![kvOffset + i]!;
        }
      }
    }
    return mixed;
  });
}

/**
 * Runs the whole prompt `tokenIds` (include BOS yourself if the engine adds it) through the model and
 * returns the last token's final hidden state, per-layer inputs and logits, and the states at every
 * position (for mean pooling).
 */
export function referenceForward(
  model: ParsedGguf,
  tokenIds: readonly number[],
  options: ReferenceForwardOptions = {},
): ReferenceForwardResult {
  if (tokenIds.length === 0) throw new RangeError("referenceForward needs at least one token");
  const shape = llamaHyperparameters(model);
  const { nEmbd, nFf, nLayer, vocab, rmsEps } = shape;
  const embedding = tensorData(model, "token_embd.weight").data;
  let hidden = tokenIds.map((id) => {
    if (!Number.isInteger(id) || id < 0 || id >= vocab)
      throw new RangeError(`token id ${id} outside 0..${vocab - 1}`);
    return Float64Array.from(embedding.subarray(id * nEmbd, (id + 1) * nEmbd));
  });
  const layerInputsAll: Float32Array[][] = [];
  for (let layerIndex = 0; layerIndex < nLayer; layerIndex++) {
    const layer = `blk.${layerIndex}`;
    layerInputsAll.push(hidden.map((row) => Float32Array.from(row)));
    const attentionNorm = tensorData(model, `${layer}.attn_norm.weight`).data;
    const mixed = attention(
      hidden.map((x) => rmsNorm(x, attentionNorm, rmsEps)),
      layer,
      model,
      shape,
      options.simulateF16Attention ?? false,
    );
    const outputWeight = tensorData(model, `${layer}.attn_output.weight`).data;
    const ffnNorm = tensorData(model, `${layer}.ffn_norm.weight`).data;
    const gate = tensorData(model, `${layer}.ffn_gate.weight`).data;
    const up = tensorData(model, `${layer}.ffn_up.weight`).data;
    const down = tensorData(model, `${layer}.ffn_down.weight`).data;
    hidden = hidden.map((x, position) => {
      const projected = matVec(outputWeight, nEmbd, nEmbd, mixed[position]!);
      const afterAttention = x.map((value, i) => value + projected[i]!);
      const normed = rmsNorm(afterAttention, ffnNorm, rmsEps);
      const gated = matVec(gate, nEmbd, nFf, normed);
      const upProjected = matVec(up, nEmbd, nFf, normed);
      const activated = gated.map((value, i) => silu(value) * upProjected[i]!);
      const ffnOut = matVec(down, nFf, nEmbd, activated);
      return afterAttention.map((value, i) => value + ffnOut[i]!);
    });
  }
  const outputNorm = tensorData(model, "output_norm.weight").data;
  const hiddenFinalAll = hidden.map((row) => Float32Array.from(rmsNorm(row, outputNorm, rmsEps)));
  const final = hiddenFinalAll[hiddenFinalAll.length - 1]!;
  const logits = matVec(tensorData(model, "output.weight").data, nEmbd, vocab, final);
  return {
    hiddenFinal: final,
    layerInputs: layerInputsAll.map((rows) => rows[rows.length - 1]!),
    logitsLast: Float32Array.from(logits),
    hiddenFinalAll,
    layerInputsAll,
  };
}

/** Index of the largest value (the first one on ties). */
export function argmax(values: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i]! > values[best]!) best = i;
  return best;
}
