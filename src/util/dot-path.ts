import { UsageError } from "../errors/index.js";

/**
 * Splits a dot path into keys. Plain keys run up to the next dot and may hold any character but
 * `.`, `"` and whitespace (so `CometKiwi-src`, `GPT4-5shot`, `bleu_2`, `0` are fine); a key with
 * dots or spaces is written in double quotes, with `\"` and `\\` escapes inside:
 * `metrics."a.b".sys` → `["metrics", "a.b", "sys"]`. An empty path, an empty key, an unclosed
 * quote or stray characters are a {@link UsageError} naming the path.
 */
export function parseDotPath(path: string): string[] {
  const keys: string[] = [];
  let position = 0;
  const fail = (why: string): never => {
    throw new UsageError(`bad dot path ${JSON.stringify(path)}: ${why} at character ${position + 1}`);
  };
  if (path === "") fail("empty path");
  for (;;) {
    if (path[position] === '"') {
      let key = "";
      position++;
      for (;;) {
        const char = path[position];
        if (char === undefined) fail("unclosed quote");
        if (char === '"') break;
        if (char === "\\") {
          const escaped = path[position + 1];
          if (escaped !== '"' && escaped !== "\\") fail('only \\" and \\\\ escapes are allowed');
          key += escaped;
          position += 2;
          continue;
        }
        key += char;
        position++;
      }
      position++; // closing quote
      if (key === "") fail("empty quoted key");
      keys.push(key);
    } else {
      const start = position;
      while (position < path.length && !/[."\s]/.test(path[position]!)) position++;
      if (position === start)
        fail(path[position] === "." || position === path.length ? "empty key" : "unexpected character");
      keys.push(path.slice(start, position));
    }
    if (position === path.length) return keys;
    if (path[position] !== ".") fail("expected '.' after a key");
    position++;
    if (position === path.length) fail("empty key");
  }
}

/**
 * The value at `keys` inside `value`, or undefined when any step is missing. Numeric keys also
 * index arrays (`items.0.score`).
 */
export function readAtKeys(value: unknown, keys: readonly string[]): unknown {
  let current = value;
  for (const key of keys) {
    if (current === null || typeof current !== "object") return undefined;
    if (Array.isArray(current)) {
      if (!/^\d+$/.test(key)) return undefined;
      current = current[Number(key)];
    } else {
      if (!Object.hasOwn(current, key)) return undefined;
      current = (current as Record<string, unknown>)[key];
    }
  }
  return current;
}

/** The value at a dot path (see {@link parseDotPath}) inside `record`, or undefined when missing. */
export function readDotPath(record: unknown, path: string): unknown {
  return readAtKeys(record, parseDotPath(path));
}
