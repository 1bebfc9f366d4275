import { describe, expect, it } from "vitest";
import { tokenize13a } from "./tokenizer-13a.js";

// Expected outputs hand-derived from the mteval-v13a rules and cross-checked against
// sacreBLEU 2.6.0's Tokenizer13a when this file was written.
describe("tokenize13a", () => {
  it.each([
    ["Hello, world!", "Hello , world !"],
    // thousands/decimal separators stay inside numbers; the final period splits thanks to the padding
    ["It costs $1,000.50.", "It costs $ 1,000.50 ."],
    ["3.14, 2,5 and 7.", "3.14 , 2,5 and 7 ."],
    // ASCII symbols and brackets split; apostrophes and in-word hyphens do not
    [
      "e.g. U.S.A. (tm) [x] {y} a/b a@b #1 50% ~x ^y `z` |w|",
      "e . g . U . S . A . ( tm ) [ x ] { y } a / b a @ b # 1 50 % ~ x ^ y ` z ` | w |",
    ],
    ["1990-2000 well-known don't", "1990 - 2000 well-known don't"],
  ])("tokenizes %j", (line, expected) => {
    expect(tokenize13a(line)).toBe(expected);
  });

  it("unescapes &quot; &amp; &lt; &gt; once, in mteval's order", () => {
    expect(tokenize13a("&quot;Hi&quot; &amp; &lt;b&gt;")).toBe('" Hi " & < b >');
    // &amp; is unescaped after &quot;, so the &quot; it produces stays literal
    expect(tokenize13a("&amp;quot;")).toBe("& quot ;");
  });

  it("drops <skipped>, joins words hyphenated across a line break, turns other breaks into spaces", () => {
    expect(tokenize13a("<skipped> word")).toBe("word");
    expect(tokenize13a("hyphen-\nated line\nbreak")).toBe("hyphenated line break");
  });

  it("treats Unicode spaces as separators but keeps a byte-order mark on the first word", () => {
    expect(tokenize13a("a\u00a0b\u3000c")).toBe("a b c");
    expect(tokenize13a("\ufeffHello")).toBe("\ufeffHello");
  });
});
