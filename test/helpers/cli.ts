import { spawn } from "node:child_process";
import path from "node:path";
import type { Readable } from "node:stream";
import { runCli } from "../../src/cli/main.js";
import { repoRoot } from "./shared.js";

/** Result of one in-process CLI run. */
export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI in-process with captured output. */
export async function runCliCaptured(argv: string[]): Promise<CliRun> {
  let stdout = "";
  let stderr = "";
  const code = await runCli(argv, {
    stdout: (text) => {
      stdout += text;
    },
    stderr: (text) => {
      stderr += text;
    },
    isTty: false,
  });
  return { code, stdout, stderr };
}

/** Starts the CLI from source in a child process (for kill/resume tests), with extra environment variables. */
export function spawnCli(argv: string[], environment: Record<string, string> = {}) {
  return spawn(process.execPath, ["--import", "tsx", path.join(repoRoot, "src/cli/run.ts"), ...argv], {
    cwd: repoRoot,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...environment },
  });
}

/** Collects what a child's output stream writes; the returned function reads it so far. */
export function collectText(stream: Readable): () => string {
  let text = "";
  stream.on("data", (data: Buffer) => {
    text += data.toString();
  });
  return () => text;
}
