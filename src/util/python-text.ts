/**
 * Python's `str` whitespace semantics, which sacreBLEU relies on everywhere (`str.split()`,
 * `str.strip()`, `str.rstrip()`). JavaScript's `\s` must not stand in for them: it matches U+FEFF
 * (a byte-order mark is an ordinary character to Python, so it stays glued to the first word)
 * and misses U+001C–U+001F and U+0085, which Python treats as whitespace.
 */

/**
 * The code points for which Python 3's `str.isspace()` is true, as inclusive ranges. All lie in
 * the BMP, so a UTF-16 unit can be tested on its own (surrogate halves are never whitespace).
 */
export const PYTHON_WHITESPACE_RANGES: ReadonlyArray<readonly [number, number]> = [
  [0x09, 0x0d],
  [0x1c, 0x20],
  [0x85, 0x85],
  [0xa0, 0xa0],
  [0x1680, 0x1680],
  [0x2000, 0x200a],
  [0x2028, 0x2029],
  [0x202f, 0x202f],
  [0x205f, 0x205f],
  [0x3000, 0x3000],
];

// chrF tests every character of every segment, so membership is one table look-up.
const HIGHEST_WHITESPACE = 0x3000;
const IS_WHITESPACE = new Uint8Array(HIGHEST_WHITESPACE + 1);
for (const [first, last] of PYTHON_WHITESPACE_RANGES) IS_WHITESPACE.fill(1, first, last + 1);

const WHITESPACE_RUN = new RegExp(
  `[${PYTHON_WHITESPACE_RANGES.map(([first, last]) =>
    first === last ? unicodeEscape(first) : `${unicodeEscape(first)}-${unicodeEscape(last)}`,
  ).join("")}]+`,
);

function unicodeEscape(codePoint: number): string {
  return `\\u${codePoint.toString(16).padStart(4, "0")}`;
}

/** True for code points in Python's `str.isspace()` set (see {@link PYTHON_WHITESPACE_RANGES}). */
export function isPythonWhitespace(codePoint: number): boolean {
  return codePoint <= HIGHEST_WHITESPACE && IS_WHITESPACE[codePoint] === 1;
}

/** Python's `text.split()`: the pieces between whitespace runs, never an empty piece. */
export function pythonSplit(text: string): string[] {
  const pieces = text.split(WHITESPACE_RUN);
  if (pieces.length > 0 && pieces[0] === "") pieces.shift();
  if (pieces.length > 0 && pieces[pieces.length - 1] === "") pieces.pop();
  return pieces;
}

/** Python's `" ".join(text.split())`: single spaces between pieces, none at the ends. */
export function pythonCollapseWhitespace(text: string): string {
  return pythonSplit(text).join(" ");
}

/** Python's `text.rstrip()`. */
export function pythonRstrip(text: string): string {
  let end = text.length;
  while (end > 0 && isPythonWhitespace(text.charCodeAt(end - 1))) end--;
  return text.slice(0, end);
}

/** Python's `text.strip()`. */
export function pythonStrip(text: string): string {
  const rstripped = pythonRstrip(text);
  let start = 0;
  while (start < rstripped.length && isPythonWhitespace(rstripped.charCodeAt(start))) start++;
  return rstripped.slice(start);
}
