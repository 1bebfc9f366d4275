/**
 * The command line users run: `bin/routelmt.js` over the compiled `dist/` (built by `npm ci`
 * through `prepare`, or `npm run build`). Server benchmarks start this rather than the TypeScript
 * sources under a loader, which adds its own per-request cost (source-mapped stacks) that users never
 * pay — and they refuse a `dist/` older than its sources rather than measure stale code.
 */
import { existsSync, readdirSync, statSync } from "node:fs";
import path from "node:path";

/** Latest modification time of the files under `directory` whose names end with `suffix`, tests aside. */
function newestModification(directory: string, suffix: string): number {
  let newest = 0;
  for (const entry of readdirSync(directory, { withFileTypes: true })) {
    const entryPath = path.join(directory, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestModification(entryPath, suffix));
    else if (entry.name.endsWith(suffix) && !entry.name.endsWith(`.test${suffix}`))
      newest = Math.max(newest, statSync(entryPath).mtimeMs);
  }
  return newest;
}

/** Path of the built CLI of the checkout at `root`; throws when it is missing or older than `src/`. */
export function builtCli(root: string): string {
  const bin = path.join(root, "bin", "routelmt.js");
  const main = path.join(root, "dist", "cli", "main.js");
  if (!existsSync(bin) || !existsSync(main)) {
    throw new Error(`${root} has no built CLI: run \`npm run build\` there first`);
  }
  if (
    newestModification(path.join(root, "src"), ".ts") > newestModification(path.join(root, "dist"), ".js")
  ) {
    throw new Error(
      `${path.join(root, "dist")} is older than its sources: run \`npm run build\` there first`,
    );
  }
  return bin;
}
