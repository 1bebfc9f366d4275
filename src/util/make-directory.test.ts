import { existsSync, statSync } from "node:fs";
import { mkdtemp, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { makeDirectory } from "./make-directory.js";

describe("makeDirectory", () => {
  it("creates missing parents and accepts an existing directory or a link to one", async () => {
    const root = await mkdtemp(path.join(tmpdir(), "routelmt-mkdir-"));
    const deep = path.join(root, "a", "b", "c");
    await makeDirectory(deep);
    expect(statSync(deep).isDirectory()).toBe(true);
    await makeDirectory(deep);
    await symlink(deep, path.join(root, "link"));
    await makeDirectory(path.join(root, "link"));
    await makeDirectory(path.join(root, "link", "d"));
    expect(existsSync(path.join(deep, "d"))).toBe(true);
  });

  it("ends with ENOTDIR naming the path when a file is in the way", async () => {
    const root = await mkdtemp(path.join(tmpdir(), "routelmt-mkdir-"));
    const file = path.join(root, "file");
    await writeFile(file, "x");
    await expect(makeDirectory(file)).rejects.toMatchObject({ code: "ENOTDIR", path: file });
    await expect(makeDirectory(path.join(file, "sub", "deeper"))).rejects.toMatchObject({
      code: "ENOTDIR",
    });
  });

  it.runIf(process.platform === "linux" && existsSync("/proc/self"))(
    "fails at once under /proc, where Node's recursive mkdir loops forever",
    async () => {
      await expect(makeDirectory("/proc/routelmt-x/y")).rejects.toMatchObject({ code: "ENOENT" });
    },
    5_000,
  );
});
