/**
 * Incremental detokenization for `DecodeOptions.onText`: turns tokens decoded one step at a time into
 * text deltas whose concatenation is exactly the detokenization of all the tokens.
 *
 * Text is re-detokenized from the first generated token at every step (never piece by piece), so
 * whatever the detokenizer does across tokens is respected, and a delta is only the part that can no
 * longer change:
 * - a token that ends inside a multi-byte UTF-8 character renders as U+FFFD until the character's last
 *   byte arrives: trailing U+FFFD characters are held back (so a character is never split);
 * - llama.cpp's detokenizer cleans up spaces for some vocabularies (" ," → ",", " 's" → "'s",
 *   " ' " → "'"), which can rewrite up to three characters after a space: text from the last space
 *   on is held back while at most two characters follow it.
 * `finish` emits whatever was held back. The cost is one detokenization of the output so far per step.
 * @module
 */

import { UsageError } from "../errors/index.js";

/** Turns token ids into text (the translator's own detokenizer). */
export type Detokenize = (tokens: readonly number[]) => string;

const REPLACEMENT_CHARACTER = "\uFFFD";
/** Characters after a space that a space clean-up may still rewrite. */
const SPACE_CLEANUP_REACH = 2;

/** The prefix of `text` that more tokens cannot change (see the module comment). */
export function stableTextPrefix(text: string): string {
  let end = text.length;
  while (end > 0 && text[end - 1] === REPLACEMENT_CHARACTER) end -= 1;
  const lastSpace = text.lastIndexOf(" ", end - 1);
  if (lastSpace >= 0 && end - lastSpace - 1 <= SPACE_CLEANUP_REACH) end = lastSpace;
  return text.slice(0, end);
}

/** See the module comment. */
export class TextDeltaStream {
  readonly #detokenize: Detokenize;
  readonly #onText: (delta: string) => void;
  readonly #tokens: number[] = [];
  #emitted = "";

  constructor(detokenize: Detokenize, onText: (delta: string) => void) {
    this.#detokenize = detokenize;
    this.#onText = onText;
  }

  /** Adds freshly decoded tokens and emits the text that became final. */
  push(tokens: readonly number[]): void {
    if (tokens.length === 0) return;
    this.#tokens.push(...tokens);
    this.#emitUpTo(stableTextPrefix(this.#detokenize(this.#tokens)));
  }

  /**
   * Emits the rest of the text and returns all of it: the detokenization of `tokens`, the complete
   * output (it must extend the tokens pushed so far).
   */
  finish(tokens: readonly number[]): string {
    const text = this.#detokenize(tokens);
    this.#emitUpTo(text);
    return text;
  }

  #emitUpTo(text: string): void {
    // Held-back text is never emitted early, so what was emitted is a prefix of every later text.
    if (text.length <= this.#emitted.length || !text.startsWith(this.#emitted)) return;
    const delta = text.slice(this.#emitted.length);
    this.#emitted = text;
    this.#onText(delta);
  }
}

/**
 * `onText` streams one translation: a `translate` call with several requests and `onText` would mix
 * their deltas in one callback, so it is refused.
 * @throws UsageError for more than one request with `onText`.
 */
export function assertOneStreamedRequest(requestCount: number, onText: unknown): void {
  if (onText !== undefined && requestCount > 1) {
    throw new UsageError(`onText streams one translation; this call has ${requestCount} requests`);
  }
}
