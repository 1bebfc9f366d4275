import { existsSync } from "node:fs";
import { homedir } from "node:os";
import path from "node:path";
import { UsageError } from "../errors/index.js";
import { ggufFingerprint } from "./gguf-fingerprint.js";

/**
 * Where a model comes from:
 * - `path/to/model.gguf` — a local GGUF file, run in-process;
 * - `hf:<user>/<repo>/<file>.gguf` — a GGUF on Hugging Face, downloaded once into the cache;
 * - `openai:<baseURL>#<model>` — an OpenAI-compatible server (vLLM, llama.cpp server, Ollama, hosted APIs);
 *   `openai+completions:` sends the rendered prompt as is to `/completions` (a base model, whose
 *   server would otherwise wrap it in a chat template), `openai+chat:` names the default explicitly.
 */
export type ModelSpec =
  | { kind: "gguf"; spec: string; path: string }
  | { kind: "hf"; spec: string; uri: string }
  | {
      kind: "openai";
      spec: string;
      baseURL: string;
      model: string;
      /** The endpoint the spec asked for; undefined for plain `openai:` (the engine's default). */
      api: OpenAIApi | undefined;
    };

/** Which OpenAI endpoint decodes: `chat` (the server applies the model's chat template) or raw `completions`. */
export type OpenAIApi = "chat" | "completions";

/** `openai:`, `openai+chat:`, `openai+completions:` and the endpoint each asks for. */
const OPENAI_SCHEMES: readonly { prefix: string; api: OpenAIApi | undefined }[] = [
  { prefix: "openai:", api: undefined },
  { prefix: "openai+chat:", api: "chat" },
  { prefix: "openai+completions:", api: "completions" },
];

export function parseModelSpec(spec: string): ModelSpec {
  const text = spec.trim();
  if (text === "") throw new UsageError("empty model spec");
  const openai = OPENAI_SCHEMES.find((scheme) => text.startsWith(scheme.prefix));
  if (openai === undefined && /^openai\+[^:]*:/.test(text)) {
    throw new UsageError(
      `model spec ${JSON.stringify(spec)}: unknown endpoint ${JSON.stringify(text.slice(0, text.indexOf(":")))}: use openai:, openai+chat: or openai+completions:`,
    );
  }
  if (openai !== undefined) {
    const scheme = openai.prefix;
    const rest = text.slice(scheme.length);
    const hash = rest.lastIndexOf("#");
    if (hash <= 0 || hash === rest.length - 1) {
      throw new UsageError(
        `model spec ${JSON.stringify(spec)}: expected ${scheme}<baseURL>#<model>, e.g. ${scheme}http://127.0.0.1:8000/v1#Qwen/Qwen2.5-7B-Instruct`,
      );
    }
    const baseURL = rest.slice(0, hash).replace(/\/+$/, "");
    let url: URL;
    try {
      url = new URL(baseURL);
    } catch {
      throw new UsageError(`model spec ${JSON.stringify(spec)}: ${JSON.stringify(baseURL)} is not a URL`);
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw new UsageError(`model spec ${JSON.stringify(spec)}: the base URL must be http(s)`);
    }
    return { kind: "openai", spec: text, baseURL, model: rest.slice(hash + 1), api: openai.api };
  }
  if (text.startsWith("hf:")) {
    const parts = text.slice(3).split("/");
    if (parts.length < 3 || parts.some((part) => part === "") || !text.toLowerCase().endsWith(".gguf")) {
      throw new UsageError(`model spec ${JSON.stringify(spec)}: expected hf:<user>/<repo>/<file>.gguf`);
    }
    return { kind: "hf", spec: text, uri: text };
  }
  if (!text.toLowerCase().endsWith(".gguf")) {
    throw new UsageError(
      `model spec ${JSON.stringify(spec)}: expected a .gguf file, hf:<user>/<repo>/<file>.gguf or openai:<baseURL>#<model>`,
    );
  }
  return { kind: "gguf", spec: text, path: path.resolve(text) };
}

/** Directory where `hf:` models are cached: `$ROUTELMT_CACHE/models`, else `~/.cache/routelmt/models`. */
export function modelCacheDirectory(): string {
  const root = process.env.ROUTELMT_CACHE ?? path.join(homedir(), ".cache", "routelmt");
  return path.join(root, "models");
}

/** How long to wait for the model hub to answer before calling the machine offline. */
const HUB_PROBE_TIMEOUT_MS = 15_000;

/**
 * Local path of a GGUF spec: the file itself, or the cached download of an `hf:` model (downloaded
 * with a progress bar on first use). Offline, a clear error says how to pass a local file instead.
 */
export async function resolveGgufPath(spec: ModelSpec & { kind: "gguf" | "hf" }): Promise<string> {
  if (spec.kind === "gguf") {
    if (!existsSync(spec.path)) throw new UsageError(`model file not found: ${spec.spec}`);
    return spec.path;
  }
  const { resolveModelFile } = await import("node-llama-cpp");
  const directory = modelCacheDirectory();
  try {
    return await resolveModelFile(spec.uri, { directory, download: false });
  } catch {
    // Not cached yet: download below.
  }
  const offline = `cannot download ${spec.spec}: the model hub is unreachable from this machine. Download the GGUF elsewhere and pass its path instead (e.g. ./models/small.gguf), or set ROUTELMT_CACHE to a folder that holds it`;
  try {
    await fetch("https://huggingface.co", {
      method: "HEAD",
      signal: AbortSignal.timeout(HUB_PROBE_TIMEOUT_MS),
    });
  } catch (error) {
    throw new UsageError(offline, { cause: error });
  }
  try {
    return await resolveModelFile(spec.uri, { directory, cli: true });
  } catch (error) {
    throw new UsageError(`cannot download ${spec.spec}: ${(error as Error).message}`, { cause: error });
  }
}

/** Fingerprint of a local (or cached `hf:`) GGUF model; null for remote engines, which have no file here. */
export async function localModelFingerprint(spec: ModelSpec): Promise<string | null> {
  return spec.kind === "openai" ? null : await ggufFingerprint(await resolveGgufPath(spec));
}
