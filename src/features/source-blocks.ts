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
import { SOURCE_WORDS_BLOCK, SOURCE_WORDS_DIM, sourceWords, writeWordBag } from "./source-words.js";

/** The `length` block's name. */
export const SOURCE_LENGTH_BLOCK = "length";

/** Values of the `length` block. */
export const SOURCE_LENGTH_DIM = 2;

/** A source text with its words (`sourceWords`), segmented once for every block that reads them. */
export interface SourceText {
  readonly text: string;
  readonly words: readonly string[];
}

function writeLength(source: SourceText, out: Float32Array): void {
  let characters = 0;
  for (const _ of source.text) characters++;
  out[0] = Math.log1p(source.words.length);
  out[1] = Math.log1p(characters);
}

/** Writes the `length` block of one text into `out` (2 values). */
export function writeSourceLengthFeatures(text: string, out: Float32Array): void {
  writeLength({ text, words: sourceWords(text) }, out);
}

/** A block computed from the source text. */
export interface SourceBlock {
  readonly name: string;
  readonly dim: number;
  /** Writes the block's values for `source` into `out` (exactly `dim` values, all of them). */
  readonly write: (source: SourceText, out: Float32Array) => void;
}

/** Every source-text block, in the order they follow the model's values. */
export const SOURCE_BLOCKS: readonly SourceBlock[] = Object.freeze([
  {
    name: SOURCE_WORDS_BLOCK,
    dim: SOURCE_WORDS_DIM,
    write: (source: SourceText, out: Float32Array) => writeWordBag(source.words, out),
  },
  { name: SOURCE_LENGTH_BLOCK, dim: SOURCE_LENGTH_DIM, write: writeLength },
]);

/** Names of the source-text blocks, in row order. */
export const SOURCE_BLOCK_NAMES: readonly string[] = SOURCE_BLOCKS.map((block) => block.name);

/** The source-text block of that name (case and surrounding spaces aside), if it is one. */
export function sourceBlockNamed(name: string): SourceBlock | undefined {
  const wanted = name.trim().toLowerCase();
  return SOURCE_BLOCKS.find((block) => block.name === wanted);
}

/** The source-text blocks among `names` (others are ignored), in row order whatever order they are named in. */
export function sourceBlocksNamed(names: readonly string[]): SourceBlock[] {
  return SOURCE_BLOCKS.filter((block) => names.some((name) => sourceBlockNamed(name) === block));
}

/**
 * Writes the given source blocks of `text` one after the other into `out`, in the order given
 * (callers keep row order, see {@link sourceBlocksNamed}). The text is segmented once for all of them.
 */
export function writeSourceBlocks(text: string, blocks: readonly SourceBlock[], out: Float32Array): void {
  const source = { text, words: sourceWords(text) };
  let offset = 0;
  for (const block of blocks) {
    block.write(source, out.subarray(offset, offset + block.dim));
    offset += block.dim;
  }
}
