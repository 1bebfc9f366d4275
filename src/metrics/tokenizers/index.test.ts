import { describe, expect, it } from "vitest";
import { UnsupportedError, UsageError } from "../../errors/index.js";
import { memoizeBounded } from "./bounded-memo.js";
import { getTokenizer, isTokenizerName, TOKENIZER_NAMES } from "./index.js";
import { tokenizeCharacters } from "./tokenizer-char.js";
import { tokenizeNone } from "./tokenizer-none.js";

describe("tokenizer registry", () => {
  it("returns each tokenizer under its signature name", () => {
    for (const name of TOKENIZER_NAMES) expect(getTokenizer(name).name).toBe(name);
    expect(getTokenizer("13a").tokenize("a,b.")).toBe("a , b .");
    expect(getTokenizer("13a")).toBe(getTokenizer("13a"));
    expect(isTokenizerName("intl")).toBe(true);
    expect(isTokenizerName("v14")).toBe(false);
  });

  it("rejects unknown names and reports model-based ones as unsupported", () => {
    expect(() => getTokenizer("nope")).toThrow(UsageError);
    expect(() => getTokenizer("ja-mecab")).toThrow(UnsupportedError);
    expect(() => getTokenizer("spm")).toThrow(UnsupportedError);
  });
});

describe("char and none tokenizers", () => {
  it("splits every code point, surrogate pairs included", () => {
    expect(tokenizeCharacters("ab c")).toBe("a b   c");
    expect(tokenizeCharacters("𝐀b")).toBe("𝐀 b");
  });

  it("leaves the line unchanged with none", () => {
    expect(tokenizeNone(" a,b. ")).toBe(" a,b. ");
  });
});

describe("memoizeBounded", () => {
  it("computes once per input and evicts the least recently used entry beyond the bound", () => {
    const calls: string[] = [];
    const upper = memoizeBounded((line) => {
      calls.push(line);
      return line.toUpperCase();
    }, 2);
    expect(upper("a")).toBe("A");
    expect(upper("b")).toBe("B");
    expect(upper("a")).toBe("A"); // hit: "a" becomes most recent
    expect(upper("c")).toBe("C"); // evicts "b"
    expect(upper("a")).toBe("A");
    expect(upper("b")).toBe("B");
    expect(calls).toEqual(["a", "b", "c", "b"]);
  });

  it("rejects a non-positive bound", () => {
    expect(() => memoizeBounded((line) => line, 0)).toThrow(UsageError);
  });
});
