/**
 * Python's notion of whitespace (`str.isspace`, used by `str.split()` and `str.strip()`), which
 * sacreBLEU relies on. JavaScript's `\s` differs: it also matches U+FEFF (a byte-order mark must
 * stay glued to the first word, as in sacreBLEU) and misses U+001C–U+001F and U+0085.
 */
const PYTHON_WHITESPACE =
  "\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";

const WHITESPACE_RUN = new RegExp(`[${PYTHON_WHITESPACE}]+`, "u");
const LEADING_WHITESPACE = new RegExp(`^[${PYTHON_WHITESPACE}]+`, "u");
const TRAILING_WHITESPACE = new RegExp(`[${PYTHON_WHITESPACE}]+$`, "u");

/** Python's `line.split()`: tokens between whitespace runs, never an empty token. */
export function splitOnWhitespace(line: string): string[] {
  return line.split(WHITESPACE_RUN).filter((token) => token.length > 0);
}

/** Python's `" ".join(line.split())`: single spaces between tokens, none at the ends. */
export function collapseWhitespace(line: string): string {
  return splitOnWhitespace(line).join(" ");
}

/** Python's `line.strip()`. */
export function stripWhitespace(line: string): string {
  return line.replace(LEADING_WHITESPACE, "").replace(TRAILING_WHITESPACE, "");
}

/** Python's `line.rstrip()`. */
export function rstripWhitespace(line: string): string {
  return line.replace(TRAILING_WHITESPACE, "");
}
