/**
 * Vitest global setup: every test run gets a temporary folder of its own as `TMPDIR`, removed when
 * the run ends, so the folders tests make with `mkdtemp(tmpdir())` — and those of the processes they
 * start — never outlive the run, whether or not a test cleans up after itself.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

export default function setup(): () => void {
  const root = mkdtempSync(path.join(tmpdir(), "routelmt-tests-"));
  const previous = process.env.TMPDIR;
  process.env.TMPDIR = root;
  return () => {
    if (previous === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = previous;
    rmSync(root, { recursive: true, force: true });
  };
}
