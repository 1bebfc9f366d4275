import { describe, expect, it } from "vitest";
import { InputError, pathErrorOf, UsageError } from "./index.js";

/** An error shaped like the ones Node's fs module throws. */
function fsError(code: string, syscall: string, path: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: ${syscall} '${path}'`), { code, syscall, path });
}

describe("pathErrorOf", () => {
  it("turns file-system errors on a path into a one-line InputError naming it", () => {
    const cases: [NodeJS.ErrnoException, string][] = [
      [
        fsError("EROFS", "open", "/ro/out.jsonl"),
        "/ro/out.jsonl: cannot open (EROFS: read-only file system)",
      ],
      [
        fsError("EACCES", "mkdir", "/locked/x"),
        "/locked/x: cannot create directory (EACCES: permission denied)",
      ],
      [fsError("EEXIST", "open", "/d/.lock"), "/d/.lock: cannot open (EEXIST: already exists)"],
      [fsError("ENOSPC", "write", "/full/f"), "/full/f: cannot write (ENOSPC: no space left on device)"],
    ];
    for (const [error, message] of cases) {
      const mapped = pathErrorOf(error);
      expect(mapped).toBeInstanceOf(InputError);
      expect(mapped?.message).toBe(message);
      expect(mapped?.cause).toBe(error);
    }
  });

  it("names the path and action the caller gives instead", () => {
    const mapped = pathErrorOf(
      fsError("ENOENT", "open", "/a/out.jsonl.tmp-1"),
      "/a/out.jsonl",
      "cannot write",
    );
    expect(mapped?.message).toBe("/a/out.jsonl: cannot write (ENOENT: no such file or directory)");
  });

  it("leaves other errors alone", () => {
    expect(pathErrorOf(fsError("EIO", "read", "/x"))).toBeUndefined();
    expect(pathErrorOf(Object.assign(new Error("no path"), { code: "ENOENT" }))).toBeUndefined();
    expect(pathErrorOf(new UsageError("bad flag"))).toBeUndefined();
    expect(pathErrorOf("text")).toBeUndefined();
  });
});
