import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { InputError } from "../errors/index.js";

/** One parsed JSONL line with its 1-based line number. */
export interface JsonlLine {
  line: number;
  value: Record<string, unknown>;
}

const strictDecoder = new TextDecoder("utf-8", { fatal: true });

/**
 * Reads a JSON Lines file. Blank lines are skipped; a line that is not valid UTF-8, not valid JSON
 * or not a JSON object is an InputError naming the file and line. Files are read whole: the
 * datasets this tool handles are megabytes, and byte-level splitting keeps line numbers exact.
 */
export async function readJsonl(file: string): Promise<JsonlLine[]> {
  return parseJsonlBytes(await readInputBytes(file), file);
}

/** A JSON Lines file as {@link readJsonl} parses it, with the hash of the bytes parsed. */
export interface HashedJsonl {
  lines: JsonlLine[];
  /** sha256 (hex) of exactly the bytes `lines` were parsed from. */
  sha256: string;
}

/**
 * Reads a JSON Lines file once, parsing and hashing the same bytes. A run that records its input's
 * hash (so that resuming over another input is refused) must record the content it used: reading
 * the file again to hash it would describe whatever the file holds by then.
 */
export async function readHashedJsonl(file: string): Promise<HashedJsonl> {
  const bytes = await readInputBytes(file);
  return {
    lines: parseJsonlBytes(bytes, file),
    sha256: createHash("sha256").update(bytes).digest("hex"),
  };
}

async function readInputBytes(file: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (error) {
    throw new InputError(
      `cannot read file (${(error as NodeJS.ErrnoException).code ?? "unreadable"})`,
      { file },
      {
        cause: error,
      },
    );
  }
}

/** Parses JSONL bytes; `file` names the source in errors. */
export function parseJsonlBytes(bytes: Uint8Array, file: string): JsonlLine[] {
  const out: JsonlLine[] = [];
  let start = 0;
  let lineNumber = 0;
  while (start < bytes.length) {
    let end = bytes.indexOf(0x0a, start);
    if (end === -1) end = bytes.length;
    lineNumber++;
    let text: string;
    try {
      text = strictDecoder.decode(bytes.subarray(start, end));
    } catch {
      throw new InputError("invalid UTF-8", { file, line: lineNumber });
    }
    start = end + 1;
    if (text.trim() === "") continue;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      throw new InputError(`malformed JSON (${(error as Error).message})`, { file, line: lineNumber });
    }
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      throw new InputError("expected a JSON object on this line", { file, line: lineNumber });
    }
    out.push({ line: lineNumber, value: value as Record<string, unknown> });
  }
  return out;
}
