import { readFile } from "node:fs/promises";
import { InputError } from "../errors/index.js";
import { pythonRstrip } from "./python-text.js";

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
