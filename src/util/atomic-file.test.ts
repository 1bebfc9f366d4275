import { spawn } from "node:child_process";
import { chmod, mkdtemp, readdir, readFile, readlink, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { InputError } from "../errors/index.js";
import { AtomicFileWriter, writeFileAtomic } from "./atomic-file.js";

async function folder(): Promise<string> {
  return await mkdtemp(path.join(tmpdir(), "routelmt-atomic-"));
}

describe("AtomicFileWriter", () => {
  it("leaves the old file as it was until commit, then replaces it whole", async () => {
    const directory = await folder();
    const file = path.join(directory, "out.jsonl");
    await writeFile(file, "old\n");
    await chmod(file, 0o640);
    const writer = await AtomicFileWriter.open(file);
    await writer.write("new 1\n");
    await writer.write(new TextEncoder().encode("new 2\n"));
    expect(await readFile(file, "utf8")).toBe("old\n");
    await writer.commit();
    expect(await readFile(file, "utf8")).toBe("new 1\nnew 2\n");
    expect((await stat(file)).mode & 0o777).toBe(0o640);
    expect(await readdir(directory)).toEqual(["out.jsonl"]);
    await writer.discard();
    expect(await readFile(file, "utf8")).toBe("new 1\nnew 2\n");
  });

  it("removes what a killed writer of the same file left, and nothing else", async () => {
    const directory = await folder();
    const file = path.join(directory, "out.jsonl");
    // A process id that ran and ended: its temporary file can only be a leftover.
    const ended = spawn(process.execPath, ["-e", ""]);
    await new Promise((resolve) => ended.once("exit", resolve));
    const leftover = `out.jsonl.tmp-${ended.pid}-0123abcd`;
    const live = `out.jsonl.tmp-${process.pid}-89abcdef`;
    const others = ["other.jsonl.tmp-1-0123abcd", `out.jsonl.tmp-${ended.pid}-notmine`];
    for (const name of [leftover, live, ...others]) await writeFile(path.join(directory, name), "x");
    const writer = await AtomicFileWriter.open(file);
    await writer.write("new\n");
    await writer.commit();
    expect((await readdir(directory)).sort()).toEqual(["out.jsonl", live, ...others].sort());
  });

  it("discards without a trace", async () => {
    const directory = await folder();
    const file = path.join(directory, "out.jsonl");
    await writeFile(file, "old\n");
    const writer = await AtomicFileWriter.open(file);
    await writer.write("half");
    await writer.discard();
    expect(await readFile(file, "utf8")).toBe("old\n");
    expect(await readdir(directory)).toEqual(["out.jsonl"]);
  });

  it("replaces the file a symbolic link points to and keeps the link", async () => {
    const directory = await folder();
    const target = path.join(directory, "target.json");
    const link = path.join(directory, "link.json");
    await writeFile(target, "old");
    await symlink(target, link);
    await writeFileAtomic(link, "new");
    expect(await readlink(link)).toBe(target);
    expect(await readFile(target, "utf8")).toBe("new");
  });

  it("names the given path when it cannot write, and leaves no temporary file", async () => {
    const directory = await folder();
    await writeFile(path.join(directory, "plain"), "x");
    const cases: [string, RegExp][] = [
      [directory, /: cannot write \(EISDIR: is a directory\)$/],
      [path.join(directory, "plain", "out.json"), /: cannot write \(ENOTDIR: /],
      [path.join(directory, "missing", "out.json"), /: cannot write \(ENOENT: /],
    ];
    for (const [file, message] of cases) {
      const failure = await writeFileAtomic(file, "content").catch((error: unknown) => error);
      expect(failure).toBeInstanceOf(InputError);
      expect((failure as InputError).file).toBe(file);
      expect((failure as InputError).message).toMatch(message);
    }
    expect(await readdir(directory)).toEqual(["plain"]);
  });
});

describe("AtomicFileWriter on an interrupt", () => {
  const module = fileURLToPath(new URL("./atomic-file.ts", import.meta.url));

  /** A process with an open writer on `file`; resolves with its exit status after `signal`. */
  async function interrupted(file: string, signal: NodeJS.Signals, handlesItself: boolean) {
    const script = [
      `import { AtomicFileWriter } from ${JSON.stringify(module)};`,
      handlesItself
        ? `process.on(${JSON.stringify(signal)}, () => { console.log("own handler"); process.exit(7); });`
        : "",
      `const writer = await AtomicFileWriter.open(${JSON.stringify(file)});`,
      `await writer.write("half");`,
      `console.log("open");`,
      "setInterval(() => {}, 1000);",
    ].join("\n");
    const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let stdout = "";
    child.stdout.on("data", (data: Buffer) => {
      stdout += data.toString();
    });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.once("exit", (code, signal) => resolve({ code, signal })),
    );
    while (!stdout.includes("open")) await new Promise((resolve) => setTimeout(resolve, 20));
    child.kill(signal);
    return { ...(await exited), stdout };
  }

  it("removes the temporary file and ends by the signal, as without it, on SIGINT / SIGTERM", async () => {
    for (const signal of ["SIGINT", "SIGTERM"] as const) {
      const directory = await folder();
      const file = path.join(directory, "out.json");
      await writeFile(file, "old");
      expect((await interrupted(file, signal, false)).signal, signal).toBe(signal);
      expect(await readdir(directory)).toEqual(["out.json"]);
      expect(await readFile(file, "utf8")).toBe("old");
    }
  }, 30_000);

  it("leaves a process that handles the signal itself to do so, and cleans up when it exits", async () => {
    const directory = await folder();
    const run = await interrupted(path.join(directory, "out.json"), "SIGTERM", true);
    expect(run.code).toBe(7);
    expect(run.stdout).toContain("own handler");
    expect(await readdir(directory)).toEqual([]);
  }, 30_000);
});
