/**
 * `routelmt serve` as a command: config validation, router/small-model mismatch, SIGTERM drain in a
 * child process, and the in-process GGUF small model (generated tiny llama, one thread).
 */
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type GainRestack, type PosthocObservation, restackScore } from "../src/probe/gain-restack.js";
import { PROBE_MODEL_FORMAT } from "../src/probe/probe-model.js";
import { buildApp } from "../src/server/app.js";
import { readConfigFile, resolveServerConfig } from "../src/server/config.js";
import { serverErrorBodySchema } from "../src/server/errors.js";
import { LlamaFfiTranslator } from "../src/translators/llama-ffi-translator.js";
import { LlamaTranslator } from "../src/translators/llama-translator.js";
import { runCliCaptured } from "./helpers/cli.js";
import { type FakeOpenAIServer, startFakeOpenAIServer } from "./helpers/fake-openai-server.js";
import { writeTinyLlamaGguf } from "./helpers/tiny-llama.js";
import {
  postJson,
  remoteRouter,
  sampleText,
  startServeProcess,
  tinyGgufWithRouter,
  writeRouter,
} from "./server-fixtures.js";

let work: string;
let small: FakeOpenAIServer;
let large: FakeOpenAIServer;
let routerFile: string;

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), "routelmt-serve-cli-"));
  small = await startFakeOpenAIServer({ label: "small", models: ["small"], embeddingDim: 8 });
  large = await startFakeOpenAIServer({ label: "large", models: ["large"] });
  routerFile = await writeRouter(work, remoteRouter(small.url));
});

afterAll(async () => {
  await small.close();
  await large.close();
});

describe("routelmt serve: configuration", () => {
  it("names the offending key of a config file, and flags override the file", async () => {
    const write = async (name: string, text: string) => {
      const file = path.join(work, name);
      await writeFile(file, text);
      return file;
    };
    const base = `small: openai:${small.url}#small\nlarge: openai:${large.url}#large\nrouter: ${routerFile}\nsmall-dim: 8\n`;
    const outOfRange = await write("range.yaml", `${base}budget: 1.5\n`);
    const run = await runCliCaptured(["serve", "--config", outOfRange]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/range\.yaml: budget: must be in \[0, 1\]/);

    const typo = await write("typo.yaml", `${base}budget: 0.2\nbudgte: 0.3\n`);
    expect((await runCliCaptured(["serve", "--config", typo])).stderr).toMatch(
      /typo\.yaml: budgte: unknown setting/,
    );

    const wrongType = await write(
      "type.json",
      JSON.stringify({ small: "a.gguf", large: "b.gguf", router: "r.json", budget: 0.2, window: "big" }),
    );
    expect((await runCliCaptured(["serve", "--config", wrongType])).stderr).toMatch(/type\.json: window: /);

    const missing = await write("missing.yaml", "budget: 0.2\nsmall: a.gguf\nlarge: b.gguf\n");
    expect((await runCliCaptured(["serve", "--config", missing])).stderr).toMatch(
      /missing\.yaml: router: is required/,
    );

    const badPolicy = await runCliCaptured([
      "serve",
      "--config",
      outOfRange,
      "--budget",
      "0.2",
      "--policy",
      "greedy",
    ]);
    expect(badPolicy.code).toBe(2);
    expect(badPolicy.stderr).toMatch(/--policy: /);

    const broken = await write("broken.yaml", "budget: [0.2\n");
    expect((await runCliCaptured(["serve", "--config", broken])).stderr).toMatch(
      /broken\.yaml: not valid YAML/,
    );

    // The flag overrides the file's bad budget, and relative paths in the file resolve against its folder.
    const config = resolveServerConfig(
      { budget: 1.5, router: "r.json" },
      { budget: 0.25, small: "s.gguf", large: "l.gguf" },
      "x.yaml",
    );
    expect(config.budget).toBe(0.25);
    expect(config.window).toBe(1000);
    expect(config.maxTextBytes).toBe(16_384);
    expect(config.featureEngine).toBe("auto");
    expect(
      resolveServerConfig(
        { "feature-engine": "llama" },
        { budget: 0.2, small: "s.gguf", large: "l.gguf", router: "r.json" },
      ).featureEngine,
    ).toBe("llama");

    const badEngine = await write("engine.yaml", `${base}budget: 0.2\nfeature-engine: cuda\n`);
    const badEngineRun = await runCliCaptured(["serve", "--config", badEngine]);
    expect(badEngineRun.code).toBe(2);
    expect(badEngineRun.stderr).toMatch(/engine\.yaml: feature-engine: /);
  });

  it("refuses to start with a router trained on another small model", async () => {
    const foreign = await writeRouter(
      work,
      remoteRouter(small.url, { fingerprint: "sha256:another-model" }),
      "foreign.json",
    );
    const run = await runCliCaptured([
      "serve",
      "--small",
      `openai:${small.url}#small`,
      "--small-dim",
      "8",
      "--large",
      `openai:${large.url}#large`,
      "--router",
      foreign,
      "--budget",
      "0.2",
      "--port",
      "0",
    ]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(
      /the router does not match the small model .*small-model fingerprint: router "sha256:another-model"/,
    );
    const wrongDim = await runCliCaptured([
      "serve",
      "--small",
      `openai:${small.url}#small`,
      "--small-dim",
      "16",
      "--large",
      `openai:${large.url}#large`,
      "--router",
      routerFile,
      "--budget",
      "0.2",
    ]);
    expect(wrongDim.stderr).toMatch(/feature dim: router 8, the small model .* 16/);
  });
});

describe("routelmt serve: API keys from the config and the environment", () => {
  it("accepts api-key in the config file and names a bad one without quoting it", async () => {
    const write = async (name: string, text: string) => {
      const file = path.join(work, name);
      await writeFile(file, text);
      return file;
    };
    const base = `small: openai:${small.url}#small\nlarge: openai:${large.url}#large\nrouter: ${routerFile}\nsmall-dim: 8\nbudget: 0.2\n`;
    const good = await write("keys.yaml", `${base}api-key: [config-key-one, config-key-two]\n`);
    const config = resolveServerConfig(await readConfigFile(good), {}, good, {
      ROUTELMT_SERVER_API_KEY: "environment-key",
    });
    expect(config.apiKeys.reveal()).toEqual(["config-key-one", "config-key-two", "environment-key"]);
    // The settings never show the keys when logged or printed.
    expect(JSON.stringify(config)).not.toContain("key-one");
    expect(String(config.apiKeys)).toBe("[3 API keys, redacted]");
    // ROUTELMT_API_KEY is the key for the engines, not for clients.
    expect(
      resolveServerConfig(
        {},
        { small: "s.gguf", large: "l.gguf", router: "r.json", budget: 0.2 },
        undefined,
        {
          ROUTELMT_API_KEY: "outbound",
        },
      ).apiKeys.count,
    ).toBe(0);

    const cases: [string, string, RegExp][] = [
      ["spaced.yaml", `${base}api-key: "leaky secret-value-1"\n`, /spaced\.yaml: api-key: must be one key/],
      ["typed.yaml", `${base}api-key: 12345678\n`, /typed\.yaml: api-key: must be one key/],
      [
        "camel.yaml",
        `${base}apiKey: secret-value-2\n`,
        /camel\.yaml: apiKey: unknown setting \(did you mean api-key\?\)/,
      ],
      ["syntax.yaml", `${base}api-key: secret-value-3: {\n`, /syntax\.yaml: not valid YAML/],
      ["syntax.json", `{"budget": 0.2, "api-key": secret-value-4}`, /syntax\.json: not valid JSON/],
      ["quoted.json", `{"api-key": "secret-value-5" "budget": 0.2}`, /quoted\.json: not valid JSON/],
    ];
    for (const [name, text, expected] of cases) {
      const run = await runCliCaptured(["serve", "--config", await write(name, text)]);
      expect(run.code).toBe(2);
      expect(run.stderr).toMatch(expected);
      expect(run.stderr).not.toMatch(/secret-value|leaky/);
    }
    const goodValues = await readConfigFile(good);
    expect(() =>
      resolveServerConfig(goodValues, {}, good, { ROUTELMT_SERVER_API_KEY: "two secret-words" }),
    ).toThrow(/^ROUTELMT_SERVER_API_KEY: must be one key without spaces or line breaks$/);
  });

  it("requires a key from ROUTELMT_SERVER_API_KEY or the config file in a serve process", async () => {
    const configFile = path.join(work, "serve-keys.yaml");
    await writeFile(configFile, "api-key: config-file-key\n");
    const { child, origin, output, exited } = await startServeProcess(
      small.url,
      large.url,
      routerFile,
      ["--config", configFile, "--budget", "0.2", "--log-level", "trace"],
      { ROUTELMT_SERVER_API_KEY: "environment-key" },
    );
    try {
      expect(output.stdout).toMatch(/API keys: 2/);
      const url = `${origin}/v1/translate`;
      expect((await postJson(url, { text: "hi" })).status).toBe(401);
      expect((await postJson(url, { text: "hi" }, { authorization: "Bearer wrong-key" })).status).toBe(401);
      expect((await postJson(url, { text: "hi" }, { authorization: "Bearer environment-key" })).status).toBe(
        200,
      );
      expect((await postJson(url, { text: "hi" }, { authorization: "Bearer config-file-key" })).status).toBe(
        200,
      );
      child.kill("SIGTERM");
      expect(await exited).toBe(0);
      // Trace-level logs included: neither key appears anywhere the process wrote.
      expect(output.stdout).toMatch(/"msg":"request"/);
      expect(`${output.stdout}${output.stderr}`).not.toMatch(/environment-key|config-file-key/);
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
    }
  });
});

describe("routelmt serve: process", () => {
  it("drains in-flight requests on SIGTERM and exits 0", async () => {
    large.setBehaviour({ kind: "succeed", delayMs: 700 });
    const { child, origin, output, exited } = await startServeProcess(small.url, large.url, routerFile, [
      "--budget",
      "1",
      "--log-level",
      "warn",
    ]);
    try {
      const inFlight = Array.from({ length: 4 }, (_, index) =>
        postJson(`${origin}/v1/translate`, { text: sampleText(index) }),
      );
      // Let the requests reach the (slow) large engine, then ask the server to stop.
      while (large.inFlight < 4) await new Promise((resolve) => setTimeout(resolve, 20));
      child.kill("SIGTERM");
      const answers = await Promise.all(inFlight);
      expect(answers.map((answer) => answer.status)).toEqual([200, 200, 200, 200]);
      expect(answers.map((answer) => answer.body.model)).toEqual(["large", "large", "large", "large"]);
      expect(await exited).toBe(0);
      expect(output.stderr).toMatch(/SIGTERM: finishing in-flight requests/);
      await expect(fetch(`${origin}/healthz`)).rejects.toThrow();
    } finally {
      large.setBehaviour({ kind: "succeed" });
      if (child.exitCode === null) child.kill("SIGKILL");
    }
  });
});

describe("routelmt serve: shutdown deadline", () => {
  it("aborts engine calls still running at --shutdown-timeout-ms, answers them 503 and exits", async () => {
    // A large engine that answers in 20 s, far past the deadline.
    large.setBehaviour({ kind: "succeed", delayMs: 20_000 });
    const deadlineMs = 1500;
    const { child, origin, output, exited } = await startServeProcess(small.url, large.url, routerFile, [
      "--budget",
      "1",
      "--large-timeout-ms",
      "60000",
      "--shutdown-timeout-ms",
      String(deadlineMs),
      "--log-level",
      "warn",
    ]);
    try {
      const inFlight = Array.from({ length: 3 }, (_, index) =>
        postJson(`${origin}/v1/translate`, { text: sampleText(index) }),
      );
      while (large.inFlight < 3) await new Promise((resolve) => setTimeout(resolve, 20));
      const signalled = performance.now();
      child.kill("SIGTERM");
      const answers = await Promise.all(inFlight);
      const code = await exited;
      const exitMs = performance.now() - signalled;
      expect(code).toBe(0);
      expect(exitMs).toBeGreaterThanOrEqual(deadlineMs - 50);
      // The answers leave 250 ms after the deadline; the rest is process teardown on a busy machine.
      expect(exitMs).toBeLessThan(deadlineMs + 2000);
      for (const answer of answers) {
        expect(answer.status).toBe(503);
        expect(serverErrorBodySchema.parse(answer.body).error.code).toBe("RLMT_ERR_SHUTTING_DOWN");
        expect(answer.headers.get("retry-after")).toBe("1");
      }
      // The engine saw its connections go: nothing is left waiting on it.
      expect(large.inFlight).toBe(0);
      expect(output.stderr).toMatch(/shutdown deadline \(1500 ms\) passed: 3 requests answered 503/);
      expect(output.stderr).toMatch(/stopped/);
    } finally {
      large.setBehaviour({ kind: "succeed" });
      if (child.exitCode === null) child.kill("SIGKILL");
    }
  });
});

/** The in-process GGUF server of these tests: a tiny model, the fake large engine, one thread, 4 tokens. */
function ggufServerConfig(modelPath: string, router: string, settings: Record<string, unknown> = {}) {
  return resolveServerConfig(
    {},
    {
      small: modelPath,
      large: `openai:${large.url}#large`,
      router,
      budget: 0.25,
      port: 0,
      threads: 1,
      "small-concurrency": 2,
      "max-tokens": 4,
      "log-level": "silent",
      ...settings,
    },
  );
}

/** A post-hoc guard whose score quantiles are those of `adjusted` (the scores serve will rank by). */
function testQeGuard(adjusted: number[], fields: Record<string, unknown>): Record<string, unknown> {
  const sorted = [...adjusted].sort((a, b) => a - b);
  return {
    method: "qe-adjusted",
    rule: "test",
    tolerance: 0.05,
    severe_delta: 10,
    budgets: [0.25],
    grid: [],
    score_quantiles: Array.from(
      { length: 101 },
      (_, percent) => sorted[Math.round((percent / 100) * (sorted.length - 1))]!,
    ),
    ...fields,
  };
}

/**
 * A copy of `routerFile` with a post-hoc guard on `signal` (one value per gain) whose λ is large
 * enough for the signal to reorder the gains; returns the file and each text's adjusted score.
 */
async function withPostHocGuard(
  routerFile: string,
  name: string,
  gains: number[],
  signal: number[],
  signalName?: "large-likelihood",
): Promise<{ file: string; adjusted: number[] }> {
  const spread = (values: number[]) => Math.max(...values) - Math.min(...values);
  const lambda = (2 * spread(gains)) / spread(signal);
  const adjusted = gains.map((gain, index) => gain - lambda * signal[index]!);
  const router = JSON.parse(await readFile(routerFile, "utf8"));
  router.guard_qe = testQeGuard(adjusted, { lambda, ...(signalName ? { signal: signalName } : {}) });
  const file = path.join(work, name);
  await writeFile(file, JSON.stringify(router));
  return { file, adjusted };
}

/** Serves `texts` as one batch at budget 0.25: the top 3 by the adjusted score — not by gain — go large. */
async function expectAdjustedTopRoutedLarge(
  config: ReturnType<typeof ggufServerConfig>,
  texts: string[],
  adjusted: number[],
  gains: number[],
): Promise<void> {
  const app = await buildApp(config);
  try {
    const origin = await app.listen({ port: 0, host: "127.0.0.1" });
    const batch = await postJson(`${origin}/v1/translate`, { texts });
    expect(batch.status).toBe(200);
    const models = (batch.body.translations as { model: string }[]).map((item) => item.model);
    const byAdjusted = [...adjusted.keys()].sort((a, b) => adjusted[b]! - adjusted[a]!).slice(0, 3);
    const byGain = [...gains.keys()].sort((a, b) => gains[b]! - gains[a]!).slice(0, 3);
    expect(byAdjusted).not.toEqual(byGain);
    expect(models.filter((model) => model === "large")).toHaveLength(3);
    expect(byAdjusted.every((index) => models[index] === "large")).toBe(true);
  } finally {
    await app.close();
  }
}

describe("routelmt serve: in-process GGUF small model", () => {
  it("routes with features read during the small model's own prefill", async () => {
    const { modelPath, routerFile: ggufRouter, offlineGains: offline } = await tinyGgufWithRouter(work, 12);
    const app = await buildApp(ggufServerConfig(modelPath, ggufRouter));
    try {
      const origin = await app.listen({ port: 0, host: "127.0.0.1" });
      const batch = await postJson(`${origin}/v1/translate`, {
        texts: offline.map((_, index) => sampleText(index)),
      });
      expect(batch.status).toBe(200);
      const translations = batch.body.translations as {
        model: string;
        predicted_gain: number;
        translation: string;
      }[];
      // The server's gain predictions are the router applied to the model's own prefill features.
      for (const [index, item] of translations.entries()) {
        expect(item.predicted_gain).toBeCloseTo(offline[index]!, 3);
      }
      expect(translations.filter((item) => item.model === "large")).toHaveLength(3);
      const topThree = [...offline.keys()].sort((a, b) => offline[b]! - offline[a]!).slice(0, 3);
      expect(topThree.every((index) => translations[index]?.model === "large")).toBe(true);
      expect(
        translations
          .filter((item) => item.model === "small")
          .every((item) => typeof item.translation === "string"),
      ).toBe(true);
      expect((await fetch(`${origin}/readyz`)).status).toBe(200);
      // A text too long for the model's context is a 400 on the field it came from.
      const overflowing = Array.from({ length: 40 }, (_, index) => sampleText(index)).join(" ");
      const refusedBatch = await postJson(`${origin}/v1/translate`, { texts: ["Short.", overflowing] });
      expect(refusedBatch.status).toBe(400);
      expect(refusedBatch.body.error).toMatchObject({ code: "RLMT_ERR_INVALID_REQUEST", field: "texts.1" });
      const refusedChat = await postJson(`${origin}/v1/chat/completions`, {
        model: "routelmt",
        messages: [
          { role: "user", content: "earlier" },
          { role: "assistant", content: "reply" },
          { role: "user", content: overflowing },
        ],
      });
      expect(refusedChat.status).toBe(400);
      expect(refusedChat.body.error).toMatchObject({ field: "messages.2.content" });
      expect((await fetch(`${origin}/readyz`)).status).toBe(200);
    } finally {
      await app.close();
    }
    // The same router in front of another model file (same shape, other weights) is refused at start.
    const otherModel = path.join(work, "tiny-llama-other.gguf");
    writeTinyLlamaGguf(otherModel, { seed: 99, name: "another-tiny-llama" });
    await expect(buildApp(ggufServerConfig(otherModel, ggufRouter))).rejects.toThrow(
      /does not match the small model .*small-model fingerprint/,
    );
  });

  it("with guarded-qe decodes every text first and routes the top by gain − λ·the small model's confidence", async () => {
    const { modelPath, routerFile: ggufRouter, offlineGains } = await tinyGgufWithRouter(work, 12);
    const texts = offlineGains.map((_, index) => sampleText(index));
    // The small model's confidence in each translation, decoded alone, as serve will decode it.
    const reference = await LlamaFfiTranslator.create({ modelPath, threads: 1, maxTokens: 4 });
    const confidences: number[] = [];
    for (const text of texts) {
      const [translation] = await reference.translate([{ text, srcLang: "en", tgtLang: "de" }], {
        confidence: true,
      });
      confidences.push(translation!.meanLogProbability as number);
    }
    await reference.dispose();
    expect(confidences.every((value) => value < 0)).toBe(true);
    const { file: qeRouter, adjusted } = await withPostHocGuard(
      ggufRouter,
      "gguf-router-qe.json",
      offlineGains,
      confidences,
    );
    await expectAdjustedTopRoutedLarge(
      ggufServerConfig(modelPath, qeRouter, { policy: "guarded-qe" }),
      texts,
      adjusted,
      offlineGains,
    );
    // A router without the post-hoc guard cannot serve guarded-qe: refused at start, naming why.
    await expect(buildApp(ggufServerConfig(modelPath, ggufRouter, { policy: "guarded-qe" }))).rejects.toThrow(
      /policy guarded-qe needs a router with a post-hoc guard/,
    );
  });

  it("with guarded-qe on the re-estimated gain routes the top by the re-estimate of each served translation", async () => {
    const { modelPath, routerFile: ggufRouter, offlineGains } = await tinyGgufWithRouter(work, 12);
    const texts = offlineGains.map((_, index) => sampleText(index));
    // Each translation decoded alone, as serve will decode it: its confidence, prompt length and text.
    const reference = await LlamaFfiTranslator.create({ modelPath, threads: 1, maxTokens: 4 });
    const observations: PosthocObservation[] = [];
    for (const [index, text] of texts.entries()) {
      const [translation] = await reference.translate([{ text, srcLang: "en", tgtLang: "de" }], {
        confidence: true,
      });
      observations.push({
        gain: offlineGains[index]!,
        smallConfidence: translation!.meanLogProbability ?? null,
        largeLikelihood: null,
        promptTokens: translation!.promptTokens,
        src: text,
        small: translation!.text,
      });
    }
    await reference.dispose();
    // Weights that let the confidence and the length reorder the gains.
    const spread = (values: number[]) => Math.max(...values) - Math.min(...values) || 1;
    const confidences = observations.map((each) => each.smallConfidence as number);
    const restack: GainRestack = {
      inputs: ["gain", "small-confidence", "log-prompt-tokens", "length-ratio"],
      model: {
        format: PROBE_MODEL_FORMAT,
        kind: "ridge",
        dim: 4,
        mean: [0, 0, 0, 0],
        std: [1, 1, 1, 1],
        weights: [1, (-2 * spread(offlineGains)) / spread(confidences), 0.5, spread(offlineGains)],
        bias: 0,
        lambda: 1,
      },
    };
    const adjusted = observations.map((each) => restackScore(restack, each) as number);
    expect(adjusted.every(Number.isFinite)).toBe(true);
    const router = JSON.parse(await readFile(ggufRouter, "utf8"));
    router.guard_qe = testQeGuard(adjusted, { lambda: 0, restack });
    const qeRouter = path.join(work, "gguf-router-restack.json");
    await writeFile(qeRouter, JSON.stringify(router));
    await expectAdjustedTopRoutedLarge(
      ggufServerConfig(modelPath, qeRouter, { policy: "guarded-qe" }),
      texts,
      adjusted,
      offlineGains,
    );
  });

  it("with guarded-qe on the large model's likelihood routes the top by gain − λ·the in-process large model's score", async () => {
    const { modelPath, routerFile: ggufRouter, offlineGains } = await tinyGgufWithRouter(work, 12);
    const texts = offlineGains.map((_, index) => sampleText(index));
    const largePath = path.join(work, "likelihood-large.gguf");
    writeTinyLlamaGguf(largePath, { seed: 5 });
    // Each small translation as serve decodes it, and the large model's likelihood of it.
    const small = await LlamaFfiTranslator.create({ modelPath, threads: 1, maxTokens: 4 });
    const large = await LlamaTranslator.create({
      modelPath: largePath,
      threads: 1,
      maxTokens: 4,
      readsFeatures: false,
    });
    const likelihoods: number[] = [];
    for (const text of texts) {
      const request = { text, srcLang: "en", tgtLang: "de" };
      const [translation] = await small.translate([request]);
      likelihoods.push(await large.scoreTranslation(request, translation!.text));
    }
    await small.dispose();
    await large.dispose();
    const { file: qeRouter, adjusted } = await withPostHocGuard(
      ggufRouter,
      "gguf-router-likelihood.json",
      offlineGains,
      likelihoods,
      "large-likelihood",
    );
    await expectAdjustedTopRoutedLarge(
      ggufServerConfig(modelPath, qeRouter, { policy: "guarded-qe", large: largePath }),
      texts,
      adjusted,
      offlineGains,
    );
    // A remote large model cannot score a given text: refused at start, naming why.
    await expect(buildApp(ggufServerConfig(modelPath, qeRouter, { policy: "guarded-qe" }))).rejects.toThrow(
      /needs a large engine that scores a given text/,
    );
  });
});
