import { describe, expect, it } from "vitest";
import { stableTextPrefix, TextDeltaStream } from "./text-stream.js";

/** A byte-level detokenizer: token i is the byte sequence `pieces[i]`, decoded as UTF-8 like llama.cpp's. */
function byteDetokenizer(pieces: readonly (readonly number[])[]) {
  return (tokens: readonly number[]) =>
    Buffer.from(tokens.flatMap((token) => [...(pieces[token] ?? [])])).toString("utf8");
}

/** Streams `tokens` one at a time and returns the deltas and the final text. */
function streamAll(detokenize: (tokens: readonly number[]) => string, tokens: readonly number[]) {
  const deltas: string[] = [];
  const stream = new TextDeltaStream(detokenize, (delta) => deltas.push(delta));
  for (const token of tokens) stream.push([token]);
  return { deltas, text: stream.finish(tokens) };
}

describe("stableTextPrefix", () => {
  it("holds back trailing replacement characters and a space followed by at most two characters", () => {
    expect(stableTextPrefix("Ein Hund")).toBe("Ein Hund");
    expect(stableTextPrefix("Ein \uFFFD")).toBe("Ein");
    expect(stableTextPrefix("Ein Hu")).toBe("Ein");
    expect(stableTextPrefix("Ein ")).toBe("Ein");
    expect(stableTextPrefix("Hund")).toBe("Hund");
    expect(stableTextPrefix("")).toBe("");
  });
});

describe("TextDeltaStream", () => {
  it("never splits a multi-byte character and concatenates to the whole text", () => {
    // "Straße 😀" with the ß (C3 9F) and the emoji (F0 9F 98 80) split across tokens.
    const pieces = [[0x53, 0x74, 0x72, 0x61, 0xc3], [0x9f, 0x65], [0x20, 0xf0, 0x9f], [0x98], [0x80]];
    const { deltas, text } = streamAll(byteDetokenizer(pieces), [0, 1, 2, 3, 4]);
    expect(text).toBe("Straße 😀");
    expect(deltas.join("")).toBe(text);
    expect(deltas).toEqual(["Stra", "ße", " 😀"]);
    for (const delta of deltas) expect(delta).not.toContain("\uFFFD");
  });

  it("keeps text a detokenizer rewrites across tokens until it is final", () => {
    // A detokenizer that removes a space before a comma, as llama.cpp's clean_spaces does.
    const words = ["Hallo", " Welt", " ", ",", " du", " da"];
    const detokenize = (tokens: readonly number[]) =>
      tokens
        .map((token) => words[token])
        .join("")
        .replace(/ ,/g, ",");
    const { deltas, text } = streamAll(detokenize, [0, 1, 2, 3, 4, 5]);
    expect(text).toBe("Hallo Welt, du da");
    expect(deltas.join("")).toBe(text);
  });

  it("emits a final replacement character of an unfinished byte sequence at the end only", () => {
    const { deltas, text } = streamAll(
      byteDetokenizer([
        [0x61, 0x62, 0x63],
        [0xe2, 0x82],
      ]),
      [0, 1],
    );
    expect(text).toBe("abc\uFFFD");
    expect(deltas).toEqual(["abc", "\uFFFD"]);
  });

  it("emits nothing for no tokens and one delta for a whole text at finish", () => {
    const deltas: string[] = [];
    const stream = new TextDeltaStream(
      () => "",
      (delta) => deltas.push(delta),
    );
    expect(stream.finish([])).toBe("");
    expect(deltas).toEqual([]);
  });
});
