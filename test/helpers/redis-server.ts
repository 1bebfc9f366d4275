/**
 * A real `redis-server` (Debian package `redis-server`) on a free loopback port, without persistence:
 * killing it loses its data, as a crashed cache would. Tests skip with {@link redisSkipReason} when
 * the binary is not installed.
 */
import { accessSync, constants } from "node:fs";
import { connect } from "node:net";
import path from "node:path";
import { type ChildService, startChildService } from "./child-service.js";

/** `redis-server` on the PATH, or null. */
export function redisServerBinary(): string | null {
  for (const directory of (process.env.PATH ?? "").split(path.delimiter)) {
    if (directory === "") continue;
    const candidate = path.join(directory, "redis-server");
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return null;
}

export function redisSkipReason(what: string): string {
  return `skipped: ${what} needs redis-server on the PATH (Debian: apt-get install redis-server); it is absent on this machine`;
}

/** True when a Redis on the port answers PING. */
function answersPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port });
    let answer = "";
    const done = (value: boolean) => {
      socket.destroy();
      resolve(value);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once("error", () => done(false));
    socket.on("data", (chunk) => {
      answer += chunk.toString("latin1");
      if (answer.includes("\r\n")) done(answer.startsWith("+PONG"));
    });
    socket.once("connect", () => socket.write("PING\r\n"));
  });
}

export interface RedisServer extends ChildService {
  url: string;
}

/** Starts redis-server on a free loopback port (or `port`, to restart one) and waits for PING. */
export async function startRedisServer(port?: number): Promise<RedisServer> {
  const binary = redisServerBinary();
  if (binary === null) throw new Error(redisSkipReason("startRedisServer"));
  const service = await startChildService({
    name: "redis-server",
    binary,
    port,
    args: (chosen) => [
      "--port",
      String(chosen),
      "--bind",
      "127.0.0.1",
      "--save",
      "",
      "--appendonly",
      "no",
      "--daemonize",
      "no",
    ],
    ready: answersPing,
    startTimeoutMs: 15_000,
  });
  return Object.assign(service, { url: `redis://127.0.0.1:${service.port}` });
}
