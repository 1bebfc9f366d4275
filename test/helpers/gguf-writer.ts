/**
 * A minimal GGUF v3 writer for test fixtures: typed metadata (scalars and arrays) and F32/F16 tensors.
 *
 * Layout (little-endian), as in ggml's docs/gguf.md: magic `GGUF`, uint32 version, uint64 tensor count,
 * uint64 KV count; KV pairs (string key, uint32 value type, value); tensor infos (string name, uint32
 * n_dims, uint64 dims with ne[0] first, uint32 ggml type, uint64 offset relative to the data section);
 * zero padding to `general.alignment`; tensor data, each tensor starting at an aligned offset.
 */
import { closeSync, openSync, writeSync } from "node:fs";

/** GGUF metadata value type codes (gguf.md `gguf_metadata_value_type`). */
export const GGUF_VALUE_TYPE = {
  uint8: 0,
  int8: 1,
  uint16: 2,
  int16: 3,
  uint32: 4,
  int32: 5,
  float32: 6,
  bool: 7,
  string: 8,
  array: 9,
  uint64: 10,
  int64: 11,
  float64: 12,
} as const;

/** ggml tensor type codes this writer supports. */
export const GGML_TYPE = { F32: 0, F16: 1 } as const;

/** Alignment ggml uses when `general.alignment` is absent; this writer always writes the key. */
export const GGUF_DEFAULT_ALIGNMENT = 32;

type NumericValueType = "uint8" | "int8" | "uint16" | "int16" | "uint32" | "int32" | "float32" | "float64";

/** One typed metadata value. 64-bit integers take a bigint or a safe integer number. */
export type GgufMetadataValue =
  | { type: NumericValueType; value: number }
  | { type: "uint64" | "int64"; value: number | bigint }
  | { type: "bool"; value: boolean }
  | { type: "string"; value: string }
  | { type: "array"; itemType: "string"; items: readonly string[] }
  | { type: "array"; itemType: "bool"; items: readonly boolean[] }
  | { type: "array"; itemType: NumericValueType; items: ArrayLike<number> };

/** Tensor element types this writer can store. */
export type GgufTensorType = keyof typeof GGML_TYPE;

/** One tensor to write. */
export interface GgufTensor {
  name: string;
  /** ggml order: `dimensions[0]` (ne[0]) varies fastest. A `[out, in]` row-major matrix is `[in, out]`. */
  dimensions: readonly number[];
  type: GgufTensorType;
  /**
   * Values in memory order (length = product of dimensions), or a function producing them when the
   * tensor is written, so a large model never holds every tensor at once.
   */
  data: Float32Array | (() => Float32Array);
}

/** What {@link writeGguf} wrote. */
export interface GgufWriteSummary {
  bytes: number;
  /** Byte offset of the tensor data section in the file. */
  dataOffset: number;
  parameterCount: number;
}

/** Typed-value constructors, so call sites read like the metadata they describe. */
export const gguf = {
  u32: (value: number): GgufMetadataValue => ({ type: "uint32", value }),
  i32: (value: number): GgufMetadataValue => ({ type: "int32", value }),
  f32: (value: number): GgufMetadataValue => ({ type: "float32", value }),
  bool: (value: boolean): GgufMetadataValue => ({ type: "bool", value }),
  str: (value: string): GgufMetadataValue => ({ type: "string", value }),
  strings: (items: readonly string[]): GgufMetadataValue => ({ type: "array", itemType: "string", items }),
  f32s: (items: ArrayLike<number>): GgufMetadataValue => ({ type: "array", itemType: "float32", items }),
  i32s: (items: ArrayLike<number>): GgufMetadataValue => ({ type: "array", itemType: "int32", items }),
};

const float32Scratch = new Float32Array(1);
const uint32Scratch = new Uint32Array(float32Scratch.buffer);

/**
 * IEEE-754 binary16 bits of a number, rounded to nearest, ties to even (as ggml's
 * `GGML_FP32_TO_FP16` does). Overflow gives ±Inf; NaN stays NaN.
 */
export function float32ToFloat16Bits(value: number): number {
  float32Scratch[0] = value;
  const bits = uint32Scratch[0]!;
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  const mantissa = bits & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa !== 0 ? 0x200 : 0);
  const halfExponent = exponent - 127 + 15;
  if (halfExponent >= 0x1f) return sign | 0x7c00;
  if (halfExponent <= 0) {
    // Subnormal half: the value is mantissaWithHiddenBit * 2^(exponent-150), the half unit is 2^-24.
    if (halfExponent < -10) return sign;
    const full = mantissa | 0x800000;
    const shift = 14 - halfExponent;
    return sign | roundShiftRightToEven(full, shift);
  }
  // A carry out of the mantissa correctly bumps the exponent (and reaches Inf at the top).
  const kept = mantissa >>> 13;
  const remainder = mantissa & 0x1fff;
  const roundUp = remainder > 0x1000 || (remainder === 0x1000 && (kept & 1) === 1) ? 1 : 0;
  return sign | ((halfExponent << 10) + kept + roundUp);
}

function roundShiftRightToEven(value: number, shift: number): number {
  const kept = Math.floor(value / 2 ** shift);
  const remainder = value - kept * 2 ** shift;
  const half = 2 ** (shift - 1);
  if (remainder > half || (remainder === half && kept % 2 === 1)) return kept + 1;
  return kept;
}

/** The number an IEEE-754 binary16 bit pattern stands for. */
export function float16BitsToFloat32(halfBits: number): number {
  const sign = halfBits & 0x8000 ? -1 : 1;
  const exponent = (halfBits >>> 10) & 0x1f;
  const mantissa = halfBits & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa === 0 ? sign * Number.POSITIVE_INFINITY : Number.NaN;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

/** Rounds a value to the nearest binary16 value (what storing it as F16 keeps). */
export function roundToFloat16(value: number): number {
  return float16BitsToFloat32(float32ToFloat16Bits(value));
}

/** Growable little-endian byte sink for the header part of the file. */
class ByteSink {
  private buffer = Buffer.alloc(1 << 16);
  length = 0;

  private reserve(bytes: number): void {
    if (this.length + bytes <= this.buffer.length) return;
    let size = this.buffer.length * 2;
    while (size < this.length + bytes) size *= 2;
    const grown = Buffer.alloc(size);
    this.buffer.copy(grown, 0, 0, this.length);
    this.buffer = grown;
  }

  u8(value: number): void {
    this.reserve(1);
    this.buffer.writeUInt8(value, this.length);
    this.length += 1;
  }
  i8(value: number): void {
    this.reserve(1);
    this.buffer.writeInt8(value, this.length);
    this.length += 1;
  }
  u16(value: number): void {
    this.reserve(2);
    this.buffer.writeUInt16LE(value, this.length);
    this.length += 2;
  }
  i16(value: number): void {
    this.reserve(2);
    this.buffer.writeInt16LE(value, this.length);
    this.length += 2;
  }
  u32(value: number): void {
    this.reserve(4);
    this.buffer.writeUInt32LE(value, this.length);
    this.length += 4;
  }
  i32(value: number): void {
    this.reserve(4);
    this.buffer.writeInt32LE(value, this.length);
    this.length += 4;
  }
  f32(value: number): void {
    this.reserve(4);
    this.buffer.writeFloatLE(value, this.length);
    this.length += 4;
  }
  f64(value: number): void {
    this.reserve(8);
    this.buffer.writeDoubleLE(value, this.length);
    this.length += 8;
  }
  u64(value: number | bigint): void {
    this.reserve(8);
    this.buffer.writeBigUInt64LE(BigInt(value), this.length);
    this.length += 8;
  }
  i64(value: number | bigint): void {
    this.reserve(8);
    this.buffer.writeBigInt64LE(BigInt(value), this.length);
    this.length += 8;
  }
  string(value: string): void {
    const bytes = Buffer.from(value, "utf8");
    this.u64(bytes.length);
    this.reserve(bytes.length);
    bytes.copy(this.buffer, this.length);
    this.length += bytes.length;
  }
  zeros(count: number): void {
    this.reserve(count);
    this.buffer.fill(0, this.length, this.length + count);
    this.length += count;
  }
  bytes(): Buffer {
    return this.buffer.subarray(0, this.length);
  }
}

function writeNumber(sink: ByteSink, type: NumericValueType, value: number): void {
  switch (type) {
    case "uint8":
      sink.u8(value);
      return;
    case "int8":
      sink.i8(value);
      return;
    case "uint16":
      sink.u16(value);
      return;
    case "int16":
      sink.i16(value);
      return;
    case "uint32":
      sink.u32(value);
      return;
    case "int32":
      sink.i32(value);
      return;
    case "float32":
      sink.f32(value);
      return;
    case "float64":
      sink.f64(value);
      return;
  }
}

function writeValue(sink: ByteSink, value: GgufMetadataValue): void {
  sink.u32(GGUF_VALUE_TYPE[value.type]);
  switch (value.type) {
    case "string":
      sink.string(value.value);
      return;
    case "bool":
      sink.u8(value.value ? 1 : 0);
      return;
    case "uint64":
      sink.u64(value.value);
      return;
    case "int64":
      sink.i64(value.value);
      return;
    case "array": {
      sink.u32(GGUF_VALUE_TYPE[value.itemType]);
      sink.u64(value.items.length);
      if (value.itemType === "string") for (const item of value.items) sink.string(item);
      else if (value.itemType === "bool") for (const item of value.items) sink.u8(item ? 1 : 0);
      else for (let i = 0; i < value.items.length; i++) writeNumber(sink, value.itemType, value.items[i]!);
      return;
    }
    default:
      writeNumber(sink, value.type, value.value);
      return;
  }
}

function alignUp(offset: number, alignment: number): number {
  return Math.ceil(offset / alignment) * alignment;
}

function elementCount(dimensions: readonly number[]): number {
  return dimensions.reduce((product, size) => product * size, 1);
}

const BYTES_PER_ELEMENT: Record<GgufTensorType, number> = { F32: 4, F16: 2 };

function encodeTensorData(tensor: GgufTensor, values: Float32Array): Buffer {
  if (tensor.type === "F32") return Buffer.from(values.buffer, values.byteOffset, values.byteLength);
  const halves = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) halves[i] = float32ToFloat16Bits(values[i]!);
  return Buffer.from(halves.buffer, halves.byteOffset, halves.byteLength);
}

/**
 * Writes a GGUF v3 file. Metadata keys are written in insertion order; `general.alignment` is added
 * (as uint32 32) when absent, and when present must be a uint32 power of two.
 * Tensors are written in the given order, each starting on an aligned offset.
 */
export function writeGguf(
  filePath: string,
  metadata: ReadonlyMap<string, GgufMetadataValue> | Readonly<Record<string, GgufMetadataValue>>,
  tensors: readonly GgufTensor[],
): GgufWriteSummary {
  const entries = new Map(metadata instanceof Map ? metadata : Object.entries(metadata));
  const alignmentValue = entries.get("general.alignment");
  if (alignmentValue === undefined) entries.set("general.alignment", gguf.u32(GGUF_DEFAULT_ALIGNMENT));
  else if (alignmentValue.type !== "uint32") throw new Error("general.alignment must be a uint32");
  const alignment = alignmentValue?.type === "uint32" ? alignmentValue.value : GGUF_DEFAULT_ALIGNMENT;
  if (!Number.isInteger(alignment) || alignment <= 0 || (alignment & (alignment - 1)) !== 0) {
    throw new Error(`general.alignment must be a power of two, got ${alignment}`);
  }
  const names = new Set<string>();
  for (const tensor of tensors) {
    if (names.has(tensor.name)) throw new Error(`duplicate tensor name ${tensor.name}`);
    names.add(tensor.name);
  }

  const header = new ByteSink();
  header.u8(0x47); // "GGUF"
  header.u8(0x47);
  header.u8(0x55);
  header.u8(0x46);
  header.u32(3);
  header.u64(tensors.length);
  header.u64(entries.size);
  for (const [key, value] of entries) {
    header.string(key);
    writeValue(header, value);
  }

  const offsets: number[] = [];
  let dataSize = 0;
  let parameterCount = 0;
  for (const tensor of tensors) {
    const count = elementCount(tensor.dimensions);
    parameterCount += count;
    dataSize = alignUp(dataSize, alignment);
    offsets.push(dataSize);
    dataSize += count * BYTES_PER_ELEMENT[tensor.type];
    header.string(tensor.name);
    header.u32(tensor.dimensions.length);
    for (const size of tensor.dimensions) header.u64(size);
    header.u32(GGML_TYPE[tensor.type]);
    header.u64(offsets[offsets.length - 1]!);
  }
  const dataOffset = alignUp(header.length, alignment);
  header.zeros(dataOffset - header.length);

  const fd = openSync(filePath, "w");
  try {
    writeSync(fd, header.bytes());
    let position = 0;
    for (const [index, tensor] of tensors.entries()) {
      const padding = offsets[index]! - position;
      if (padding > 0) writeSync(fd, Buffer.alloc(padding));
      const values = typeof tensor.data === "function" ? tensor.data() : tensor.data;
      const expected = elementCount(tensor.dimensions);
      if (values.length !== expected) {
        throw new Error(
          `tensor ${tensor.name}: ${values.length} values for dimensions [${tensor.dimensions}]`,
        );
      }
      const bytes = encodeTensorData(tensor, values);
      writeSync(fd, bytes);
      position = offsets[index]! + bytes.length;
    }
    // Pad the file end too, as gguf_write does, so every tensor's padded extent lies inside the file.
    const tail = alignUp(position, alignment) - position;
    if (tail > 0) writeSync(fd, Buffer.alloc(tail));
    return { bytes: dataOffset + alignUp(position, alignment), dataOffset, parameterCount };
  } finally {
    closeSync(fd);
  }
}
