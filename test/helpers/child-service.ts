/**
 * A real server process started by a test on a free loopback port (llama-server, redis-server):
 * waits until it answers, keeps the end of its output for error messages, and is always stopped by
 * its own process id — never by name, so services of other test files or users are left alone.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createServer } from "node:net";

/** A port that was free on 127.0.0.1 a moment ago (the OS picks it; the caller binds it next). */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export interface ChildService {
  readonly port: number;
  readonly child: ChildProcess;
  /** The last few kilobytes of stdout and stderr, for failure messages. */
  output(): string;
  /** Whether the process has exited. */
  readonly exited: boolean;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
  stop(graceMs?: number): Promise<void>;
  /** SIGKILL at once (a crash); resolves once the process is gone. */
  kill(): Promise<void>;
}

export interface StartChildServiceOptions {
  /** Human name for errors, e.g. `llama-server`. */
  name: string;
  binary: string;
  /** Arguments for a given port. */
  args: (port: number) => string[];
  /** Resolves true once the service is ready to serve (polled). */
  ready: (port: number) => Promise<boolean>;
  /** Longest wait for `ready`. Defaults to 60 s. */
  startTimeoutMs?: number;
  /** Reuse this port (a restart) instead of picking a free one. */
  port?: number;
}

const OUTPUT_KEPT = 8192;

/** Starts the service and waits until it is ready; throws with its output when it exits or times out. */
export async function startChildService(options: StartChildServiceOptions): Promise<ChildService> {
  const port = options.port ?? (await freeLoopbackPort());
  const child = spawn(options.binary, options.args(port), { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString("utf8")).slice(-OUTPUT_KEPT);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  let exited = false;
  const gone = new Promise<void>((resolve) => {
    child.once("exit", () => {
      exited = true;
      resolve();
    });
    child.once("error", (error) => {
      output += `\nspawn error: ${error.message}`;
      exited = true;
      resolve();
    });
  });
  const signal = async (name: NodeJS.Signals, graceMs: number) => {
    if (exited) return;
    child.kill(name);
    const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
    await gone;
    clearTimeout(timer);
  };
  const service: ChildService = {
    port,
    child,
    output: () => output,
    get exited() {
      return exited;
    },
    stop: (graceMs = 3000) => signal("SIGTERM", graceMs),
    kill: () => signal("SIGKILL", 0),
  };
  const deadline = Date.now() + (options.startTimeoutMs ?? 60_000);
  while (!exited) {
    if (await options.ready(port).catch(() => false)) return service;
    if (Date.now() > deadline) {
      await service.stop();
      throw new Error(`${options.name} on port ${port} was not ready in time; its output:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${options.name} exited before it was ready; its output:\n${output}`);
}
