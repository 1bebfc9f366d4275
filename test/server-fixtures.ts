/**
 * Fixtures of the server tests: routers whose heads are linear functions of the fake engine's
 * embeddings (so their score quantiles are those of real traffic), config builders, and a bounded
 * concurrent request runner.
 */
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { type ProbeModel, predictRows } from "../src/probe/probe-model.js";
import { type HeadName, predictHeads, type RouterFile, type RouterHead } from "../src/probe/router-file.js";
import { resolveServerConfig, type ServerConfig } from "../src/server/config.js";
import { LlamaTranslator } from "../src/translators/llama-translator.js";
import { defaultPromptTemplate, renderPrompt } from "../src/translators/prompt-template.js";
import { spawnCli } from "./helpers/cli.js";
import { fakeEmbedding } from "./helpers/fake-openai-server.js";
import { type TinyLlamaOptions, writeTinyLlamaGguf } from "./helpers/tiny-llama.js";

export const DIM = 8;

/** The texts of request `index` in the tests: distinct, so their features differ. */
export function sampleText(index: number): string {
  return `The quick brown fox number ${index} jumps over ${index % 7} lazy dogs.`;
}

function linearHead(kind: "ridge" | "logistic", weights: number[], bias: number): ProbeModel {
  return {
    format: 1,
    kind,
    dim: DIM,
    mean: new Array(DIM).fill(0),
    std: new Array(DIM).fill(1),
    weights,
    bias,
    lambda: 1,
  };
}

/** 101 quantiles (type 7) of the scores. */
function quantiles101(scores: Float64Array): number[] {
  const sorted = Array.from(scores).sort((a, b) => a - b);
  return Array.from({ length: 101 }, (_, percent) => {
    const position = (percent / 100) * (sorted.length - 1);
    const lower = Math.floor(position);
    const upper = Math.min(lower + 1, sorted.length - 1);
    return sorted[lower]! + (position - lower) * (sorted[upper]! - sorted[lower]!);
  });
}

/**
 * A router for a remote small model at `smallUrl` (fake engine, model `small`): its features are
 * the fake embeddings of prompts rendered with the default template. The heads' score quantiles are
 * measured on `sampleText(0..quantileSamples-1)` from English into German.
 */
export function remoteRouter(
  smallUrl: string,
  options: { fingerprint?: string; quantileSamples?: number; withGuards?: boolean } = {},
): RouterFile {
  const samples = options.quantileSamples ?? 2000;
  const features = new Float32Array(samples * DIM);
  for (let index = 0; index < samples; index++) {
    const prompt = renderPrompt(defaultPromptTemplate, {
      srcLang: "en",
      tgtLang: "de",
      text: sampleText(index),
    });
    features.set(fakeEmbedding(prompt, DIM), index * DIM);
  }
  const models: Partial<Record<HeadName, ProbeModel>> = {
    gain: linearHead("ridge", [3, -2, 1, 0.5, 0, 0, 0, 0], 1),
  };
  if (options.withGuards) {
    models.quality = linearHead("ridge", [0, 0, 0, 0, 2, 1, 0, 0], 50);
    models.risk = linearHead("logistic", [0, 0, 0, 0, 0, 0, 4, -4], -1);
  }
  const heads: Partial<Record<HeadName, RouterHead>> = {};
  for (const [name, model] of Object.entries(models) as [HeadName, ProbeModel][]) {
    heads[name] = {
      model,
      report: {
        target: name,
        probe: model.kind === "logistic" ? "logistic" : "ridge",
        folds: 5,
        n: samples,
        cv_spearman: null,
        cv_pearson: null,
        cv_spearman_gain: null,
        cv_mse: null,
        lambda: 1,
      },
      score_quantiles: quantiles101(predictRows(model, features, samples)),
      ...(name === "risk" ? { delta: 2 } : {}),
    };
  }
  return {
    format: 1,
    routelmt_version: "test",
    created: new Date(0).toISOString(),
    label_metric: "chrf",
    label_signature: null,
    label_higher_is_better: true,
    feature: {
      fingerprint: options.fingerprint ?? `remote:${smallUrl}#small`,
      arch: "remote",
      layer: "final",
      dim: DIM,
      template: defaultPromptTemplate.text,
      spec: `openai:${smallUrl}#small`,
    },
    src_lang: "en",
    tgt_lang: "de",
    language_pairs: [["en", "de"]],
    training: { n: samples, datasets: ["synthetic"], seed: 0, folds: 5 },
    heads,
  };
}

/** A generated tiny llama GGUF and a router fitted to the features of its own prefills. */
export interface TinyGgufFixture {
  modelPath: string;
  routerFile: string;
  /** The router's gain prediction for sampleText(0..count-1), en → de, read offline. */
  offlineGains: number[];
}

/**
 * Writes a tiny llama GGUF (dimension 64, context 256 unless `model` says otherwise) into `directory`
 * and a router for it: a gain
 * head with fixed weights whose score quantiles are those of sampleText(0..count-1), read through
 * the model's own prefill ("collect") under the default template.
 */
export async function tinyGgufWithRouter(
  directory: string,
  count: number,
  model: Partial<TinyLlamaOptions> = {},
): Promise<TinyGgufFixture> {
  const modelPath = path.join(
    directory,
    `tiny-llama-${model.name ?? "default"}-${model.contextLength ?? "default"}.gguf`,
  );
  writeTinyLlamaGguf(modelPath, model);
  const requests = Array.from({ length: count }, (_, index) => ({
    text: sampleText(index),
    srcLang: "en",
    tgtLang: "de",
  }));
  const collector = await LlamaTranslator.create({ modelPath, threads: 1, sequences: 1, maxTokens: 4 });
  const dim = collector.featureIdentity.dim;
  const features = new Float32Array(requests.length * dim);
  for (const [row, request] of requests.entries()) {
    const prefilled = await collector.prefill(request);
    features.set(prefilled.features, row * dim);
    await prefilled.release();
  }
  const identity = collector.featureIdentity;
  await collector.dispose();
  const router = remoteRouter("unused");
  router.feature = {
    ...router.feature,
    fingerprint: identity.fingerprint,
    arch: identity.arch,
    dim,
    template: defaultPromptTemplate.text,
  };
  const head = router.heads.gain!;
  head.model = {
    format: 1,
    kind: "ridge",
    dim,
    mean: new Array(dim).fill(0),
    std: new Array(dim).fill(1),
    weights: Array.from({ length: dim }, (_, index) => Math.sin(index + 1)),
    bias: 0,
    lambda: 1,
  };
  const offlineGains = Array.from(predictHeads(router, features, requests.length).gain!);
  const sorted = [...offlineGains].sort((a, b) => a - b);
  head.score_quantiles = Array.from(
    { length: 101 },
    (_, percent) => sorted[Math.round((percent / 100) * (sorted.length - 1))]!,
  );
  const routerFile = await writeRouter(
    directory,
    router,
    `gguf-router-${model.name ?? "default"}-${model.contextLength ?? "default"}.json`,
  );
  return { modelPath, routerFile, offlineGains };
}

export async function writeRouter(
  directory: string,
  router: RouterFile,
  name = "router.json",
): Promise<string> {
  const file = path.join(directory, name);
  await writeFile(file, JSON.stringify(router));
  return file;
}

/** A validated server config for fake engines, with quiet logs unless overridden. */
export function fakeServerConfig(
  smallUrl: string,
  largeUrl: string,
  routerFile: string,
  overrides: Record<string, unknown> = {},
): ServerConfig {
  return resolveServerConfig(
    {},
    {
      small: `openai:${smallUrl}#small`,
      large: `openai:${largeUrl}#large`,
      router: routerFile,
      budget: 0.2,
      port: 0,
      "small-dim": DIM,
      "log-level": "silent",
      "large-retries": 0,
      "small-retries": 0,
      "readiness-cache-ms": 0,
      "small-concurrency": 64,
      "large-concurrency": 64,
      ...overrides,
    },
  );
}

/** Runs `count` tasks with at most `concurrency` at once; results in task order. */
export async function runConcurrently<T>(
  count: number,
  concurrency: number,
  task: (index: number) => Promise<T>,
): Promise<T[]> {
  const results = new Array<T>(count);
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const index = next++;
      results[index] = await task(index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return results;
}

/** POSTs JSON and returns status, headers and parsed body. */
export async function postJson(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Headers; body: Record<string, unknown> }> {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" || body instanceof Uint8Array ? body : JSON.stringify(body),
  });
  const text = await response.text();
  return {
    status: response.status,
    headers: response.headers,
    body: text ? (JSON.parse(text) as Record<string, unknown>) : {},
  };
}

/** A `routelmt serve` child process on a free port, with what it printed so far. */
export interface ServeProcess {
  child: ReturnType<typeof spawnCli>;
  origin: string;
  output: { stdout: string; stderr: string };
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
}

/**
 * Starts `routelmt serve` on fake engines (`--port 0`, `--small-dim 8`) with `extra` flags and
 * environment variables; resolves once it prints the address it listens on.
 */
export async function startServeProcess(
  smallUrl: string,
  largeUrl: string,
  routerFile: string,
  extra: string[],
  environment: Record<string, string> = {},
): Promise<ServeProcess> {
  const child = spawnCli(
    [
      "serve",
      "--small",
      `openai:${smallUrl}#small`,
      "--small-dim",
      "8",
      "--large",
      `openai:${largeUrl}#large`,
      "--router",
      routerFile,
      "--port",
      "0",
      ...extra,
    ],
    environment,
  );
  const output = { stdout: "", stderr: "" };
  child.stderr.on("data", (chunk: Buffer) => {
    output.stderr += chunk.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  const origin = await new Promise<string>((resolve, reject) => {
    child.stdout.on("data", (chunk: Buffer) => {
      output.stdout += chunk.toString();
      const match = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(output.stdout);
      if (match) resolve(match[1]!);
    });
    child.on("exit", () => reject(new Error(`serve exited early: ${output.stderr}`)));
  });
  return { child, origin, output, exited };
}
