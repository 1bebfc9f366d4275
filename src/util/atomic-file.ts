import { randomBytes } from "node:crypto";
import { rmSync } from "node:fs";
import { type FileHandle, open, readdir, realpath, rename, rm, stat } from "node:fs/promises";
import path from "node:path";
import { InputError, pathErrorOf } from "../errors/index.js";
import { processAlive } from "./process-alive.js";

/** Flushes a directory entry so a rename survives power loss (a no-op where directories cannot be opened). */
export async function fsyncDirectory(directory: string): Promise<void> {
  try {
    const handle = await open(directory, "r");
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // Some platforms cannot fsync a directory; the rename is still atomic.
  }
}

/** Temporary files of writers still open, removed if the process is interrupted or exits. */
const openTemporaries = new Set<string>();
const INTERRUPTS: readonly NodeJS.Signals[] = ["SIGINT", "SIGTERM"];

/**
 * On SIGINT or SIGTERM: removes the open writers' temporary files, then raises the signal again
 * without this handler, so the process ends as it would have — by the default action, or by
 * whatever else handles the signal (a server's shutdown, a library's exit hooks).
 */
function onInterrupt(signal: NodeJS.Signals): void {
  removeOpenTemporaries();
  stopWatching();
  process.kill(process.pid, signal);
}

/** On any exit with writers still open (`process.exit` anywhere, a failure). */
function removeOpenTemporaries(): void {
  for (const temporary of openTemporaries) rmSync(temporary, { force: true });
  openTemporaries.clear();
}

function stopWatching(): void {
  for (const signal of INTERRUPTS) process.off(signal, onInterrupt);
  process.off("exit", removeOpenTemporaries);
}

function trackTemporary(temporary: string): void {
  if (openTemporaries.size === 0) {
    for (const signal of INTERRUPTS) process.on(signal, onInterrupt);
    process.on("exit", removeOpenTemporaries);
  }
  openTemporaries.add(temporary);
}

function untrackTemporary(temporary: string): void {
  if (openTemporaries.delete(temporary) && openTemporaries.size === 0) stopWatching();
}

/**
 * The file a temporary file named `name` was to replace and the process that wrote it, or null
 * when `name` is not one of this module's temporary files.
 */
export function temporaryFileOf(name: string): { target: string; pid: number } | null {
  const match = /^(.+)\.tmp-(\d+)-[0-9a-f]{8}$/.exec(name);
  return match === null ? null : { target: match[1] as string, pid: Number(match[2]) };
}

/**
 * Removes temporary files of `target` that killed writers left (SIGKILL cannot be caught): those
 * whose process no longer runs. Best effort: a file that cannot be listed or removed stays.
 */
async function removeStaleTemporaries(target: string): Promise<void> {
  const names = await readdir(path.dirname(target)).catch(() => [] as string[]);
  for (const name of names) {
    const temporary = temporaryFileOf(name);
    if (temporary === null || temporary.target !== path.basename(target)) continue;
    if (processAlive(temporary.pid)) continue;
    await rm(path.join(path.dirname(target), name), { force: true }).catch(() => {});
  }
}

/**
 * A file written in full under a temporary name beside it and renamed over `file` only by
 * `commit()`: until then — and for good after `discard()` or a failure — whatever was at `file`
 * stays as it was, and no temporary file is left behind. A symbolic link at `file` keeps pointing
 * where it did: the file it points to is the one replaced. An interrupt (SIGINT, SIGTERM) or any
 * `process.exit` removes the temporary file before the process ends; only a kill leaves it, and
 * the next writer of the same file removes it. Keep a writer open only around asynchronous work: an interrupt waits for the event loop, so a long
 * synchronous computation would hold it (compute first, then write). File-system errors are
 * InputErrors naming `file`.
 */
export class AtomicFileWriter {
  private state: "open" | "committed" | "discarded" = "open";

  private constructor(
    /** The path the caller gave: what errors name. */
    readonly file: string,
    private readonly target: string,
    private readonly temporary: string,
    private readonly handle: FileHandle,
  ) {}

  /**
   * Creates the temporary file at once, so an unusable path fails before any work is done.
   * @throws InputError naming `file` when its folder is missing, not writable, not a folder, …
   */
  static async open(file: string): Promise<AtomicFileWriter> {
    const target = await realpath(file).catch(() => file);
    const existing = await stat(target).catch(() => undefined);
    // Caught here, not by the final rename, so the work is not done in vain.
    if (existing?.isDirectory()) throw new InputError("cannot write (EISDIR: is a directory)", { file });
    const existingMode = existing?.isFile() ? existing.mode & 0o7777 : undefined;
    // Unique per writer, so two writers of one file in one process never share a temporary file.
    const temporary = `${target}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`;
    let handle: FileHandle;
    try {
      handle = await open(temporary, "wx");
    } catch (error) {
      throw pathErrorOf(error, file, "cannot write") ?? error;
    }
    trackTemporary(temporary);
    await removeStaleTemporaries(target);
    const writer = new AtomicFileWriter(file, target, temporary, handle);
    if (existingMode !== undefined) await writer.guard(() => handle.chmod(existingMode));
    return writer;
  }

  /**
   * Proves that `file` can be written, as {@link open} would, and leaves nothing behind: for a
   * command that computes for a long time before it has anything to write.
   * @throws InputError naming `file`, as {@link open}.
   */
  static async check(file: string): Promise<void> {
    await (await AtomicFileWriter.open(file)).discard();
  }

  /** Appends to the temporary file. */
  async write(content: string | Uint8Array): Promise<void> {
    this.assertOpen();
    await this.guard(() => this.handle.writeFile(content));
  }

  /** Flushes the content to disk and puts it in place of `file` in one rename. */
  async commit(): Promise<void> {
    this.assertOpen();
    await this.guard(async () => {
      await this.handle.sync();
      await this.handle.close();
      await rename(this.temporary, this.target);
    });
    this.state = "committed";
    untrackTemporary(this.temporary);
    await fsyncDirectory(path.dirname(this.target));
  }

  /** Drops the temporary file and leaves `file` untouched. Idempotent; a no-op after `commit()`. */
  async discard(): Promise<void> {
    if (this.state !== "open") return;
    this.state = "discarded";
    await this.handle.close().catch(() => {});
    await rm(this.temporary, { force: true });
    untrackTemporary(this.temporary);
  }

  private assertOpen(): void {
    if (this.state !== "open") throw new Error(`${this.file}: output already ${this.state}`);
  }

  /** Runs a file operation; on failure the temporary file goes and the error names `file`. */
  private async guard<T>(operation: () => Promise<T>): Promise<T> {
    try {
      return await operation();
    } catch (error) {
      await this.discard();
      throw pathErrorOf(error, this.file, "cannot write") ?? error;
    }
  }
}

/** Writes a file so that readers see either the old or the new content, never a torn one. */
export async function writeFileAtomic(file: string, content: string | Uint8Array): Promise<void> {
  const writer = await AtomicFileWriter.open(file);
  await writer.write(content);
  await writer.commit();
}
