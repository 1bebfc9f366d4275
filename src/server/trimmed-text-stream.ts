/**
 * The server's side of the engines' `onText` contract. Engines hand out deltas of the untrimmed
 * text; a translation is that text trimmed. What a client is streamed must add up to exactly the
 * translation it would get without streaming, so:
 * - whitespace before the first visible character is dropped;
 * - whitespace at the end of what has arrived is held back until more text follows it, and dropped
 *   if none does;
 * - when the engine's call resolves, whatever of its final text was not streamed (all of it, from an
 *   engine that does not stream) follows in one delta.
 * A fallback (another engine taking over before any text went out) starts a new sink; whitespace
 * held from the failed engine is dropped with it.
 */

/** JS `\s` is exactly the whitespace `String.prototype.trim` removes. */
const LEADING_WHITESPACE = /^\s+/;
const TRAILING_WHITESPACE = /\s+$/;

export class TrimmedTextStream<Source> {
  readonly #listener: (delta: string, source: Source) => void;
  /** What went out so far: a prefix of the final text. */
  #emitted = "";
  #heldWhitespace = "";

  constructor(listener: (delta: string, source: Source) => void) {
    this.#listener = listener;
  }

  /** Whether any text went out: past this point no other engine may take over. */
  get started(): boolean {
    return this.#emitted.length > 0;
  }

  /** The `onText` of one engine call, whose text comes from `source`. */
  sinkFor(source: Source): (delta: string) => void {
    this.#heldWhitespace = "";
    return (delta) => this.#push(delta, source);
  }

  /** Sends what the engine's final `text` (already trimmed) holds beyond what was streamed. */
  finish(text: string, source: Source): void {
    if (text.length > this.#emitted.length && text.startsWith(this.#emitted)) {
      this.#emit(text.slice(this.#emitted.length), source);
    }
  }

  #push(delta: string, source: Source): void {
    let text = this.#heldWhitespace + delta;
    if (this.#emitted === "") text = text.replace(LEADING_WHITESPACE, "");
    const trailing = TRAILING_WHITESPACE.exec(text);
    this.#heldWhitespace = trailing ? trailing[0] : "";
    const visible = trailing ? text.slice(0, trailing.index) : text;
    if (visible !== "") this.#emit(visible, source);
  }

  #emit(delta: string, source: Source): void {
    this.#emitted += delta;
    this.#listener(delta, source);
  }
}
