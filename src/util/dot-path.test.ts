import { describe, expect, it } from "vitest";
import { UsageError } from "../errors/index.js";
import { parseDotPath, readAtKeys, readDotPath } from "./dot-path.js";

describe("parseDotPath", () => {
  it("splits plain keys with dashes, underscores and digits", () => {
    expect(parseDotPath("metrics.CometKiwi-src.GPT4-5shot")).toEqual([
      "metrics",
      "CometKiwi-src",
      "GPT4-5shot",
    ]);
    expect(parseDotPath("bleu_2")).toEqual(["bleu_2"]);
    expect(parseDotPath("items.0.score")).toEqual(["items", "0", "score"]);
  });

  it("reads quoted keys holding dots, spaces and escapes", () => {
    expect(parseDotPath('metrics."a.b".sys')).toEqual(["metrics", "a.b", "sys"]);
    expect(parseDotPath('"wmt 23"."x\\"y".z')).toEqual(["wmt 23", 'x"y', "z"]);
    expect(parseDotPath('"back\\\\slash"')).toEqual(["back\\slash"]);
  });

  it.each([
    ["", /empty path/],
    ["a..b", /empty key/],
    [".a", /empty key/],
    ["a.", /empty key/],
    ['a."b', /unclosed quote/],
    ['a."b"c', /expected '\.'/],
    ['a.""', /empty quoted key/],
    ["a b", /expected '\.'/],
    ['a."\\n"', /escapes/],
  ])("rejects %j", (path, why) => {
    expect(() => parseDotPath(path)).toThrow(UsageError);
    expect(() => parseDotPath(path)).toThrow(why);
  });
});

describe("readDotPath", () => {
  const record = {
    metrics: {
      "a.b": { sys: 0.75 },
      "CometKiwi-src": { "GPT4-5shot": 0.81, nothing: null },
    },
    items: [{ score: 3 }, { score: 4 }],
  };

  it("reads nested values, quoted keys and array indices", () => {
    expect(readDotPath(record, 'metrics."a.b".sys')).toBe(0.75);
    expect(readDotPath(record, "metrics.CometKiwi-src.GPT4-5shot")).toBe(0.81);
    expect(readDotPath(record, "items.1.score")).toBe(4);
    expect(readDotPath(record, "metrics.CometKiwi-src.nothing")).toBeNull();
  });

  it("gives undefined for anything missing", () => {
    expect(readDotPath(record, "metrics.a.b.sys")).toBeUndefined();
    expect(readDotPath(record, "items.7.score")).toBeUndefined();
    expect(readDotPath(record, "items.first")).toBeUndefined();
    expect(readDotPath(record, "metrics.CometKiwi-src.GPT4-5shot.deeper")).toBeUndefined();
    expect(readDotPath(null, "a")).toBeUndefined();
    // Inherited properties are not data.
    expect(readAtKeys({}, ["toString"])).toBeUndefined();
  });
});
