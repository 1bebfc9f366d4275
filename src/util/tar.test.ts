import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { extractTarFiles } from "./tar.js";

describe("extractTarFiles", () => {
  it("reads wanted files from a gzipped archive made by tar, including long names", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "routelmt-tar-"));
    const deep = path.join(dir, "root", "a".repeat(60), "b".repeat(60));
    await mkdir(deep, { recursive: true });
    await writeFile(path.join(dir, "root", "one.txt"), "first\nline ü\n");
    await writeFile(path.join(deep, "two.txt"), "x".repeat(1500));
    await writeFile(path.join(dir, "root", "skip.txt"), "no");
    execFileSync("tar", ["-czf", path.join(dir, "a.tar.gz"), "-C", dir, "root"]);
    const files = extractTarFiles(
      await readFile(path.join(dir, "a.tar.gz")),
      (name) => !name.endsWith("skip.txt"),
    );
    expect(files.get("root/one.txt")?.toString("utf8")).toBe("first\nline ü\n");
    expect(files.get(`root/${"a".repeat(60)}/${"b".repeat(60)}/two.txt`)?.length).toBe(1500);
    expect([...files.keys()].some((name) => name.endsWith("skip.txt"))).toBe(false);
  });
});
