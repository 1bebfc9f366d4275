/**
 * Bearer-key authentication. Keys are compared as SHA-256 digests with `timingSafeEqual` (equal
 * lengths by construction), against every key without stopping at a match, so the time taken says
 * nothing about which key or how much of it matched. Keys are never logged.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { readFile } from "node:fs/promises";
import { inspect } from "node:util";
import { InputError } from "../errors/index.js";

/**
 * The environment variable holding an API key clients must present. Not `ROUTELMT_API_KEY`: that
 * one is the key the server itself sends to `openai:` engines.
 */
export const SERVER_API_KEY_VARIABLE = "ROUTELMT_SERVER_API_KEY";

/** One API key: any run of non-space characters (the Authorization header carries it after `Bearer `). */
export const API_KEY_PATTERN = /^\S+$/;

/**
 * API keys as settings carry them: serialising or inspecting the holder (a logged config, an error
 * report) shows how many there are, never the keys.
 */
export class ApiKeys {
  readonly #keys: readonly string[];

  constructor(keys: readonly string[] = []) {
    this.#keys = [...keys];
  }

  get count(): number {
    return this.#keys.length;
  }

  /** The keys themselves, for the authenticator only. */
  reveal(): readonly string[] {
    return this.#keys;
  }

  /** A new set with `more` added. */
  with(more: readonly string[]): ApiKeys {
    return new ApiKeys([...this.#keys, ...more]);
  }

  toJSON(): string {
    return `[${this.#keys.length} API keys, redacted]`;
  }

  toString(): string {
    return this.toJSON();
  }

  [inspect.custom](): string {
    return this.toJSON();
  }
}

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
