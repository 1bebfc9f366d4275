/**
 * The numerics the FFI engine runs on llama.cpp's buffers: pooling a view's rows over a prompt that may
 * arrive in several chunks, the greedy choice and the next-token entropy.
 * @module
 */
import { UsageError } from "../errors/index.js";
import type { FeaturePooling } from "./feature-views.js";

/** How many values a `norms` view yields: {@link NORM_TAIL} smallest, as many largest, mean, standard deviation. */
export const NORM_TAIL = 4;
export const NORM_STATISTICS_DIM = 2 * NORM_TAIL + 2;

/**
 * What a `norms` view records of a prompt's per-token state norms, in this order: the
 * {@link NORM_TAIL} smallest (ascending), the {@link NORM_TAIL} largest (descending), their mean and
 * population standard deviation. A prompt of fewer tokens repeats its last available value in each
 * tail, so the vector always has {@link NORM_STATISTICS_DIM} values.
 * @throws UsageError for an empty list.
 */
export function normStatistics(norms: readonly number[]): Float32Array {
  if (norms.length === 0) throw new UsageError("no norms to summarise");
  const sorted = [...norms].sort((a, b) => a - b);
  const count = sorted.length;
  const result = new Float32Array(NORM_STATISTICS_DIM);
  for (let rank = 0; rank < NORM_TAIL; rank++) {
    result[rank] = sorted[Math.min(rank, count - 1)]!;
    result[NORM_TAIL + rank] = sorted[Math.max(count - 1 - rank, 0)]!;
  }
  let sum = 0;
  for (const norm of sorted) sum += norm;
  const mean = sum / count;
  let squares = 0;
  for (const norm of sorted) squares += (norm - mean) ** 2;
  result[2 * NORM_TAIL] = mean;
  result[2 * NORM_TAIL + 1] = Math.sqrt(squares / count);
  return result;
}

/**
 * Pools rows of `width` values that arrive chunk by chunk, in token order: `last` keeps the last row
 * seen, `mean` their mean (summed in float64, so long prompts lose no precision before the final
 * rounding to float32), `norms` the statistics of the rows' Euclidean norms ({@link normStatistics}).
 */
export class RowPooler {
  readonly pooling: FeaturePooling;
  readonly width: number;
  #rows = 0;
  readonly #sum: Float64Array;
  readonly #last: Float32Array;
  readonly #norms: number[] = [];

  constructor(pooling: FeaturePooling, width: number) {
    if (!Number.isInteger(width) || width < 1)
      throw new UsageError(`row width must be positive, got ${width}`);
    this.pooling = pooling;
    this.width = width;
    this.#sum = new Float64Array(pooling === "mean" ? width : 0);
    this.#last = new Float32Array(width);
  }

  /** Rows pooled so far. */
  get rows(): number {
    return this.#rows;
  }

  /**
   * Adds `rowCount` consecutive rows stored row-major in `values` (row r at `r·width`).
   * @throws UsageError when `values` holds fewer than `rowCount · width` values.
   */
  add(values: ArrayLike<number>, rowCount: number): void {
    if (values.length < rowCount * this.width) {
      throw new UsageError(`${values.length} values cannot hold ${rowCount} rows of ${this.width}`);
    }
    if (rowCount === 0) return;
    if (this.pooling === "mean") {
      for (let row = 0; row < rowCount; row++) {
        const base = row * this.width;
        for (let column = 0; column < this.width; column++) this.#sum[column]! += values[base + column]!;
      }
    } else if (this.pooling === "norms") {
      for (let row = 0; row < rowCount; row++) {
        const base = row * this.width;
        let squares = 0;
        for (let column = 0; column < this.width; column++) squares += values[base + column]! ** 2;
        this.#norms.push(Math.sqrt(squares));
      }
    }
    const lastBase = (rowCount - 1) * this.width;
    for (let column = 0; column < this.width; column++) this.#last[column] = values[lastBase + column]!;
    this.#rows += rowCount;
  }

  /**
   * The pooled vector (a fresh array).
   * @throws UsageError when no row was added.
   */
  result(): Float32Array {
    if (this.#rows === 0) throw new UsageError("no rows were pooled");
    if (this.pooling === "last") return this.#last.slice();
    if (this.pooling === "norms") return normStatistics(this.#norms);
    return Float32Array.from(this.#sum, (total) => total / this.#rows);
  }
}

/** Index of the largest value, the first one on ties: the greedy choice. */
export function argmax(values: ArrayLike<number>): number {
  if (values.length === 0) throw new UsageError("argmax of an empty array");
  let best = 0;
  let bestValue = values[0] as number;
  for (let index = 1; index < values.length; index++) {
    const value = values[index] as number;
    if (value > bestValue) {
      bestValue = value;
      best = index;
    }
  }
  return best;
}

/**
 * Natural-log probability of `index` under the softmax of `logits`: logits[index] − log Σ exp(logits).
 * With the greedy choice as `index`, the model's confidence in the token it picked.
 */
export function logSoftmaxAt(logits: ArrayLike<number>, index: number): number {
  let maximum = Number.NEGATIVE_INFINITY;
  for (let position = 0; position < logits.length; position++) {
    const value = logits[position] as number;
    if (value > maximum) maximum = value;
  }
  let sum = 0;
  for (let position = 0; position < logits.length; position++)
    sum += Math.exp((logits[position] as number) - maximum);
  return (logits[index] as number) - maximum - Math.log(sum);
}
