import { gunzipSync } from "node:zlib";
import { InputError } from "../errors/index.js";

/**
 * Reads the regular files of a (gzipped) ustar/GNU tar archive whose paths pass `wanted`. Archives
 * this tool downloads are tens of megabytes, so the whole archive is held in memory.
 */
export function extractTarFiles(
  archive: Uint8Array,
  wanted: (path: string) => boolean,
  source = "archive",
): Map<string, Buffer> {
  const bytes = archive[0] === 0x1f && archive[1] === 0x8b ? gunzipSync(archive) : Buffer.from(archive);
  const files = new Map<string, Buffer>();
  let offset = 0;
  let longName: string | undefined;
  while (offset + 512 <= bytes.length) {
    const header = bytes.subarray(offset, offset + 512);
    if (header.every((byte) => byte === 0)) break;
    const name = longName ?? joinName(field(header, 345, 155), field(header, 0, 100));
    longName = undefined;
    const size = Number.parseInt(field(header, 124, 12).trim() || "0", 8);
    if (!Number.isFinite(size) || size < 0)
      throw new InputError(`corrupt tar header at byte ${offset}`, { file: source });
    const type = String.fromCharCode(header[156] ?? 0x30);
    const dataStart = offset + 512;
    const data = bytes.subarray(dataStart, dataStart + size);
    if (data.length !== size) throw new InputError(`truncated tar entry ${name}`, { file: source });
    if (type === "L") longName = data.toString("utf8").replace(/\0+$/, "");
    else if ((type === "0" || type === "\0") && wanted(name)) files.set(name, Buffer.from(data));
    offset = dataStart + Math.ceil(size / 512) * 512;
  }
  return files;
}

function field(header: Uint8Array, start: number, length: number): string {
  const slice = header.subarray(start, start + length);
  const end = slice.indexOf(0);
  return Buffer.from(end === -1 ? slice : slice.subarray(0, end)).toString("utf8");
}

function joinName(prefix: string, name: string): string {
  return prefix ? `${prefix}/${name}` : name;
}
