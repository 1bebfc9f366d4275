/**
 * Bearer-key authentication. Keys are compared as SHA-256 digests with `timingSafeEqual` (equal
 * lengths by construction), against every key without stopping at a match, so the time taken says
 * nothing about which key or how much of it matched. Keys are never logged.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { readFile } from "node:fs/promises";
import { InputError } from "../errors/index.js";

function digest(text: string): Buffer {
  return createHash("sha256").update(text, "utf8").digest();
}

/** Reads an API key file: one key per line; blank lines and lines starting with `#` are skipped. */
export async function readApiKeys(file: string): Promise<string[]> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    throw new InputError(
      `cannot read API key file (${(error as NodeJS.ErrnoException).code ?? "unreadable"})`,
      { file },
      { cause: error },
    );
  }
  const keys = text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("#"));
  if (keys.length === 0) throw new InputError("the API key file holds no key", { file });
  return keys;
}

/** Checks `Authorization` header values against a fixed set of keys. */
export class BearerAuthenticator {
  private readonly digests: Buffer[];

  constructor(keys: readonly string[]) {
    this.digests = keys.map(digest);
  }

  /** Whether the header is `Bearer <one of the keys>`. */
  accepts(header: string | undefined): boolean {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? "");
    const presented = digest(match?.[1] ?? "");
    let accepted = false;
    for (const known of this.digests) {
      const equal = timingSafeEqual(presented, known);
      accepted = accepted || equal;
    }
    return match !== null && accepted;
  }
}
