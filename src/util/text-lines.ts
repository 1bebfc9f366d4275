import { readFile } from "node:fs/promises";
import { InputError } from "../errors/index.js";

/**
 * Python's `str.isspace()` set, which sacreBLEU's `rstrip()` uses. It differs from JavaScript's
 * `\s`: U+FEFF (BOM) is NOT whitespace in Python, while U+001C–U+001F and U+0085 are.
 */
const PYTHON_WHITESPACE = new Set<number>([
  0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x85, 0xa0, 0x1680, 0x2000, 0x2001, 0x2002,
  0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000,
]);

export function isPythonWhitespace(codePoint: number): boolean {
  return PYTHON_WHITESPACE.has(codePoint);
}

/** Python's `s.rstrip()`. */
export function pythonRstrip(text: string): string {
  let end = text.length;
  while (end > 0 && PYTHON_WHITESPACE.has(text.charCodeAt(end - 1))) end--;
  return text.slice(0, end);
}

/** Python's `s.strip()`. */
export function pythonStrip(text: string): string {
  let start = 0;
  const rstripped = pythonRstrip(text);
  while (start < rstripped.length && PYTHON_WHITESPACE.has(rstripped.charCodeAt(start))) start++;
  return rstripped.slice(start);
}

/**
 * Decodes UTF-8 strictly. On invalid bytes throws an InputError naming the file and the 1-based
 * line of the first bad byte (a silent U+FFFD would change scores without anyone noticing).
 */
export function decodeUtf8Strict(bytes: Uint8Array, file: string): string {
  try {
    return strictDecoder.decode(bytes);
  } catch {
    throw new InputError("invalid UTF-8", { file, line: firstInvalidUtf8Line(bytes) });
  }
}

const strictDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** 1-based line of the first line whose bytes are not valid UTF-8 on their own. */
function firstInvalidUtf8Line(bytes: Uint8Array): number {
  let lineStart = 0;
  let line = 1;
  while (lineStart <= bytes.length) {
    let end = bytes.indexOf(0x0a, lineStart);
    if (end === -1) end = bytes.length;
    try {
      strictDecoder.decode(bytes.subarray(lineStart, end));
    } catch {
      return line;
    }
    lineStart = end + 1;
    line++;
  }
  return line;
}

/**
 * Reads a plain-text file of one segment per line, as sacreBLEU's command line does: UTF-8 (a BOM
 * is kept as a character), split on "\n" only, each line right-stripped with Python's whitespace set.
 * A final newline does not make an extra empty segment.
 */
export async function readSegmentLines(file: string): Promise<string[]> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? "unreadable";
    throw new InputError(`cannot read file (${reason})`, { file }, { cause: error });
  }
  const text = decodeUtf8Strict(bytes, file);
  if (text.length === 0) return [];
  const lines = text.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  return lines.map(pythonRstrip);
}
