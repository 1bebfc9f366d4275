import { mkdir, stat } from "node:fs/promises";
import path from "node:path";

/**
 * Creates `directory` and any missing parents, like `mkdir -p`.
 *
 * Not `mkdir(directory, { recursive: true })`: Node's recursive mkdir retries a child forever when
 * creating it fails with ENOENT although its parent exists — which is what a pseudo file system
 * such as /proc answers — so `--out /proc/x` spun at full CPU. Here each level is tried at most
 * twice, and the second ENOENT is final.
 * @throws the Node error of the first level that cannot be created (its `path` names that level);
 *   an ENOTDIR error when `directory` or a parent exists but is not a directory.
 */
export async function makeDirectory(directory: string): Promise<void> {
  try {
    await mkdir(directory);
    return;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "EEXIST") return await assertDirectory(directory, error);
    if (code !== "ENOENT" || path.dirname(directory) === directory) throw error;
  }
  await makeDirectory(path.dirname(directory));
  try {
    await mkdir(directory);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") return await assertDirectory(directory, error);
    throw error;
  }
}

/** A path that exists but is a file cannot hold what the caller wants to put in it. */
async function assertDirectory(directory: string, existsError: unknown): Promise<void> {
  if ((await stat(directory)).isDirectory()) return;
  throw Object.assign(new Error(`ENOTDIR: not a directory, mkdir '${directory}'`), {
    code: "ENOTDIR",
    syscall: "mkdir",
    path: directory,
    cause: existsError,
  });
}
