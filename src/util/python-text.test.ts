import { describe, expect, it } from "vitest";
import {
  isPythonWhitespace,
  pythonCollapseWhitespace,
  pythonRstrip,
  pythonSplit,
  pythonStrip,
} from "./python-text.js";

describe("isPythonWhitespace and pythonSplit", () => {
  // Code points for which Python 3.11's str.isspace() is true (what str.split() splits on).
  const PYTHON_WHITESPACE = [
    0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x85, 0xa0, 0x1680, 0x2000, 0x2001, 0x2002,
    0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000,
  ];

  it("matches Python's set over the whole BMP, unlike JavaScript's \\s", () => {
    const expected = new Set(PYTHON_WHITESPACE);
    const mismatches: number[] = [];
    for (let codePoint = 0; codePoint < 0x10000; codePoint++) {
      if (codePoint >= 0xd800 && codePoint <= 0xdfff) continue;
      const isWhitespace = expected.has(codePoint);
      const character = String.fromCharCode(codePoint);
      const pieces = pythonSplit(`a${character}b`).length;
      const stripped = pythonStrip(`${character}b${character}`);
      if (
        isPythonWhitespace(codePoint) !== isWhitespace ||
        pieces !== (isWhitespace ? 2 : 1) ||
        stripped !== (isWhitespace ? "b" : `${character}b${character}`)
      ) {
        mismatches.push(codePoint);
      }
    }
    expect(mismatches).toEqual([]);
    expect(/\s/.test("\uFEFF")).toBe(true); // the trap this guards against
  });

  it("drops leading and trailing whitespace like str.split()", () => {
    expect(pythonSplit("  a \t b\n")).toEqual(["a", "b"]);
    expect(pythonSplit(" \u3000 ")).toEqual([]);
    expect(pythonSplit("  ")).toEqual([]);
    expect(pythonSplit("")).toEqual([]);
  });

  it("splits on str.isspace characters only, keeping U+FEFF inside tokens", () => {
    expect(pythonSplit("a\u00a0b\ufeffc\u001fd\u0085e\u200bf")).toEqual(["a", "b\ufeffc", "d", "e\u200bf"]);
  });

  it("collapses whitespace like ' '.join(str.split())", () => {
    expect(pythonCollapseWhitespace("\t a  b \n")).toBe("a b");
  });
});

describe("pythonStrip and pythonRstrip", () => {
  it("keeps a BOM, which Python does not treat as whitespace", () => {
    expect(pythonStrip("\uFEFFabc\uFEFF ")).toBe("\uFEFFabc\uFEFF");
    expect(pythonRstrip("\ufeff a \n")).toBe("\ufeff a");
  });

  it("strips characters Python treats as whitespace but JavaScript does not", () => {
    expect(pythonRstrip("abc\u001c\u0085")).toBe("abc");
    expect(pythonStrip(" \u3000x\t\r")).toBe("x");
    expect(pythonStrip("\u3000 a b \u2028")).toBe("a b");
  });

  it("leaves astral characters alone and strips all-whitespace text to nothing", () => {
    expect(pythonStrip(" \u{1F600} ")).toBe("\u{1F600}");
    expect(pythonRstrip(" \t ")).toBe("");
  });
});
