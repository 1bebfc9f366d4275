/**
 * llama.cpp's own HTTP server (`llama-server`), built from the llama.cpp source node-llama-cpp ships
 * by `scripts/build-llama-server.sh` into `${ROUTELMT_CACHE:-~/.cache/routelmt}/llama-server/<tag>/`.
 * Tests that need it skip with {@link llamaServerSkipReason} when it has not been built.
 */
import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import path from "node:path";
import { type ChildService, startChildService } from "./child-service.js";
import { repoRoot } from "./shared.js";

/** The llama.cpp tag node-llama-cpp was built from (its `llama.cpp.info.json`). */
export function llamaCppTag(): string {
  const info = path.join(repoRoot, "node_modules/node-llama-cpp/llama/llama.cpp.info.json");
  return (JSON.parse(readFileSync(info, "utf8")) as { tag: string }).tag;
}

/** Where the build script puts the binary for this tag. */
export function llamaServerPath(): string {
  const cache = process.env.ROUTELMT_CACHE ?? path.join(homedir(), ".cache", "routelmt");
  return path.join(cache, "llama-server", llamaCppTag(), "llama-server");
}

/** The binary, or null when it has not been built. */
export function llamaServerBinary(): string | null {
  const binary = llamaServerPath();
  return existsSync(binary) ? binary : null;
}

/** Message printed when llama-server tests are skipped. */
export function llamaServerSkipReason(what: string): string {
  return `skipped: ${what} needs llama.cpp's server at ${llamaServerPath()}; build it with scripts/build-llama-server.sh (cmake, g++, offline, 15–25 min)`;
}

export interface LlamaServerOptions {
  model: string;
  /** Server slots: sequences decoded in parallel (`--parallel`). Defaults to 1. */
  parallel?: number;
  /** Context of all slots together (`--ctx-size`); each slot gets ctxSize / parallel. Defaults to 512 × parallel. */
  ctxSize?: number;
  /** CPU threads. Defaults to 1 (tests share two cores). */
  threads?: number;
  /** Serve `/v1/embeddings` with this pooling (`--embeddings --pooling …`), e.g. `last`. */
  embeddingsPooling?: "last" | "mean" | "cls" | "none";
  extraArgs?: string[];
}

export interface LlamaServer extends ChildService {
  /** OpenAI base URL, `http://127.0.0.1:<port>/v1`. */
  url: string;
}

/** Starts llama-server on a free loopback port and waits for `GET /health` to answer 200. */
export async function startLlamaServer(options: LlamaServerOptions): Promise<LlamaServer> {
  const binary = llamaServerBinary();
  if (binary === null) throw new Error(llamaServerSkipReason("startLlamaServer"));
  const parallel = options.parallel ?? 1;
  const service = await startChildService({
    name: "llama-server",
    binary,
    args: (port) => [
      "--model",
      options.model,
      "--host",
      "127.0.0.1",
      "--port",
      String(port),
      "--parallel",
      String(parallel),
      "--ctx-size",
      String(options.ctxSize ?? 512 * parallel),
      "--threads",
      String(options.threads ?? 1),
      "--threads-http",
      String(Math.max(2, parallel)),
      "--no-webui",
      ...(options.embeddingsPooling ? ["--embeddings", "--pooling", options.embeddingsPooling] : []),
      ...(options.extraArgs ?? []),
    ],
    // 503 while the model loads, 200 once it serves.
    ready: async (port) => (await fetch(`http://127.0.0.1:${port}/health`)).status === 200,
  });
  return Object.assign(service, { url: `http://127.0.0.1:${service.port}/v1` });
}
