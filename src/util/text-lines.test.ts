import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { decodeUtf8Strict, readSegmentLines } from "./text-lines.js";

describe("decodeUtf8Strict", () => {
  it("names the line of the first invalid byte", () => {
    const bytes = new Uint8Array([0x61, 0x0a, 0x62, 0x0a, 0xc3, 0x28, 0x0a]);
    expect(() => decodeUtf8Strict(bytes, "h.txt")).toThrow("h.txt:3: invalid UTF-8");
  });
});

describe("readSegmentLines", () => {
  it("splits on newlines only, right-strips, keeps a leading BOM and ignores a final newline", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "routelmt-lines-"));
    const file = path.join(dir, "a.txt");
    await writeFile(file, "\uFEFFone \r\ntwo\rthree\n\nlast\n");
    expect(await readSegmentLines(file)).toEqual(["\uFEFFone", "two\rthree", "", "last"]);
  });
  it("reads an empty file as no segments", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "routelmt-lines-"));
    const file = path.join(dir, "empty.txt");
    await writeFile(file, "");
    expect(await readSegmentLines(file)).toEqual([]);
  });
});
