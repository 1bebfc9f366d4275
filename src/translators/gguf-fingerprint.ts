import { createHash } from "node:crypto";
import { open } from "node:fs/promises";
import { InputError } from "../errors/index.js";

/** One tensor's entry in a GGUF header. `offset` is relative to the start of the tensor data. */
export interface GgufTensorEntry {
  name: string;
  /** Dimensions as stored: innermost (contiguous) first. */
  dims: number[];
  /** GGML type id (0 = f32, 1 = f16, ...). */
  type: number;
  offset: number;
}

/** What lies before a GGUF file's tensor data. Arrays in `metadata` are summarised by length. */
export interface GgufHeader {
  version: number;
  metadata: Map<string, string | number | bigint | boolean | { arrayLength: number }>;
  tensors: GgufTensorEntry[];
  /** Byte offset where tensor data starts (after alignment padding): the header's size. */
  dataOffset: number;
  fileSize: number;
}

/** Thrown inside the parser when the buffer ends before the header does; the caller reads more. */
class NeedMoreBytes extends Error {}

const scalarSizes: Readonly<Record<number, number>> = {
  0: 1,
  1: 1,
  2: 2,
  3: 2,
  4: 4,
  5: 4,
  6: 4,
  7: 1,
  10: 8,
  11: 8,
  12: 8,
};
const stringType = 8;
const arrayType = 9;
const defaultAlignment = 32;

class HeaderCursor {
  position = 0;
  constructor(
    private readonly bytes: Buffer,
    private readonly isComplete: boolean,
  ) {}

  private need(count: number): void {
    if (this.position + count > this.bytes.length) {
      if (this.isComplete) throw new RangeError("GGUF header runs past the end of the file");
      throw new NeedMoreBytes();
    }
  }
  u32(): number {
    this.need(4);
    const value = this.bytes.readUInt32LE(this.position);
    this.position += 4;
    return value;
  }
  u64(): number {
    this.need(8);
    const value = this.bytes.readBigUInt64LE(this.position);
    this.position += 8;
    if (value > BigInt(Number.MAX_SAFE_INTEGER))
      throw new RangeError(`GGUF count or offset too large: ${value}`);
    return Number(value);
  }
  string(): string {
    const length = this.u64();
    this.need(length);
    const value = this.bytes.toString("utf8", this.position, this.position + length);
    this.position += length;
    return value;
  }
  scalar(type: number): string | number | bigint | boolean {
    if (type === stringType) return this.string();
    const size = scalarSizes[type];
    if (size === undefined) throw new RangeError(`unknown GGUF value type ${type}`);
    this.need(size);
    const at = this.position;
    this.position += size;
    switch (type) {
      case 0:
        return this.bytes.readUInt8(at);
      case 1:
        return this.bytes.readInt8(at);
      case 2:
        return this.bytes.readUInt16LE(at);
      case 3:
        return this.bytes.readInt16LE(at);
      case 4:
        return this.bytes.readUInt32LE(at);
      case 5:
        return this.bytes.readInt32LE(at);
      case 6:
        return this.bytes.readFloatLE(at);
      case 7:
        return this.bytes.readUInt8(at) !== 0;
      case 10:
        return this.bytes.readBigUInt64LE(at);
      case 11:
        return this.bytes.readBigInt64LE(at);
      default:
        return this.bytes.readDoubleLE(at);
    }
  }
  skipArray(): number {
    const elementType = this.u32();
    const length = this.u64();
    if (elementType === stringType || elementType === arrayType) {
      for (let index = 0; index < length; index++) {
        if (elementType === stringType) this.string();
        else this.skipArray();
      }
    } else {
      const size = scalarSizes[elementType];
      if (size === undefined) throw new RangeError(`unknown GGUF array element type ${elementType}`);
      this.need(size * length);
      this.position += size * length;
    }
    return length;
  }
}

function parseHeader(bytes: Buffer, isComplete: boolean, fileSize: number): GgufHeader {
  const cursor = new HeaderCursor(bytes, isComplete);
  cursor.u32(); // magic, checked by the caller
  const version = cursor.u32();
  if (version < 2) throw new RangeError(`GGUF version ${version} is not supported (need 2 or 3)`);
  const tensorCount = cursor.u64();
  const metadataCount = cursor.u64();
  const metadata: GgufHeader["metadata"] = new Map();
  for (let index = 0; index < metadataCount; index++) {
    const key = cursor.string();
    const type = cursor.u32();
    metadata.set(key, type === arrayType ? { arrayLength: cursor.skipArray() } : cursor.scalar(type));
  }
  const tensors: GgufTensorEntry[] = [];
  for (let index = 0; index < tensorCount; index++) {
    const name = cursor.string();
    const dimensionCount = cursor.u32();
    const dims: number[] = [];
    for (let dimension = 0; dimension < dimensionCount; dimension++) dims.push(cursor.u64());
    tensors.push({ name, dims, type: cursor.u32(), offset: cursor.u64() });
  }
  const alignmentValue = metadata.get("general.alignment");
  const alignment =
    typeof alignmentValue === "number" && alignmentValue > 0 ? alignmentValue : defaultAlignment;
  const dataOffset = Math.ceil(cursor.position / alignment) * alignment;
  if (dataOffset > fileSize) throw new RangeError("GGUF header is longer than the file");
  return { version, metadata, tensors, dataOffset, fileSize };
}

/**
 * Reads and parses the header of a GGUF file (v2/v3): metadata, tensor table, data offset.
 * Reads the file in growing chunks, so a multi-GB model costs only its header.
 * @throws InputError when the file is missing, not GGUF, or truncated.
 */
export async function readGgufHeader(file: string): Promise<GgufHeader> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(file, "r");
  } catch (error) {
    throw new InputError(`cannot open GGUF file: ${(error as Error).message}`, { file }, { cause: error });
  }
  try {
    const stats = await handle.stat();
    // A directory opens fine on Linux; only reading it fails, with an error that names no path.
    if (!stats.isFile()) throw new InputError("not a GGUF file (not a regular file)", { file });
    const fileSize = stats.size;
    let chunkSize = 1 << 20;
    for (;;) {
      const length = Math.min(chunkSize, fileSize);
      const bytes = Buffer.alloc(length);
      const { bytesRead } = await handle.read(bytes, 0, length, 0);
      if (bytesRead < 4 || bytes.toString("latin1", 0, 4) !== "GGUF") {
        throw new InputError("not a GGUF file (no GGUF magic)", { file });
      }
      try {
        return parseHeader(bytes.subarray(0, bytesRead), bytesRead >= fileSize, fileSize);
      } catch (error) {
        if (error instanceof NeedMoreBytes) {
          chunkSize *= 4;
          continue;
        }
        throw new InputError(
          `malformed GGUF header: ${(error as Error).message}`,
          { file },
          { cause: error },
        );
      }
    }
  } finally {
    await handle.close();
  }
}

/**
 * Fingerprint of a GGUF model file: `sha256:<hex>` over the header bytes (magic, version, metadata,
 * tensor table with offsets, alignment padding) followed by the file size as a decimal string.
 * Cheap even for large models, and any change of metadata, tokenizer, shapes, types or layout
 * changes it. Weights edited in place without any header change are not detected.
 */
export async function ggufFingerprint(file: string): Promise<string> {
  const header = await readGgufHeader(file);
  const handle = await open(file, "r");
  try {
    const bytes = Buffer.alloc(header.dataOffset);
    await handle.read(bytes, 0, header.dataOffset, 0);
    const hash = createHash("sha256").update(bytes).update(`\nsize=${header.fileSize}`);
    return `sha256:${hash.digest("hex")}`;
  } finally {
    await handle.close();
  }
}
