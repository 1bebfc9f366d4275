import { describe, expect, it } from "vitest";
import { isChineseCharacter, tokenizeChinese } from "./tokenizer-zh.js";

// Expected outputs hand-derived (every character in the ranges gets its own token, the rest follows
// the mteval punctuation rules) and cross-checked against sacreBLEU 2.6.0's TokenizerZh when this
// file was written.
describe("tokenizeChinese", () => {
  it.each([
    ["我喜欢北京。", "我 喜 欢 北 京 。"],
    // ASCII words and numbers stay whole; the full-width comma is a "Chinese" character
    ["我用iPhone 15拍照，很好。", "我 用 iPhone 15 拍 照 ， 很 好 。"],
    ["价格是3.5元.", "价 格 是 3.5 元 ."],
    ["Hello, world!", "Hello , world !"],
    ["  他在上海工作  ", "他 在 上 海 工 作"],
    // sacreBLEU's effective ranges include curly quotes, the ellipsis, currency and enclosed numbers
    ["我爱“北京”…€ abc①", "我 爱 “ 北 京 ” … € abc ①"],
  ])("tokenizes %j", (line, expected) => {
    expect(tokenizeChinese(line)).toBe(expected);
  });

  it("skips the 13a entity unescaping", () => {
    expect(tokenizeChinese("&quot;你好&quot;")).toBe("& quot ; 你 好 & quot ;");
  });

  it("uses the ranges sacreBLEU really compares, not the ones its comments name", () => {
    expect(isChineseCharacter(0x4e2d)).toBe(true); // 中
    expect(isChineseCharacter(0x2001)).toBe(true); // em quad: inside '\u2000' + '0' .. '\u2a6d' + '6'
    expect(isChineseCharacter(0x2000)).toBe(false); // en quad: equal to the first char of a longer bound
    expect(isChineseCharacter(0x2a6d)).toBe(true);
    expect(isChineseCharacter(0x2a6e)).toBe(false);
    expect(isChineseCharacter(0x20000)).toBe(false); // CJK Extension B is not split
    expect(isChineseCharacter(0x41)).toBe(false);
  });
});
