import { describe, expect, it } from "vitest";
import {
  SOURCE_BLOCK_NAMES,
  SOURCE_BLOCKS,
  sourceBlockNamed,
  sourceBlocksNamed,
  writeSourceBlocks,
  writeSourceLengthFeatures,
} from "./source-blocks.js";
import { sourceWordFeatures } from "./source-words.js";

describe("the length block", () => {
  it("is ln(1 + words) and ln(1 + characters), characters as code points", () => {
    const out = new Float32Array(2);
    writeSourceLengthFeatures("A dog, a DOG!", out);
    expect(Array.from(out)).toEqual([Math.fround(Math.log(5)), Math.fround(Math.log(14))]);
    writeSourceLengthFeatures("😀 ok", out);
    expect(Array.from(out)).toEqual([Math.fround(Math.log(2)), Math.fround(Math.log(5))]);
    writeSourceLengthFeatures("", out);
    expect(Array.from(out)).toEqual([0, 0]);
  });
});

describe("source blocks", () => {
  it("come in row order words, length, and write one after the other", () => {
    expect(SOURCE_BLOCK_NAMES).toEqual(["words", "length"]);
    expect(sourceBlockNamed("length")?.dim).toBe(2);
    expect(sourceBlockNamed("last:final")).toBeUndefined();
    expect(sourceBlockNamed(" Words ")?.name).toBe("words");
    expect(sourceBlocksNamed(["length", "mean:0", "WORDS"]).map((block) => block.name)).toEqual([
      "words",
      "length",
    ]);
    const out = new Float32Array(1026);
    writeSourceBlocks("Two dogs.", SOURCE_BLOCKS, out);
    expect(Array.from(out.subarray(0, 1024))).toEqual(Array.from(sourceWordFeatures("Two dogs.")));
    expect(Array.from(out.subarray(1024))).toEqual([Math.fround(Math.log(3)), Math.fround(Math.log(10))]);
  });
});
