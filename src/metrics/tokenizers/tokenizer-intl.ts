import { pythonCollapseWhitespace } from "../../util/python-text.js";

/**
 * mteval-v14 international rules as sacreBLEU applies them (Unicode general categories): split off
 * punctuation unless it sits between digits, and split off every symbol.
 */
const INTERNATIONAL_STEPS: ReadonlyArray<readonly [RegExp, string]> = [
  // punctuation preceded by a non-digit
  [/(\P{N})(\p{P})/gu, "$1 $2 "],
  // punctuation followed by a non-digit
  [/(\p{P})(\P{N})/gu, " $1 $2"],
  // symbols
  [/(\p{S})/gu, " $1 "],
];

/**
 * sacreBLEU's `intl` tokenizer. Unlike `13a` it neither pads the line nor unescapes entities, so a
 * number followed by a sentence-final period keeps the period (`2024.` stays one token), exactly
 * as mteval-v14 and sacreBLEU do.
 */
export function tokenizeInternational(line: string): string {
  let result = line;
  for (const [pattern, replacement] of INTERNATIONAL_STEPS) result = result.replace(pattern, replacement);
  return pythonCollapseWhitespace(result);
}
