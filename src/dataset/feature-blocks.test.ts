import { describe, expect, it } from "vitest";
import { InputError, UsageError } from "../errors/index.js";
import { sourceWordFeatures } from "../features/source-words.js";
import {
  appendSourceBlocks,
  canonicalViewName,
  checkFeatureBlocks,
  type FeatureBlock,
  featureBlocksOf,
  featureSelectionText,
  legacyFeatureBlocks,
  resolveFeatureBlocks,
  sliceFeatureBlocks,
} from "./feature-blocks.js";

function block(name: string, dim: number, offset: number): FeatureBlock {
  const [pooling, layer] = name.split(":") as ["last" | "mean", string];
  return { name, pooling, layer: layer === "final" ? "final" : Number(layer), dim, offset };
}

describe("canonicalViewName", () => {
  it("spells old bare layers as last-token views and normalises case, spaces and zeros", () => {
    expect(canonicalViewName("final")).toBe("last:final");
    expect(canonicalViewName(" 08 ")).toBe("last:8");
    expect(canonicalViewName("MEAN:Final")).toBe("mean:final");
    expect(canonicalViewName("last:0")).toBe("last:0");
    expect(canonicalViewName(" Words ")).toBe("words");
    expect(canonicalViewName("length")).toBe("length");
  });

  it("refuses what is not a view", () => {
    for (const text of ["", "first:1", "mean:", "mean:-1", "last:1:2", "x"]) {
      expect(() => canonicalViewName(text), text).toThrow(UsageError);
    }
  });
});

describe("legacyFeatureBlocks", () => {
  it("reads an old single-layer dataset as one block named after its layer", () => {
    expect(legacyFeatureBlocks("final", 128)).toEqual([
      { name: "last:final", pooling: "last", layer: "final", dim: 128, offset: 0 },
    ]);
    expect(legacyFeatureBlocks("8", 64)).toEqual([
      { name: "last:8", pooling: "last", layer: 8, dim: 64, offset: 0 },
    ]);
    expect(legacyFeatureBlocks(null, 4)[0]?.name).toBe("last:final");
  });

  it("reads an old layer list as one block of the whole width (its parts' widths are unknown)", () => {
    expect(legacyFeatureBlocks("8,16,final", 384)).toEqual([
      { name: "last:8,last:16,last:final", pooling: "last", layer: "8,16,final", dim: 384, offset: 0 },
    ]);
  });
});

describe("featureBlocksOf", () => {
  it("takes the engine's views when it reports them", () => {
    const views = [
      { name: "last:final", pooling: "last" as const, layer: "final" as const, dim: 2, offset: 0 },
      { name: "mean:1", pooling: "mean" as const, layer: 1, dim: 3, offset: 2 },
    ];
    expect(featureBlocksOf({ layer: "last:final,mean:1", dim: 5, views }).map((b) => b.name)).toEqual([
      "last:final",
      "mean:1",
    ]);
  });

  it("falls back to one block from the layer selection without views", () => {
    expect(featureBlocksOf({ layer: "0,final", dim: 10 })).toEqual(legacyFeatureBlocks("0,final", 10));
  });

  it("refuses views that do not tile the vector", () => {
    const views = [
      { name: "last:final", pooling: "last" as const, layer: "final" as const, dim: 2, offset: 0 },
    ];
    expect(() => featureBlocksOf({ layer: "final", dim: 3, views })).toThrow(
      /cover 2 values but the feature dim is 3/,
    );
  });
});

describe("checkFeatureBlocks", () => {
  it("accepts blocks that tile the row in order", () => {
    expect(() => checkFeatureBlocks([block("last:0", 2, 0), block("mean:0", 3, 2)], 5)).not.toThrow();
  });

  it("refuses gaps, overlaps, a wrong total, repeats and non-canonical names", () => {
    expect(() => checkFeatureBlocks([block("last:0", 2, 0), block("mean:0", 3, 3)], 6)).toThrow(InputError);
    expect(() => checkFeatureBlocks([block("last:0", 2, 0), block("mean:0", 3, 1)], 4)).toThrow(
      /starts at 1/,
    );
    expect(() => checkFeatureBlocks([block("last:0", 2, 0)], 3)).toThrow(/cover 2/);
    expect(() => checkFeatureBlocks([block("last:0", 2, 0), block("last:0", 2, 2)], 4)).toThrow(/twice/);
    expect(() => checkFeatureBlocks([{ ...block("last:0", 2, 0), name: "0" }], 2)).toThrow(/canonical/);
    expect(() => checkFeatureBlocks([], 0)).toThrow(/empty/);
  });
});

describe("resolveFeatureBlocks", () => {
  const available = [block("last:0", 2, 0), block("last:1", 2, 2), block("last:final", 2, 4)];

  it("finds blocks by name in the order asked, whatever their stored order", () => {
    expect(resolveFeatureBlocks(available, ["last:final", "last:0"]).map((b) => b.offset)).toEqual([4, 0]);
    expect(resolveFeatureBlocks(available, ["final"]).map((b) => b.name)).toEqual(["last:final"]);
  });

  it("serves consecutive names from an old multi-layer block only as a whole", () => {
    const legacy = legacyFeatureBlocks("1,final", 4);
    expect(resolveFeatureBlocks(legacy, ["last:1", "last:final"])).toEqual(legacy);
    expect(resolveFeatureBlocks(legacy, ["last:1,last:final"])).toEqual(legacy);
    expect(() => resolveFeatureBlocks(legacy, ["last:final"])).toThrow(UsageError);
    expect(() => resolveFeatureBlocks(legacy, ["last:final", "last:1"])).toThrow(UsageError);
  });

  it("names the missing block and what there is", () => {
    expect(() => resolveFeatureBlocks(available, ["mean:1"], "the dataset")).toThrow(
      /the dataset have no feature block mean:1.*last:0 \| last:1 \| last:final/,
    );
  });
});

describe("sliceFeatureBlocks and featureSelectionText", () => {
  // Two rows of [a0 a1 | b0 b1 b2].
  const features = Float32Array.from([1, 2, 3, 4, 5, 11, 12, 13, 14, 15]);
  const a = block("last:0", 2, 0);
  const b = block("mean:0", 3, 2);

  it("concatenates the blocks' columns in the order given", () => {
    expect(Array.from(sliceFeatureBlocks(features, 2, 5, [b, a]).features)).toEqual([
      3, 4, 5, 1, 2, 13, 14, 15, 11, 12,
    ]);
    const only = sliceFeatureBlocks(features, 2, 5, [b]);
    expect(only.dim).toBe(3);
    expect(Array.from(only.features)).toEqual([3, 4, 5, 13, 14, 15]);
  });

  it("gives back the same array for the whole row in order", () => {
    expect(sliceFeatureBlocks(features, 2, 5, [a, b]).features).toBe(features);
  });

  it("joins names into the selection an engine opens", () => {
    expect(featureSelectionText([a, b])).toBe("last:0,mean:0");
    expect(featureSelectionText(["last:final"])).toBe("last:final");
  });
});

describe("appendSourceBlocks", () => {
  const blocks = [block("last:final", 2, 0), block("mean:0", 1, 2)];
  const features = Float32Array.from([1, 2, 3, 4, 5, 6]);

  it("appends each row's words block after the stored values, keeping the model's blocks in place", () => {
    const texts = ["A dog runs.", "zebra"];
    const joined = appendSourceBlocks({ features, rows: 2, dim: 3, blocks }, texts);
    expect(joined.dim).toBe(3 + 1024 + 2);
    expect(joined.blocks).toEqual([
      ...blocks,
      { name: "words", pooling: "text", layer: "source", dim: 1024, offset: 3 },
      { name: "length", pooling: "text", layer: "source", dim: 2, offset: 1027 },
    ]);
    checkFeatureBlocks(joined.blocks, joined.dim);
    texts.forEach((text, row) => {
      const values = joined.features.subarray(row * joined.dim, (row + 1) * joined.dim);
      expect(Array.from(values.subarray(0, 3))).toEqual(Array.from(features.subarray(row * 3, row * 3 + 3)));
      expect(Array.from(values.subarray(3, 1027))).toEqual(Array.from(sourceWordFeatures(text)));
      const words = text === "zebra" ? 1 : 3;
      expect(Array.from(values.subarray(1027))).toEqual([
        Math.fround(Math.log1p(words)),
        Math.fround(Math.log1p(text.length)),
      ]);
    });
    // The router's blocks resolve against it, words last, and slice out exactly those columns.
    const chosen = resolveFeatureBlocks(joined.blocks, ["mean:0", "words"]);
    const sliced = sliceFeatureBlocks(joined.features, 2, joined.dim, chosen);
    expect(sliced.dim).toBe(1025);
    expect(sliced.features[1025]).toBe(6);
    // Only the blocks asked for, still in row order whatever order they are named in.
    const lengthOnly = appendSourceBlocks({ features, rows: 2, dim: 3, blocks }, texts, ["length"]);
    expect(lengthOnly.blocks.at(-1)).toEqual({
      name: "length",
      pooling: "text",
      layer: "source",
      dim: 2,
      offset: 3,
    });
    const both = appendSourceBlocks({ features, rows: 2, dim: 3, blocks }, texts, ["length", "words"]);
    expect(both.blocks.slice(2).map((block) => block.name)).toEqual(["words", "length"]);
  });

  it("refuses texts that do not match the rows, and source blocks twice", () => {
    expect(() => appendSourceBlocks({ features, rows: 2, dim: 3, blocks }, ["one"])).toThrow(UsageError);
    const joined = appendSourceBlocks({ features, rows: 2, dim: 3, blocks }, ["a", "b"]);
    expect(() => appendSourceBlocks(joined, ["a", "b"])).toThrow(/already hold words/);
  });
});
