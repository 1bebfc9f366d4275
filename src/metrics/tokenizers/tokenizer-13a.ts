import { mtevalPostTokenize } from "./tokenizer-regexp.js";

/** HTML entities mteval-v13a unescapes, in its order (so `&amp;quot;` becomes `&quot;`, not `"`). */
const ENTITIES: ReadonlyArray<readonly [string, string]> = [
  ["&quot;", '"'],
  ["&amp;", "&"],
  ["&lt;", "<"],
  ["&gt;", ">"],
];

/**
 * sacreBLEU's default `13a` tokenizer (mteval-v13a, used by WMT): drops `<skipped>`, joins words
 * hyphenated across a line break, turns other line breaks into spaces, unescapes four HTML
 * entities, pads the line with spaces (so a final period splits off even after a digit) and applies
 * the mteval punctuation rules.
 */
export function tokenize13a(line: string): string {
  let result = line.replaceAll("<skipped>", "").replaceAll("-\n", "").replaceAll("\n", " ");
  if (result.includes("&")) {
    for (const [entity, character] of ENTITIES) result = result.replaceAll(entity, character);
  }
  return mtevalPostTokenize(` ${result} `);
}
