import { createHash } from "node:crypto";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { InputError } from "../errors/index.js";
import { parseJsonlBytes, readHashedJsonl, readJsonl } from "./jsonl.js";

const bytes = (text: string) => new TextEncoder().encode(text);

describe("parseJsonlBytes", () => {
  it("parses objects with their line numbers and skips blank lines", () => {
    const lines = parseJsonlBytes(bytes('{"a":1}\n\n{"b":"x"}\r\n'), "in.jsonl");
    expect(lines).toEqual([
      { line: 1, value: { a: 1 } },
      { line: 3, value: { b: "x" } },
    ]);
  });

  it("names file and line of malformed JSON", () => {
    expect(() => parseJsonlBytes(bytes('{"a":1}\n{"a":\n'), "in.jsonl")).toThrow(
      /^in\.jsonl:2: malformed JSON/,
    );
  });

  it("rejects non-object lines", () => {
    expect(() => parseJsonlBytes(bytes("[1,2]\n"), "x")).toThrow(InputError);
    expect(() => parseJsonlBytes(bytes("null\n"), "x")).toThrow(/x:1: expected a JSON object/);
  });

  it("reports invalid UTF-8 with its line", () => {
    const data = new Uint8Array([...bytes('{"a":"ok"}\n{"a":"'), 0xff, ...bytes('"}\n')]);
    expect(() => parseJsonlBytes(data, "bad.jsonl")).toThrow("bad.jsonl:2: invalid UTF-8");
  });
});

describe("readJsonl", () => {
  it("reads a file and reports a missing one by name", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "routelmt-jsonl-"));
    const file = path.join(dir, "a.jsonl");
    await writeFile(file, '{"id":"1"}\n{"id":"2"}');
    expect((await readJsonl(file)).map((l) => l.value.id)).toEqual(["1", "2"]);
    await expect(readJsonl(path.join(dir, "missing.jsonl"))).rejects.toThrow(
      /missing\.jsonl: cannot read file \(ENOENT\)/,
    );
  });
});

describe("readHashedJsonl", () => {
  it("hashes exactly the bytes it parsed, blank lines and line ends included", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "routelmt-jsonl-"));
    const file = path.join(dir, "a.jsonl");
    const content = '{"id":"1"}\r\n\n{"id":"é"}';
    await writeFile(file, content);
    const { lines, sha256 } = await readHashedJsonl(file);
    expect(lines).toEqual(await readJsonl(file));
    expect(sha256).toBe(createHash("sha256").update(content, "utf8").digest("hex"));
    await expect(readHashedJsonl(path.join(dir, "missing.jsonl"))).rejects.toThrow(
      /missing\.jsonl: cannot read file \(ENOENT\)/,
    );
  });
});
