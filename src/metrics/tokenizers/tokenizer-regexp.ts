import { pythonCollapseWhitespace } from "../../util/python-text.js";

/**
 * The language-dependent steps of mteval-v13a (sacreBLEU's `TokenizerRegexp`), shared by the `13a`
 * and `zh` tokenizers. Applied in order, each replacing every non-overlapping match left to right.
 */
const MTEVAL_STEPS: ReadonlyArray<readonly [RegExp, string]> = [
  // ASCII symbols and most punctuation, but not ' , - . (handled below or kept inside words)
  [/([{-~[-\x60 -&(-+:-@/])/gu, " $1 "],
  // period and comma unless preceded by a digit
  [/([^0-9])([.,])/gu, "$1 $2 "],
  // period and comma unless followed by a digit
  [/([.,])([^0-9])/gu, " $1 $2"],
  // dash when preceded by a digit
  [/([0-9])(-)/gu, "$1 $2 "],
];

/** Applies the mteval regular-expression steps, then collapses whitespace the Python way. */
export function mtevalPostTokenize(line: string): string {
  let result = line;
  for (const [pattern, replacement] of MTEVAL_STEPS) result = result.replace(pattern, replacement);
  return pythonCollapseWhitespace(result);
}
