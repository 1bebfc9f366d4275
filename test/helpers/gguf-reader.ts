/**
 * A minimal GGUF v3 reader for test fixtures: all metadata plus F32/F16 tensors (F16 widened to
 * float32). Independent of node-llama-cpp's parser, so the reference forward pass reads exactly the
 * bytes llama.cpp reads.
 */
import { readFileSync } from "node:fs";
import { float16BitsToFloat32, GGML_TYPE, GGUF_DEFAULT_ALIGNMENT, GGUF_VALUE_TYPE } from "./gguf-writer.js";

/** A metadata value as read: numbers (64-bit integers as bigint), booleans, strings or arrays of them. */
export type GgufReadValue = number | bigint | boolean | string | GgufReadValue[];

/** One tensor as read, values widened to float32 in ggml memory order. */
export interface GgufReadTensor {
  name: string;
  /** ggml order, ne[0] first. */
  dimensions: number[];
  /** ggml type code as stored (0 = F32, 1 = F16). */
  type: number;
  data: Float32Array;
}

/** A parsed GGUF file. */
export interface ParsedGguf {
  version: number;
  metadata: Map<string, GgufReadValue>;
  tensors: Map<string, GgufReadTensor>;
}

class ByteReader {
  offset = 0;
  constructor(private readonly buffer: Buffer) {}

  u8(): number {
    return this.advance(1, this.buffer.readUInt8(this.offset));
  }
  u32(): number {
    return this.advance(4, this.buffer.readUInt32LE(this.offset));
  }
  u64(): bigint {
    return this.advance(8, this.buffer.readBigUInt64LE(this.offset));
  }
  /** A uint64 that must fit a JS number (counts, lengths, offsets). */
  size(): number {
    const value = this.u64();
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`size ${value} too large`);
    return Number(value);
  }
  string(): string {
    const length = this.size();
    const text = this.buffer.toString("utf8", this.offset, this.offset + length);
    this.offset += length;
    return text;
  }
  value(type: number): GgufReadValue {
    const at = this.offset;
    switch (type) {
      case GGUF_VALUE_TYPE.uint8:
        return this.u8();
      case GGUF_VALUE_TYPE.int8:
        return this.advance(1, this.buffer.readInt8(at));
      case GGUF_VALUE_TYPE.uint16:
        return this.advance(2, this.buffer.readUInt16LE(at));
      case GGUF_VALUE_TYPE.int16:
        return this.advance(2, this.buffer.readInt16LE(at));
      case GGUF_VALUE_TYPE.uint32:
        return this.u32();
      case GGUF_VALUE_TYPE.int32:
        return this.advance(4, this.buffer.readInt32LE(at));
      case GGUF_VALUE_TYPE.float32:
        return this.advance(4, this.buffer.readFloatLE(at));
      case GGUF_VALUE_TYPE.bool:
        return this.u8() !== 0;
      case GGUF_VALUE_TYPE.string:
        return this.string();
      case GGUF_VALUE_TYPE.uint64:
        return this.u64();
      case GGUF_VALUE_TYPE.int64:
        return this.advance(8, this.buffer.readBigInt64LE(at));
      case GGUF_VALUE_TYPE.float64:
        return this.advance(8, this.buffer.readDoubleLE(at));
      case GGUF_VALUE_TYPE.array: {
        const itemType = this.u32();
        const count = this.size();
        const items: GgufReadValue[] = new Array(count);
        for (let i = 0; i < count; i++) items[i] = this.value(itemType);
        return items;
      }
      default:
        throw new Error(`unknown GGUF value type ${type} at byte ${at}`);
    }
  }
  private advance<T>(bytes: number, value: T): T {
    this.offset += bytes;
    return value;
  }
}

function decodeTensor(
  buffer: Buffer,
  start: number,
  type: number,
  count: number,
  name: string,
): Float32Array {
  const values = new Float32Array(count);
  if (type === GGML_TYPE.F32) {
    for (let i = 0; i < count; i++) values[i] = buffer.readFloatLE(start + 4 * i);
  } else if (type === GGML_TYPE.F16) {
    for (let i = 0; i < count; i++) values[i] = float16BitsToFloat32(buffer.readUInt16LE(start + 2 * i));
  } else {
    throw new Error(`tensor ${name}: ggml type ${type} is not supported by this reader (F32/F16 only)`);
  }
  return values;
}

/** Parses a GGUF v3 file with F32/F16 tensors. Throws on anything else. */
export function readGguf(filePath: string): ParsedGguf {
  const buffer = readFileSync(filePath);
  const reader = new ByteReader(buffer);
  const magic = buffer.toString("latin1", 0, 4);
  if (magic !== "GGUF") throw new Error(`${filePath}: not a GGUF file (magic ${JSON.stringify(magic)})`);
  reader.offset = 4;
  const version = reader.u32();
  if (version !== 3) throw new Error(`${filePath}: GGUF version ${version}, expected 3`);
  const tensorCount = reader.size();
  const kvCount = reader.size();
  const metadata = new Map<string, GgufReadValue>();
  for (let i = 0; i < kvCount; i++) {
    const key = reader.string();
    metadata.set(key, reader.value(reader.u32()));
  }
  const infos: { name: string; dimensions: number[]; type: number; offset: number }[] = [];
  for (let i = 0; i < tensorCount; i++) {
    const name = reader.string();
    const dimensionCount = reader.u32();
    const dimensions: number[] = [];
    for (let d = 0; d < dimensionCount; d++) dimensions.push(reader.size());
    const type = reader.u32();
    infos.push({ name, dimensions, type, offset: reader.size() });
  }
  const alignmentValue = metadata.get("general.alignment");
  const alignment = typeof alignmentValue === "number" ? alignmentValue : GGUF_DEFAULT_ALIGNMENT;
  const dataStart = Math.ceil(reader.offset / alignment) * alignment;
  const tensors = new Map<string, GgufReadTensor>();
  for (const info of infos) {
    if (info.offset % alignment !== 0)
      throw new Error(`tensor ${info.name}: offset ${info.offset} unaligned`);
    const count = info.dimensions.reduce((product, size) => product * size, 1);
    const data = decodeTensor(buffer, dataStart + info.offset, info.type, count, info.name);
    tensors.set(info.name, { ...info, data });
  }
  return { version, metadata, tensors };
}

/** A numeric metadata value, or an error naming the key. */
export function metadataNumber(parsed: ParsedGguf, key: string): number {
  const value = parsed.metadata.get(key);
  if (typeof value === "number") return value;
  if (typeof value === "bigint") return Number(value);
  throw new Error(`GGUF metadata ${key} is ${value === undefined ? "missing" : "not a number"}`);
}

/** A tensor by name, or an error naming it. */
export function tensorData(parsed: ParsedGguf, name: string): GgufReadTensor {
  const tensor = parsed.tensors.get(name);
  if (!tensor) throw new Error(`GGUF tensor ${name} is missing`);
  return tensor;
}
