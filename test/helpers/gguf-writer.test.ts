import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { readGgufFileInfo } from "node-llama-cpp";
import { afterAll, describe, expect, it } from "vitest";
import { readGguf } from "./gguf-reader.js";
import {
  float16BitsToFloat32,
  float32ToFloat16Bits,
  type GgufMetadataValue,
  gguf,
  roundToFloat16,
  writeGguf,
} from "./gguf-writer.js";

const directory = mkdtempSync(path.join(os.tmpdir(), "routelmt-gguf-writer-"));
afterAll(() => rmSync(directory, { recursive: true, force: true }));

describe("float32ToFloat16Bits", () => {
  it.each([
    [1, 0x3c00],
    [-2, 0xc000],
    [0.5, 0x3800],
    [0.1, 0x2e66],
    [1 / 3, 0x3555],
    [-0, 0x8000],
    [65504, 0x7bff],
    [65519, 0x7bff],
    [65520, 0x7c00], // halfway between the largest half and 2^16: ties to even = Inf
    [Number.POSITIVE_INFINITY, 0x7c00],
    [Number.NEGATIVE_INFINITY, 0xfc00],
    [2 ** -14, 0x0400], // smallest normal
    [2 ** -14 - 2 ** -25, 0x0400], // subnormal tie rounds to even, carrying into the exponent
    [2 ** -24, 0x0001], // smallest subnormal
    [2 ** -25, 0x0000], // tie between 0 and 2^-24: even is 0
    [1.5 * 2 ** -25, 0x0001],
    [1 + 2 ** -11, 0x3c00], // tie: 0x3c00 is even
    [1 + 3 * 2 ** -11, 0x3c02], // tie: 0x3c02 is even
    [1 + 2 ** -11 + 2 ** -20, 0x3c01], // just above the tie
  ])("encodes %d as 0x%s", (value, bits) => {
    expect(float32ToFloat16Bits(value)).toBe(bits);
  });

  it("keeps NaN a NaN", () => {
    expect(Number.isNaN(float16BitsToFloat32(float32ToFloat16Bits(Number.NaN)))).toBe(true);
  });

  it("round-trips every finite and infinite half value", () => {
    const mismatches: number[] = [];
    let checked = 0;
    for (let bits = 0; bits < 0x10000; bits++) {
      const exponent = (bits >>> 10) & 0x1f;
      if (exponent === 0x1f && (bits & 0x3ff) !== 0) continue; // NaN payloads
      checked++;
      if (float32ToFloat16Bits(float16BitsToFloat32(bits)) !== bits) mismatches.push(bits);
    }
    expect(checked).toBe(0x10000 - 2 * 1023);
    expect(mismatches).toEqual([]);
  });

  it("decodes by the IEEE formula", () => {
    expect(float16BitsToFloat32(0x3c00)).toBe(1);
    expect(float16BitsToFloat32(0x0001)).toBe(2 ** -24);
    expect(float16BitsToFloat32(0xfbff)).toBe(-65504);
    expect(roundToFloat16(0.1)).toBe(0.0999755859375);
  });
});

describe("writeGguf", () => {
  const metadata = new Map<string, GgufMetadataValue>([
    ["general.architecture", gguf.str("test")],
    ["test.u8", { type: "uint8", value: 250 }],
    ["test.i8", { type: "int8", value: -7 }],
    ["test.u16", { type: "uint16", value: 65000 }],
    ["test.i16", { type: "int16", value: -300 }],
    ["test.u32", gguf.u32(4_000_000_000)],
    ["test.i32", gguf.i32(-5)],
    ["test.f32", gguf.f32(0.25)],
    ["test.f64", { type: "float64", value: 1 / 3 }],
    ["test.u64", { type: "uint64", value: 2n ** 40n }],
    ["test.i64", { type: "int64", value: -(2n ** 40n) }],
    ["test.bool", gguf.bool(true)],
    ["test.text", gguf.str("ünïcödé ▁piece")],
    ["test.strings", gguf.strings(["<s>", "▁the", ""])],
    ["test.f32s", gguf.f32s([0, -1.5, 2])],
    ["test.i32s", gguf.i32s(Int32Array.from([6, -1]))],
    ["test.bools", { type: "array", itemType: "bool", items: [true, false] }],
  ]);
  const vector = Float32Array.from([1, 2, 3]);
  const matrix = Float32Array.from({ length: 10 }, (_, i) => i / 8 - 0.5);

  it("writes a file both readers parse back to the same metadata and values", async () => {
    const filePath = path.join(directory, "all-types.gguf");
    let matrixCalls = 0;
    const summary = writeGguf(filePath, metadata, [
      { name: "vector", dimensions: [3], type: "F32", data: vector },
      {
        name: "matrix",
        dimensions: [5, 2],
        type: "F16",
        data: () => {
          matrixCalls++;
          return matrix;
        },
      },
    ]);
    expect(matrixCalls).toBe(1);
    expect(summary.parameterCount).toBe(13);
    const bytes = readFileSync(filePath);
    expect(bytes.length).toBe(summary.bytes);
    expect(bytes.subarray(0, 4).toString("latin1")).toBe("GGUF");
    expect(bytes.readUInt32LE(4)).toBe(3);
    expect(bytes.readBigUInt64LE(8)).toBe(2n);
    expect(bytes.readBigUInt64LE(16)).toBe(BigInt(metadata.size + 1)); // + general.alignment
    expect(summary.dataOffset % 32).toBe(0);
    expect(bytes.length % 32).toBe(0);

    const parsed = readGguf(filePath);
    expect(parsed.metadata.get("general.alignment")).toBe(32);
    expect(parsed.metadata.get("test.u8")).toBe(250);
    expect(parsed.metadata.get("test.i8")).toBe(-7);
    expect(parsed.metadata.get("test.u16")).toBe(65000);
    expect(parsed.metadata.get("test.i16")).toBe(-300);
    expect(parsed.metadata.get("test.u32")).toBe(4_000_000_000);
    expect(parsed.metadata.get("test.i32")).toBe(-5);
    expect(parsed.metadata.get("test.f32")).toBe(0.25);
    expect(parsed.metadata.get("test.f64")).toBe(1 / 3);
    expect(parsed.metadata.get("test.u64")).toBe(2n ** 40n);
    expect(parsed.metadata.get("test.i64")).toBe(-(2n ** 40n));
    expect(parsed.metadata.get("test.bool")).toBe(true);
    expect(parsed.metadata.get("test.text")).toBe("ünïcödé ▁piece");
    expect(parsed.metadata.get("test.strings")).toEqual(["<s>", "▁the", ""]);
    expect(parsed.metadata.get("test.f32s")).toEqual([0, -1.5, 2]);
    expect(parsed.metadata.get("test.i32s")).toEqual([6, -1]);
    expect(parsed.metadata.get("test.bools")).toEqual([true, false]);
    expect(parsed.tensors.get("vector")).toMatchObject({ dimensions: [3], type: 0, data: vector });
    // The values are multiples of 1/8 in [-0.5, 0.625]: exact in f16.
    expect(parsed.tensors.get("matrix")).toMatchObject({ dimensions: [5, 2], type: 1, data: matrix });

    const info = await readGgufFileInfo(filePath, { readTensorInfo: true });
    expect(info.version).toBe(3);
    const flat = info.metadata as unknown as { test: Record<string, unknown> };
    expect(flat.test.strings).toEqual(["<s>", "▁the", ""]);
    expect(flat.test.u32).toBe(4_000_000_000);
    expect(info.tensorInfo?.map((tensor) => [tensor.name, tensor.dimensions, tensor.ggmlType])).toEqual([
      ["vector", [3], 0],
      ["matrix", [5, 2], 1],
    ]);
    // A 3-element F32 tensor is 12 bytes: the next one starts at the next multiple of 32.
    expect(info.tensorInfo?.map((tensor) => Number(tensor.offset))).toEqual([0, 32]);
  });

  it("honours a custom alignment", () => {
    const filePath = path.join(directory, "aligned-64.gguf");
    const summary = writeGguf(filePath, { "general.alignment": gguf.u32(64) }, [
      { name: "a", dimensions: [3], type: "F32", data: vector },
      { name: "b", dimensions: [3], type: "F16", data: vector },
    ]);
    expect(summary.dataOffset % 64).toBe(0);
    const parsed = readGguf(filePath);
    expect(parsed.tensors.get("b")?.data).toEqual(vector);
    expect(readFileSync(filePath).readUInt16LE(summary.dataOffset + 64)).toBe(0x3c00);
  });

  it("refuses malformed input", () => {
    const filePath = path.join(directory, "bad.gguf");
    const tensor = { name: "t", dimensions: [3], type: "F32" as const, data: vector };
    expect(() => writeGguf(filePath, {}, [tensor, tensor])).toThrow(/duplicate tensor name t/);
    expect(() => writeGguf(filePath, {}, [{ ...tensor, dimensions: [4] }])).toThrow(/3 values/);
    expect(() => writeGguf(filePath, { "general.alignment": gguf.u32(24) }, [tensor])).toThrow(
      /power of two/,
    );
    expect(() => writeGguf(filePath, { "general.alignment": gguf.i32(32) }, [tensor])).toThrow(/uint32/);
  });
});
