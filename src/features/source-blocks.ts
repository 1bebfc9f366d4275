/**
 * Feature blocks computed from the request's source text rather than read from the model: `words`
 * (a hashed bag of words, see `source-words.ts`) and `length` (how long the source is). They cost no
 * prefill time, work with every engine and are never stored: `train` and `eval` compute them from
 * each record's `src`, `serve` from each request's text. In a feature row they follow the model's
 * values, in the order of {@link SOURCE_BLOCK_NAMES}.
 *
 * `length` is [ln(1 + words), ln(1 + characters)] of the source (words as `sourceWords` counts them,
 * characters as code points). The words block is L2-normalised and so says nothing of length, and
 * mean-pooled states say little; yet where a small model fails on long inputs (a paragraph it
 * truncates), length is what predicts the gain.
 * @module
 */
import {
  SOURCE_WORDS_BLOCK,
  SOURCE_WORDS_DIM,
  sourceWords,
  writeSourceWordFeatures,
} from "./source-words.js";

/** The `length` block's name. */
export const SOURCE_LENGTH_BLOCK = "length";

/** Values of the `length` block. */
export const SOURCE_LENGTH_DIM = 2;

/** Writes the `length` block of one text into `out` (2 values). */
export function writeSourceLengthFeatures(text: string, out: Float32Array): void {
  let characters = 0;
  for (const _ of text) characters++;
  out[0] = Math.log1p(sourceWords(text).length);
  out[1] = Math.log1p(characters);
}

/** A block computed from the source text. */
export interface SourceBlock {
  readonly name: string;
  readonly dim: number;
  /** Writes the block's values for `text` into `out` (exactly `dim` values, all of them). */
  readonly write: (text: string, out: Float32Array) => void;
}

/** Every source-text block, in the order they follow the model's values. */
export const SOURCE_BLOCKS: readonly SourceBlock[] = Object.freeze([
  { name: SOURCE_WORDS_BLOCK, dim: SOURCE_WORDS_DIM, write: writeSourceWordFeatures },
  { name: SOURCE_LENGTH_BLOCK, dim: SOURCE_LENGTH_DIM, write: writeSourceLengthFeatures },
]);

/** Names of the source-text blocks, in row order. */
export const SOURCE_BLOCK_NAMES: readonly string[] = SOURCE_BLOCKS.map((block) => block.name);

/** The source-text block of that name, if it is one. */
export function sourceBlockNamed(name: string): SourceBlock | undefined {
  return SOURCE_BLOCKS.find((block) => block.name === name);
}

/**
 * Writes the named source blocks of `text` one after the other into `out`, in the order given
 * (callers keep {@link SOURCE_BLOCK_NAMES} order).
 */
export function writeSourceBlocks(text: string, blocks: readonly SourceBlock[], out: Float32Array): void {
  let offset = 0;
  for (const block of blocks) {
    block.write(text, out.subarray(offset, offset + block.dim));
    offset += block.dim;
  }
}
