import { describe, expect, it } from "vitest";
import { fnv1a32, fnv1a32Utf8, SOURCE_WORDS_DIM, sourceWordFeatures, sourceWords } from "./source-words.js";

const utf8 = (text: string) => new TextEncoder().encode(text);

describe("fnv1a32", () => {
  it("matches the published FNV-1a 32-bit test vectors", () => {
    expect(fnv1a32(utf8(""))).toBe(0x811c9dc5);
    expect(fnv1a32(utf8("a"))).toBe(0xe40c292c);
    expect(fnv1a32(utf8("foobar"))).toBe(0xbf9cf968);
  });

  it("hashes a string's UTF-8 bytes without encoding it first, for every UTF-8 length", () => {
    expect(fnv1a32Utf8("foobar")).toBe(0xbf9cf968);
    for (const text of ["", "läuft", "北京", "😀 emoji", "mixed: é北😀x", "lone \ud800 surrogate"]) {
      expect(fnv1a32Utf8(text), text).toBe(fnv1a32(utf8(text)));
    }
  });
});

describe("sourceWords", () => {
  it("lower-cases, drops punctuation and keeps words in order", () => {
    expect(sourceWords("A dog, a DOG!")).toEqual(["a", "dog", "a", "dog"]);
    expect(sourceWords("l'homme d'État, 2 kids")).toEqual(["l'homme", "d'état", "2", "kids"]);
  });

  it("folds compatibility forms (NFKC): full-width letters are the same word", () => {
    expect(sourceWords("ｄｏｇ")).toEqual(["dog"]);
  });

  it("splits scripts written without spaces into words", () => {
    const words = sourceWords("我爱北京天安门");
    expect(words.length).toBeGreaterThan(1);
    expect(words.join("")).toBe("我爱北京天安门");
  });
});

describe("sourceWordFeatures", () => {
  it("puts each word's count in its hash bucket, L2-normalised", () => {
    // a → 0xe40c292c mod 1024 = 300, dog → 0xe668bd09 mod 1024 = 265; counts 2 and 2, norm √8.
    const vector = sourceWordFeatures("A dog, a DOG!");
    expect(vector).toHaveLength(SOURCE_WORDS_DIM);
    expect(vector[300]).toBeCloseTo(2 / Math.sqrt(8), 7);
    expect(vector[265]).toBeCloseTo(2 / Math.sqrt(8), 7);
    const nonZero = Array.from(vector.keys()).filter((index) => vector[index] !== 0);
    expect(nonZero.sort((a, b) => a - b)).toEqual([265, 300]);
  });

  it("gives the same vector whatever the case, spacing and punctuation", () => {
    expect(Array.from(sourceWordFeatures("Two dogs  play."))).toEqual(
      Array.from(sourceWordFeatures("two DOGS play")),
    );
  });

  it("gives zeros for a text without words, and honours another width", () => {
    expect(sourceWordFeatures(" … !? ").every((value) => value === 0)).toBe(true);
    const narrow = sourceWordFeatures("dog", 16);
    expect(narrow).toHaveLength(16);
    expect(narrow[0xe668bd09 % 16]).toBe(1);
  });
});
