import { existsSync } from "node:fs";
import { open, readdir, readFile, rm, stat, truncate, writeFile } from "node:fs/promises";
import path from "node:path";
import { UsageError } from "../errors/index.js";
import { temporaryFileOf, writeFileAtomic } from "../util/atomic-file.js";
import { makeDirectory } from "../util/make-directory.js";
import { processAlive } from "../util/process-alive.js";
import { CHECKPOINT_FILE, FEATURES_FILE, META_FILE, RECORDS_FILE } from "./files.js";
import type { DatasetMeta, DatasetRecord } from "./types.js";

/**
 * Progress of a dataset being written. Records and features are appended chunk by chunk; after each
 * chunk both files are fsynced and this checkpoint is replaced atomically, so a run killed at any
 * moment (SIGKILL included) resumes by cutting both files back to the last checkpoint.
 */
interface Checkpoint {
  /** What the run is: models, metric, template, input. A rerun must match it exactly. */
  identity: Record<string, unknown>;
  done: number;
  records_bytes: number;
  features_bytes: number;
  dim: number | null;
  complete: boolean;
}

export interface OpenDatasetWriterOptions {
  /**
   * Brings an identity an earlier version stored into today's form before it is compared, e.g.
   * resolving a path it kept as typed. The current identity must already be in that form.
   */
  readStoredIdentity?: (stored: Record<string, unknown>) => Record<string, unknown>;
}

export interface OpenedDatasetWriter {
  writer: DatasetWriter;
  /** Segments already finished by an earlier run (0 for a fresh one). */
  done: number;
  /** True when an earlier run already finished the whole job. */
  complete: boolean;
}

/** Marks a directory as being written by one process, so two runs can never interleave their chunks. */
const LOCK_FILE = ".routelmt.lock";

/**
 * Takes the directory's lock, or explains who holds it. A lock left by a process that no longer
 * exists (a killed run) is taken over.
 */
async function acquireLock(directory: string): Promise<() => Promise<void>> {
  const lockPath = path.join(directory, LOCK_FILE);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await writeFile(lockPath, `${process.pid}\n`, { flag: "wx" });
      let released = false;
      return async () => {
        if (released) return;
        released = true;
        await rm(lockPath, { force: true });
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      const holder = Number.parseInt(await readFile(lockPath, "utf8").catch(() => ""), 10);
      if (Number.isInteger(holder) && holder > 0 && processAlive(holder)) {
        throw new UsageError(
          `${directory} is being written by another routelmt run (process ${holder}); wait for it to finish or stop it first`,
        );
      }
      await rm(lockPath, { force: true });
    }
  }
  throw new UsageError(`${directory}: cannot take the lock ${LOCK_FILE}`);
}

export class DatasetWriter {
  private constructor(
    private readonly directory: string,
    private checkpoint: Checkpoint,
    private readonly unlock: () => Promise<void>,
  ) {}

  /**
   * Opens `directory` for writing. A fresh or empty directory (or one holding only what a run killed
   * before its first checkpoint left) starts a new dataset; a directory holding an interrupted or
   * finished run with the same `identity` resumes it; anything else, and a dataset whose files are
   * shorter than its checkpoint, is refused rather than overwritten, naming the fields that differ.
   */
  static async open(
    directory: string,
    identity: Record<string, unknown>,
    dim: number | null,
    options: OpenDatasetWriterOptions = {},
  ): Promise<OpenedDatasetWriter> {
    await makeDirectory(directory);
    const unlock = await acquireLock(directory);
    try {
      return await DatasetWriter.openLocked(directory, identity, dim, unlock, options);
    } catch (error) {
      await unlock();
      throw error;
    }
  }

  private static async openLocked(
    directory: string,
    identity: Record<string, unknown>,
    dim: number | null,
    unlock: () => Promise<void>,
    options: OpenDatasetWriterOptions,
  ): Promise<OpenedDatasetWriter> {
    const checkpointPath = path.join(directory, CHECKPOINT_FILE);
    if (existsSync(checkpointPath)) {
      const previous = JSON.parse(await readFile(checkpointPath, "utf8")) as Checkpoint;
      const stored = options.readStoredIdentity?.(previous.identity) ?? previous.identity;
      const difference = describeDifference(stored, identity);
      if (difference) {
        throw new UsageError(
          `${directory} holds a dataset made with different settings (${difference}); use another --out directory or remove it`,
        );
      }
      const files = [{ file: path.join(directory, RECORDS_FILE), bytes: previous.records_bytes }];
      if (previous.dim !== null)
        files.push({ file: path.join(directory, FEATURES_FILE), bytes: previous.features_bytes });
      // Every file is checked before any is cut, so a damaged dataset is refused untouched.
      for (const { file, bytes } of files) await assertHolds(file, bytes);
      // Cut off whatever a killed run appended after its last checkpoint.
      for (const { file, bytes } of files) await truncateTo(file, bytes);
      // The same run, in today's form: the next checkpoint records that (e.g. resolved paths).
      const writer = new DatasetWriter(directory, { ...previous, identity }, unlock);
      return { writer, done: previous.done, complete: previous.complete };
    }
    const entries: string[] = [];
    for (const name of await readdir(directory)) {
      if (!name.startsWith(".") && !(await leftOfAKilledStart(directory, name))) entries.push(name);
    }
    if (entries.length > 0) {
      throw new UsageError(
        `${directory} is not empty and holds no routelmt checkpoint; refusing to overwrite it`,
      );
    }
    const checkpoint: Checkpoint = {
      identity,
      done: 0,
      records_bytes: 0,
      features_bytes: 0,
      dim,
      complete: false,
    };
    // The checkpoint comes first: once it exists a rerun resumes (creating a data file a kill left
    // missing), and before it a kill leaves nothing but the lock and the checkpoint's temporary file.
    await writeFileAtomic(checkpointPath, JSON.stringify(checkpoint, null, 2));
    await writeFileAtomic(path.join(directory, RECORDS_FILE), "");
    if (dim !== null) await writeFileAtomic(path.join(directory, FEATURES_FILE), new Uint8Array());
    return { writer: new DatasetWriter(directory, checkpoint, unlock), done: 0, complete: false };
  }

  get done(): number {
    return this.checkpoint.done;
  }

  /** Appends finished segments (records and, when the dataset has features, their rows) durably. */
  async append(records: DatasetRecord[], features: Float32Array | null): Promise<void> {
    if (records.length === 0) return;
    const { dim } = this.checkpoint;
    if (dim !== null) {
      if (!features || features.length !== records.length * dim) {
        throw new Error(
          `feature rows (${features?.length ?? 0} values) do not match ${records.length} records × ${dim}`,
        );
      }
    }
    const recordBytes = Buffer.from(records.map((record) => `${JSON.stringify(record)}\n`).join(""), "utf8");
    await appendDurably(path.join(this.directory, RECORDS_FILE), recordBytes);
    let featureBytes = 0;
    if (dim !== null && features) {
      const bytes = float32ToLittleEndianBytes(features);
      await appendDurably(path.join(this.directory, FEATURES_FILE), bytes);
      featureBytes = bytes.length;
    }
    this.checkpoint = {
      ...this.checkpoint,
      done: this.checkpoint.done + records.length,
      records_bytes: this.checkpoint.records_bytes + recordBytes.length,
      features_bytes: this.checkpoint.features_bytes + featureBytes,
    };
    await writeFileAtomic(
      path.join(this.directory, CHECKPOINT_FILE),
      JSON.stringify(this.checkpoint, null, 2),
    );
  }

  /** Lets other runs write the directory again. Idempotent; `finish` calls it. */
  async close(): Promise<void> {
    await this.unlock();
  }

  /** Writes `meta.json`, marks the run complete and releases the directory. */
  async finish(meta: DatasetMeta): Promise<void> {
    if (meta.n !== this.checkpoint.done) {
      throw new Error(`meta.n (${meta.n}) differs from the ${this.checkpoint.done} records written`);
    }
    await writeFileAtomic(path.join(this.directory, META_FILE), `${JSON.stringify(meta, null, 2)}\n`);
    this.checkpoint = { ...this.checkpoint, complete: true };
    await writeFileAtomic(
      path.join(this.directory, CHECKPOINT_FILE),
      JSON.stringify(this.checkpoint, null, 2),
    );
    await this.close();
  }
}

async function appendDurably(file: string, bytes: Uint8Array): Promise<void> {
  const handle = await open(file, "a");
  try {
    await handle.write(bytes);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** What a run killed before its checkpoint existed may have left: the next run starts afresh over it. */
async function leftOfAKilledStart(directory: string, name: string): Promise<boolean> {
  // Only the writer holding the lock (this one) writes these, so none can belong to a live run.
  const temporary = temporaryFileOf(name);
  if (temporary !== null) return OWN_FILES.has(temporary.target);
  // Versions that created the data files before the checkpoint left them empty; nothing is lost.
  if (name !== RECORDS_FILE && name !== FEATURES_FILE) return false;
  const stats = await stat(path.join(directory, name)).catch(() => undefined);
  return stats?.isFile() === true && stats.size === 0;
}

const OWN_FILES: ReadonlySet<string> = new Set([CHECKPOINT_FILE, RECORDS_FILE, FEATURES_FILE]);

/**
 * Refuses a file shorter than its checkpoint says: its records (or rows) were lost after being
 * counted done, and resuming would pad it with zero bytes and build on them.
 */
async function assertHolds(file: string, bytes: number): Promise<void> {
  const size = (await stat(file).catch(() => undefined))?.size;
  if (size === undefined) {
    if (bytes === 0) return;
    throw new UsageError(
      `${file} is missing but the checkpoint says ${bytes} bytes were written; the dataset is damaged`,
    );
  }
  if (size < bytes) {
    throw new UsageError(
      `${file} is shorter than its checkpoint records (${size} of ${bytes} bytes); the dataset is damaged`,
    );
  }
}

/** Cuts a file checked by {@link assertHolds} back to `bytes`, creating it when missing and empty. */
async function truncateTo(file: string, bytes: number): Promise<void> {
  if (!existsSync(file)) {
    await writeFileAtomic(file, "");
    return;
  }
  if ((await stat(file)).size > bytes) await truncate(file, bytes);
}

/** Float32 rows as little-endian bytes, whatever the host's byte order. */
export function float32ToLittleEndianBytes(values: Float32Array): Uint8Array {
  const bytes = new Uint8Array(values.length * 4);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < values.length; i++) view.setFloat32(i * 4, values[i] as number, true);
  return bytes;
}

/** How many differing fields a refusal names besides the first, whose values it shows. */
const MORE_FIELDS_NAMED = 5;

/**
 * Names the identity fields that differ, or returns null when they are the same: the first with
 * both values (`small.spec: was …, now …`), then the others by name only. Objects are compared
 * field by field, so a refusal names what differs rather than printing a whole model's identity;
 * arrays and other values are compared whole.
 */
function describeDifference(
  previous: Record<string, unknown>,
  current: Record<string, unknown>,
): string | null {
  const differences = differingFields(previous, current, "");
  const [first, ...others] = differences;
  if (first === undefined) return null;
  let text = `${first.field}: was ${first.before}, now ${first.now}`;
  if (others.length > 0) {
    const named = others.slice(0, MORE_FIELDS_NAMED).map((difference) => difference.field);
    if (others.length > MORE_FIELDS_NAMED) named.push(`${others.length - MORE_FIELDS_NAMED} more`);
    text += `; also ${named.join(", ")}`;
  }
  return text;
}

function differingFields(
  previous: Record<string, unknown>,
  current: Record<string, unknown>,
  prefix: string,
): { field: string; before: string; now: string }[] {
  const differences: { field: string; before: string; now: string }[] = [];
  for (const key of new Set([...Object.keys(previous), ...Object.keys(current)])) {
    const field = `${prefix}${key}`;
    const before = previous[key];
    const now = current[key];
    if (isPlainObject(before) && isPlainObject(now)) {
      differences.push(...differingFields(before, now, `${field}.`));
      continue;
    }
    if (JSON.stringify(before ?? null) === JSON.stringify(now ?? null)) continue;
    // A setting at its default is left out of an identity (older runs never recorded it).
    const shown = (value: unknown) => (value === undefined ? "the default" : JSON.stringify(value));
    differences.push({ field, before: shown(before), now: shown(now) });
  }
  return differences;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
