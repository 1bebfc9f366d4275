import { createHash } from "node:crypto";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { readCollectInput } from "./collect-input.js";

const sha256 = (text: string) => createHash("sha256").update(text, "utf8").digest("hex");

describe("readCollectInput", () => {
  it("returns the segments with the hash of the bytes they were parsed from", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "routelmt-collect-input-"));
    const file = path.join(dir, "in.jsonl");
    const content = '{"id":1,"src":"the cat","ref":"die Katze"}\n{"id":"b","src":"a dog","ref":"ein Hund"}\n';
    await writeFile(file, content);
    const options = { needsReference: true, srcLang: "en", tgtLang: "de" };
    const input = await readCollectInput(file, options);
    expect(input.segments.map((segment) => segment.id)).toEqual(["1", "b"]);
    expect(input.sha256).toBe(sha256(content));
    // The file as it is later does not change what was read: the hash belongs to the segments.
    await writeFile(file, content.replace("the cat", "the hat"));
    expect(input.sha256).toBe(sha256(content));
    expect(input.segments[0]?.src).toBe("the cat");
    // --limit keeps fewer segments but hashes the whole file, as the identity always has.
    const limited = await readCollectInput(file, { ...options, limit: 1 });
    expect(limited.segments).toHaveLength(1);
    expect(limited.sha256).toBe(sha256(content.replace("the cat", "the hat")));
  });
});
