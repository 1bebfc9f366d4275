/**
 * Lets each benchmark be run on its own (`npx tsx bench/<name>.ts`, printing one JSON object) as
 * well as imported by `run-all.ts`, which calls its `run()` itself.
 */
import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";

/**
 * Whether the module at `moduleUrl` (its `import.meta.url`) is the script node was started with.
 * Paths are compared after resolving links, so a symlinked checkout still counts.
 */
export function isMainModule(moduleUrl: string): boolean {
  const entry = process.argv[1];
  if (entry === undefined) return false;
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(moduleUrl));
  } catch {
    return false;
  }
}

/**
 * Prints the benchmark's result as one line of JSON on stdout; on failure prints the stack on
 * stderr and sets exit code 1.
 */
export function printJsonResult(result: Promise<unknown>): void {
  result.then(
    (value) => process.stdout.write(`${JSON.stringify(value)}\n`),
    (error: unknown) => {
      process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      process.exitCode = 1;
    },
  );
}

/** Runs `run` and prints its result as JSON (see {@link printJsonResult}) when `moduleUrl` is the main script. */
export function runIfMain(moduleUrl: string, run: () => Promise<unknown>): void {
  if (isMainModule(moduleUrl)) printJsonResult(run());
}
