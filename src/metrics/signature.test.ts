import { describe, expect, it } from "vitest";
import { UsageError } from "../errors/index.js";
import { VERSION } from "../version.js";
import { formatSignature, SIGNATURE_VERSION } from "./signature.js";

describe("formatSignature", () => {
  it("joins fields in the given order and puts the routelmt version last", () => {
    expect(
      formatSignature([
        ["nrefs", 1],
        ["case", "mixed"],
        ["eff", "no"],
      ]),
    ).toBe(`nrefs:1|case:mixed|eff:no|version:routelmt-${VERSION}`);
    expect(SIGNATURE_VERSION).toBe(`routelmt-${VERSION}`);
  });

  it("prints booleans as yes/no and leaves out unset fields, as sacreBLEU does", () => {
    expect(
      formatSignature([
        ["nrefs", undefined],
        ["eff", true],
        ["space", false],
        ["seed", null],
      ]),
    ).toBe(`eff:yes|space:no|version:routelmt-${VERSION}`);
  });

  it("rejects a '|' inside a field and a hand-written version field", () => {
    expect(() => formatSignature([["tok", "a|b"]])).toThrow(UsageError);
    expect(() => formatSignature([["version", "1"]])).toThrow(UsageError);
  });
});
