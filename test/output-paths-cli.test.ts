import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { type CliRun, collectText, runCliCaptured, spawnCli } from "./helpers/cli.js";

let work: string;
/** A regular file: any path under it fails with ENOTDIR, for root too. */
let blocker: string;
let collectInput: string;
let replayInput: string;
let replayDataset: string;

/** `import` arguments that build a replay dataset from `replayInput` into `out`. */
function importArguments(out: string): string[] {
  return [
    "import",
    ...["--in", replayInput, "--out", out],
    ...["--small-field", "sys.small", "--large-field", "sys.large"],
    ...["--small-label", "chrf.small", "--large-label", "chrf.large"],
  ];
}

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), "routelmt-paths-"));
  blocker = path.join(work, "plain-file");
  await writeFile(blocker, "not a directory\n");
  collectInput = path.join(work, "collect.jsonl");
  await writeFile(collectInput, '{"id":"a","src":"the cat","ref":"die Katze"}\n');
  replayInput = path.join(work, "replay.jsonl");
  const records = Array.from({ length: 12 }, (_, i) =>
    JSON.stringify({
      id: `r${i}`,
      src: `source ${i}`,
      ref: `reference ${i}`,
      src_lang: "en",
      tgt_lang: "de",
      sys: { small: `small ${i}`, large: `large ${i}` },
      chrf: { small: 40 + (i % 5), large: 45 + ((i * 7) % 11) },
    }),
  );
  await writeFile(replayInput, `${records.join("\n")}\n`);
  replayDataset = path.join(work, "replay-dataset");
  const built = await runCliCaptured(importArguments(replayDataset));
  expect(built.code).toBe(0);
});

/** The standard for bad output paths: exit 2, one line naming the path, no stack trace. */
function expectOneLinePathError(run: CliRun, named: string, code: string): void {
  expect(run.code).toBe(2);
  const lines = run.stderr.trimEnd().split("\n");
  expect(lines).toHaveLength(1);
  expect(lines[0]).toContain(named);
  expect(lines[0]).toContain(code);
  expect(run.stderr).not.toMatch(/\n\s+at |unexpected error/);
}

describe("output paths that cannot be written", () => {
  it("collect: a path under a regular file, before any model loads", async () => {
    const out = path.join(blocker, "dataset");
    const run = await runCliCaptured([
      "collect",
      ...["--small", path.join(work, "missing-small.gguf"), "--large", path.join(work, "missing-large.gguf")],
      ...["--in", collectInput, "--out", out, "--src-lang", "en", "--tgt-lang", "de"],
    ]);
    expectOneLinePathError(run, out, "ENOTDIR");
  });

  it.runIf(existsSync("/proc/self"))(
    "collect: a path under /proc ends at once (Node's recursive mkdir loops there forever)",
    async () => {
      const out = "/proc/routelmt-no-such-dir/dataset";
      // A child process, so a regression that spins cannot wedge the test worker.
      const child = spawnCli([
        "collect",
        ...[
          "--small",
          path.join(work, "missing-small.gguf"),
          "--large",
          path.join(work, "missing-large.gguf"),
        ],
        ...["--in", collectInput, "--out", out, "--src-lang", "en", "--tgt-lang", "de"],
      ]);
      const stderr = collectText(child.stderr);
      const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
      const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
      clearTimeout(timer);
      expectOneLinePathError(
        { code: code ?? -1, stdout: "", stderr: stderr() },
        "/proc/routelmt-no-such-dir",
        "ENOENT",
      );
    },
    40_000,
  );

  it("translate: a folder that does not exist, before the model loads", async () => {
    const out = path.join(work, "no-such-folder", "out.jsonl");
    const run = await runCliCaptured([
      "translate",
      ...["--model", path.join(work, "missing.gguf"), "--src-lang", "en", "--tgt-lang", "de"],
      ...["--in", collectInput, "--out", out],
    ]);
    expectOneLinePathError(run, out, "ENOENT");
  });

  it("import: a path under a regular file", async () => {
    const out = path.join(blocker, "replay");
    expectOneLinePathError(await runCliCaptured(importArguments(out)), out, "ENOTDIR");
  });

  it("eval: a report folder under a regular file", async () => {
    const out = path.join(blocker, "report");
    const run = await runCliCaptured([
      "eval",
      ...["--data", replayDataset, "--out", out, "--policies", "length,random"],
    ]);
    expectOneLinePathError(run, out, "ENOTDIR");
  });

  it.skipIf(process.getuid?.() === 0)(
    "import: a read-only folder (permissions do not stop root, so not as root)",
    async () => {
      const readOnly = path.join(work, "read-only");
      await mkdir(readOnly, { mode: 0o555 });
      const out = path.join(readOnly, "replay");
      expectOneLinePathError(await runCliCaptured(importArguments(out)), out, "EACCES");
      expect(await readdir(readOnly)).toEqual([]);
    },
  );
});
