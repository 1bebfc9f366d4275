import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { readGgufFileInfo } from "node-llama-cpp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hasShared, sharedPath, sharedSkipReason } from "../../test/helpers/shared.js";
import { InputError } from "../errors/index.js";
import { ggufFingerprint, readGgufHeader } from "./gguf-fingerprint.js";

function ggufString(text: string): Buffer {
  const bytes = Buffer.from(text, "utf8");
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(bytes.length));
  return Buffer.concat([length, bytes]);
}
function u32(value: number): Buffer {
  const bytes = Buffer.alloc(4);
  bytes.writeUInt32LE(value);
  return bytes;
}
function u64(value: number): Buffer {
  const bytes = Buffer.alloc(8);
  bytes.writeBigUInt64LE(BigInt(value));
  return bytes;
}

/** A GGUF v3 file with one string KV, one string array KV and one f32 tensor of `values`. */
function tinyGguf(architecture: string, values: number[]): { bytes: Buffer; headerLength: number } {
  const header = Buffer.concat([
    Buffer.from("GGUF", "latin1"),
    u32(3),
    u64(1),
    u64(2),
    ggufString("general.architecture"),
    u32(8),
    ggufString(architecture),
    ggufString("tokenizer.ggml.tokens"),
    u32(9),
    u32(8),
    u64(2),
    ggufString("a"),
    ggufString("bc"),
    ggufString("weight"),
    u32(1),
    u64(values.length),
    u32(0),
    u64(0),
  ]);
  const headerLength = Math.ceil(header.length / 32) * 32;
  const data = Buffer.alloc(values.length * 4);
  for (const [index, value] of values.entries()) data.writeFloatLE(value, index * 4);
  return { bytes: Buffer.concat([header, Buffer.alloc(headerLength - header.length), data]), headerLength };
}

let directory: string;
beforeAll(async () => {
  directory = await mkdtemp(path.join(tmpdir(), "routelmt-gguf-"));
});
afterAll(async () => {
  await rm(directory, { recursive: true, force: true });
});

describe("readGgufHeader", () => {
  it("parses metadata, tensor table and the aligned data offset", async () => {
    const file = path.join(directory, "one.gguf");
    const { bytes, headerLength } = tinyGguf("llama", [1, 2, 3]);
    await writeFile(file, bytes);
    const header = await readGgufHeader(file);
    expect(header.version).toBe(3);
    expect(header.metadata.get("general.architecture")).toBe("llama");
    expect(header.metadata.get("tokenizer.ggml.tokens")).toEqual({ arrayLength: 2 });
    expect(header.tensors).toEqual([{ name: "weight", dims: [3], type: 0, offset: 0 }]);
    expect(header.dataOffset).toBe(headerLength);
    expect(header.fileSize).toBe(bytes.length);
  });

  it("rejects non-GGUF and truncated files", async () => {
    const notGguf = path.join(directory, "not.gguf");
    await writeFile(notGguf, "hello world");
    await expect(readGgufHeader(notGguf)).rejects.toThrow(/no GGUF magic/);
    const truncated = path.join(directory, "truncated.gguf");
    await writeFile(truncated, tinyGguf("llama", [1]).bytes.subarray(0, 40));
    await expect(readGgufHeader(truncated)).rejects.toThrow(InputError);
    await expect(readGgufHeader(path.join(directory, "absent.gguf"))).rejects.toThrow(InputError);
    // A directory named like a model: one clear error naming it, not a read error without a path.
    const folder = path.join(directory, "folder.gguf");
    await mkdir(folder);
    await expect(readGgufHeader(folder)).rejects.toThrow(
      /folder\.gguf: not a GGUF file \(not a regular file\)/,
    );
  });
});

describe("ggufFingerprint", () => {
  it("is sha256 over the header bytes followed by the file size", async () => {
    const file = path.join(directory, "hash.gguf");
    const { bytes, headerLength } = tinyGguf("llama", [1, 2, 3]);
    await writeFile(file, bytes);
    const expected = createHash("sha256")
      .update(bytes.subarray(0, headerLength))
      .update(`\nsize=${bytes.length}`)
      .digest("hex");
    expect(await ggufFingerprint(file)).toBe(`sha256:${expected}`);
  });

  it("changes with metadata and with file size", async () => {
    const files = ["a.gguf", "b.gguf", "c.gguf"].map((name) => path.join(directory, name));
    await writeFile(files[0] ?? "", tinyGguf("llama", [1, 2, 3]).bytes);
    await writeFile(files[1] ?? "", tinyGguf("qwen2", [1, 2, 3]).bytes);
    await writeFile(files[2] ?? "", Buffer.concat([tinyGguf("llama", [1, 2, 3]).bytes, Buffer.alloc(4)]));
    const prints = await Promise.all(files.map((file) => ggufFingerprint(file)));
    expect(new Set(prints).size).toBe(3);
  });

  const hasTinymt = hasShared(["models", "tinymt-small.gguf"]);
  it.skipIf(!hasTinymt)(
    hasTinymt
      ? "agrees with node-llama-cpp on where tinymt-small's tensor data starts"
      : sharedSkipReason("the tinymt-small header check"),
    async () => {
      const file = sharedPath("models", "tinymt-small.gguf");
      const header = await readGgufHeader(file);
      const info = await readGgufFileInfo(file);
      const firstDataOffset = Math.min(...(info.tensorInfo ?? []).map((tensor) => Number(tensor.fileOffset)));
      expect(header.dataOffset).toBe(firstDataOffset);
      expect(header.tensors.map((tensor) => tensor.name)).toEqual(
        (info.tensorInfo ?? []).map((tensor) => tensor.name),
      );
      const bytes = await readFile(file);
      const expected = createHash("sha256")
        .update(bytes.subarray(0, header.dataOffset))
        .update(`\nsize=${bytes.length}`)
        .digest("hex");
      expect(await ggufFingerprint(file)).toBe(`sha256:${expected}`);
    },
  );
});
