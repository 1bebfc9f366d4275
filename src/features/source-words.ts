/**
 * The `words` feature block: the source text as a hashed bag of words.
 *
 * A small model fails systematically on what it never learned, and what it never learned is often a
 * set of words: a rare term, a name, a domain's vocabulary. A linear probe on a bag of words learns
 * each word's share of the gain directly, from the labels `collect` already has; the hidden-state
 * views see the same words only through the model's compression of them. The block is computed from
 * the request's source text, not from the model, so it costs no prefill time, needs no engine support
 * (it works with a remote small model too) and is never stored in a dataset: `train` and `eval`
 * compute it from each record's `src`, `serve` from the request. `train` keeps it only when
 * cross-validation says it pays, like every other block.
 *
 * The recipe (any implementation that follows it gives the same vector):
 * 1. NFKC-normalise and lower-case the text (locale-independent `toLowerCase`);
 * 2. split it into words with `Intl.Segmenter` (root locale, word granularity; dictionary-based for
 *    scripts written without spaces), keeping the word-like segments;
 * 3. hash each word's UTF-8 bytes with 32-bit FNV-1a; add 1 to bucket `hash mod dim`;
 * 4. divide by the Euclidean norm (a text without words stays all zeros).
 * @module
 */

/** The block's name in datasets' views, router files and `--blocks` lists. */
export const SOURCE_WORDS_BLOCK = "words";

/** Buckets of the hashed bag: enough that collisions are rare in a few thousand training sentences. */
export const SOURCE_WORDS_DIM = 1024;

const FNV_OFFSET_BASIS = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/** 32-bit FNV-1a of a byte string, as an unsigned integer. */
export function fnv1a32(bytes: Uint8Array): number {
  let hash = FNV_OFFSET_BASIS;
  for (const byte of bytes) {
    hash ^= byte;
    hash = Math.imul(hash, FNV_PRIME);
  }
  return hash >>> 0;
}

/**
 * 32-bit FNV-1a of a string's UTF-8 bytes, encoded on the fly (no byte array per word). A lone
 * surrogate counts as U+FFFD, as `TextEncoder` encodes it.
 */
export function fnv1a32Utf8(text: string): number {
  let hash = FNV_OFFSET_BASIS;
  const add = (byte: number) => {
    hash ^= byte;
    hash = Math.imul(hash, FNV_PRIME);
  };
  for (const character of text) {
    let code = character.codePointAt(0)!;
    if (code >= 0xd800 && code <= 0xdfff) code = 0xfffd;
    if (code < 0x80) add(code);
    else if (code < 0x800) {
      add(0xc0 | (code >> 6));
      add(0x80 | (code & 0x3f));
    } else if (code < 0x10000) {
      add(0xe0 | (code >> 12));
      add(0x80 | ((code >> 6) & 0x3f));
      add(0x80 | (code & 0x3f));
    } else {
      add(0xf0 | (code >> 18));
      add(0x80 | ((code >> 12) & 0x3f));
      add(0x80 | ((code >> 6) & 0x3f));
      add(0x80 | (code & 0x3f));
    }
  }
  return hash >>> 0;
}

// One for the process: building it per request costs more than the hashing.
const segmenter = new Intl.Segmenter("und", { granularity: "word" });

/** The words of a text as the block sees them: normalised, lower-cased, word-like segments in order. */
export function sourceWords(text: string): string[] {
  const words: string[] = [];
  for (const segment of segmenter.segment(text.normalize("NFKC").toLowerCase())) {
    if (segment.isWordLike) words.push(segment.segment);
  }
  return words;
}

/** The hashed bag of words of one text, L2-normalised, written into `out` (zeroed first). */
export function writeSourceWordFeatures(text: string, out: Float32Array): void {
  writeWordBag(sourceWords(text), out);
}

/** The hashed bag of `words` (as {@link sourceWords} gives them), L2-normalised, written into `out`. */
export function writeWordBag(words: readonly string[], out: Float32Array): void {
  // A sentence touches a few buckets: count those, not the whole width.
  const counts = new Map<number, number>();
  for (const word of words) {
    const bucket = fnv1a32Utf8(word) % out.length;
    counts.set(bucket, (counts.get(bucket) ?? 0) + 1);
  }
  let squares = 0;
  for (const count of counts.values()) squares += count * count;
  out.fill(0);
  const scale = squares > 0 ? 1 / Math.sqrt(squares) : 0;
  for (const [bucket, count] of counts) out[bucket] = count * scale;
}

/** The `words` block of one text: {@link SOURCE_WORDS_DIM} values. */
export function sourceWordFeatures(text: string, dim = SOURCE_WORDS_DIM): Float32Array {
  const out = new Float32Array(dim);
  writeSourceWordFeatures(text, out);
  return out;
}
