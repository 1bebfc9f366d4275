/**
 * A plain-TypeScript model of llama.cpp's SPM (`tokenizer.ggml.model = "llama"`) tokenizer, to check
 * what node-llama-cpp gives for the generated vocabularies.
 *
 * The algorithm llama.cpp runs: spaces become `▁` (plus one leading `▁` only when add_space_prefix is
 * set); the text is split into UTF-8 characters; repeatedly the adjacent pair whose concatenation is a
 * vocabulary piece with the highest score (ties: leftmost) is merged; every final symbol that is a
 * piece becomes its id, and any other symbol falls back to its `<0xXX>` byte tokens.
 */
import { SPACE_MARK, type Vocabulary } from "./tiny-llama.js";

interface SymbolNode {
  text: string;
  previous: number;
  next: number;
}

interface Candidate {
  left: number;
  right: number;
  score: number;
  text: string;
}

/** Binary max-heap of merge candidates ordered by score, then by leftmost position. */
class CandidateQueue {
  private readonly items: Candidate[] = [];

  get size(): number {
    return this.items.length;
  }

  push(candidate: Candidate): void {
    this.items.push(candidate);
    let index = this.items.length - 1;
    while (index > 0) {
      const parent = (index - 1) >> 1;
      if (!this.before(index, parent)) break;
      this.swap(index, parent);
      index = parent;
    }
  }

  pop(): Candidate | undefined {
    const top = this.items[0];
    const last = this.items.pop();
    if (this.items.length > 0 && last !== undefined) {
      this.items[0] = last;
      let index = 0;
      for (;;) {
        const left = 2 * index + 1;
        const right = left + 1;
        let best = index;
        if (left < this.items.length && this.before(left, best)) best = left;
        if (right < this.items.length && this.before(right, best)) best = right;
        if (best === index) break;
        this.swap(index, best);
        index = best;
      }
    }
    return top;
  }

  private before(a: number, b: number): boolean {
    const first = this.items[a]!;
    const second = this.items[b]!;
    return first.score > second.score || (first.score === second.score && first.left < second.left);
  }

  private swap(a: number, b: number): void {
    const held = this.items[a]!;
    this.items[a] = this.items[b]!;
    this.items[b] = held;
  }
}

/** Options of {@link referenceTokenize}; defaults match the generated models. */
export interface ReferenceTokenizeOptions {
  /** Prepend `▁` to the text. Defaults to false (the generated models set add_space_prefix=false). */
  addSpacePrefix?: boolean;
}

/** Token ids llama.cpp's SPM tokenizer gives for `text`, without BOS/EOS. */
export function referenceTokenize(
  vocabulary: Vocabulary,
  text: string,
  options: ReferenceTokenizeOptions = {},
): number[] {
  const idOf = new Map<string, number>();
  vocabulary.tokens.forEach((piece, id) => {
    if (!idOf.has(piece)) idOf.set(piece, id);
  });
  const escaped = (options.addSpacePrefix ? " " : "") + text;
  const characters = [...escaped.replaceAll(" ", SPACE_MARK)];
  const symbols: SymbolNode[] = characters.map((character, index) => ({
    text: character,
    previous: index - 1,
    next: index + 1 < characters.length ? index + 1 : -1,
  }));
  const queue = new CandidateQueue();
  const tryAdd = (left: number, right: number): void => {
    if (left < 0 || right < 0) return;
    const text = symbols[left]!.text + symbols[right]!.text;
    const id = idOf.get(text);
    if (id === undefined) return;
    queue.push({ left, right, score: vocabulary.scores[id]!, text });
  };
  for (let index = 1; index < symbols.length; index++) tryAdd(index - 1, index);
  while (queue.size > 0) {
    const candidate = queue.pop()!;
    const left = symbols[candidate.left]!;
    const right = symbols[candidate.right]!;
    // Stale when either side has been merged since the candidate was queued.
    if (left.text === "" || right.text === "" || left.text + right.text !== candidate.text) continue;
    left.text = candidate.text;
    right.text = "";
    left.next = right.next;
    if (right.next >= 0) symbols[right.next]!.previous = candidate.left;
    tryAdd(left.previous, candidate.left);
    tryAdd(candidate.left, left.next);
  }
  const ids: number[] = [];
  for (let index = symbols.length > 0 ? 0 : -1; index >= 0; index = symbols[index]!.next) {
    const piece = symbols[index]!.text;
    const id = idOf.get(piece);
    if (id !== undefined) {
      ids.push(id);
      continue;
    }
    for (const byte of Buffer.from(piece, "utf8")) {
      const byteId = idOf.get(`<0x${byte.toString(16).toUpperCase().padStart(2, "0")}>`);
      if (byteId === undefined) throw new Error(`no byte token for 0x${byte.toString(16)}`);
      ids.push(byteId);
    }
  }
  return ids;
}
