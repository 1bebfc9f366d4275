import { pythonStrip } from "../../util/python-text.js";
import { mtevalPostTokenize } from "./tokenizer-regexp.js";

/**
 * Code point ranges (inclusive) that sacreBLEU's `zh` tokenizer treats as Chinese characters.
 *
 * Two entries differ from the comments in sacreBLEU's table on purpose. Its source writes the
 * supplementary-plane ranges as `'\u20000'`–`'\u2a6d6'` and `'\u2f800'`–`'\u2fa1d'`, but a
 * Python `\u` escape takes exactly four hex digits, so those are two-character strings and the
 * single-character comparisons actually select U+2001–U+2A6D and U+2F81–U+2FA1. That covers general
 * punctuation (curly quotes, dashes, the ellipsis), currency signs, arrows, maths and box
 * drawing, and leaves CJK Extension B unsplit. Scores only match sacreBLEU with the ranges it
 * really uses.
 */
const CHINESE_RANGES: ReadonlyArray<readonly [number, number]> = [
  [0x3400, 0x4db5], // CJK Unified Ideographs Extension A
  [0x4e00, 0x9fa5], // CJK Unified Ideographs
  [0x9fa6, 0x9fbb], // CJK Unified Ideographs, Unicode 4.1
  [0xf900, 0xfa2d], // CJK Compatibility Ideographs
  [0xfa30, 0xfa6a], // CJK Compatibility Ideographs, Unicode 3.2
  [0xfa70, 0xfad9], // CJK Compatibility Ideographs, Unicode 4.1
  [0x2001, 0x2a6d], // what sacreBLEU's '\u20000'..'\u2a6d6' compares as (see above)
  [0x2f81, 0x2fa1], // what sacreBLEU's '\u2f800'..'\u2fa1d' compares as (see above)
  [0xff00, 0xffef], // full-width ASCII and punctuation, half-width kana, Hangul
  [0x2e80, 0x2eff], // CJK Radicals Supplement
  [0x3000, 0x303f], // CJK symbols and punctuation
  [0x31c0, 0x31ef], // CJK strokes
  [0x2f00, 0x2fdf], // Kangxi Radicals
  [0x2ff0, 0x2fff], // ideographic description characters
  [0x3100, 0x312f], // Bopomofo
  [0x31a0, 0x31bf], // Bopomofo Extended
  [0xfe10, 0xfe1f], // vertical forms
  [0xfe30, 0xfe4f], // CJK compatibility forms
  [0x2600, 0x26ff], // miscellaneous symbols
  [0x2700, 0x27bf], // dingbats
  [0x3200, 0x32ff], // enclosed CJK letters and months
  [0x3300, 0x33ff], // CJK compatibility
];

/** Whether sacreBLEU's `zh` tokenizer puts spaces around this code point. */
export function isChineseCharacter(codePoint: number): boolean {
  return CHINESE_RANGES.some(([first, last]) => codePoint >= first && codePoint <= last);
}

/**
 * sacreBLEU's `zh` tokenizer: strips the line, surrounds every "Chinese" code point (see
 * `CHINESE_RANGES`) with spaces, then applies the mteval punctuation rules. It skips the `13a`
 * steps that come before them (no `<skipped>` removal, no entity unescaping, no padding).
 */
export function tokenizeChinese(line: string): string {
  let spaced = "";
  for (const character of pythonStrip(line)) {
    spaced += isChineseCharacter(character.codePointAt(0)!) ? ` ${character} ` : character;
  }
  return mtevalPostTokenize(spaced);
}
