import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** Repository root. */
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/**
 * The optional data/models folder that lives beside the repository (`../shared`), or where
 * ROUTELMT_SHARED points. Tests that need it skip with `sharedSkipReason` when it is absent.
 */
export const sharedDir = process.env.ROUTELMT_SHARED ?? path.resolve(repoRoot, "../shared");

/** Absolute path of a file under the shared folder. */
export function sharedPath(...parts: string[]): string {
  return path.join(sharedDir, ...parts);
}

/** True when every listed shared file exists. */
export function hasShared(...parts: string[][]): boolean {
  return parts.every((p) => existsSync(sharedPath(...p)));
}

/** Message printed when shared-folder tests are skipped. */
export function sharedSkipReason(what: string): string {
  return `skipped: ${what} needs ../shared (or ROUTELMT_SHARED); it is absent on this machine`;
}
