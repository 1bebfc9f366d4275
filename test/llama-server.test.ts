/**
 * The `openai:` engines against llama.cpp's real server (built from the llama.cpp source
 * node-llama-cpp ships, by scripts/build-llama-server.sh), on the tinymt pair from ../shared: a base
 * model through `/v1/completions`, the remote small model's features through `/v1/embeddings` with
 * last-token pooling, and parallel server slots. Every translation is compared exactly.
 */
import { readFile } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openProbedTranslator, openTranslator } from "../src/translators/open.js";
import { decodeBase64Floats } from "../src/translators/openai-embeddings.js";
import { loadPromptTemplate, type PromptTemplate } from "../src/translators/prompt-template.js";
import type { Translation, TranslationRequest, Translator } from "../src/translators/types.js";
import {
  type LlamaServer,
  llamaServerBinary,
  llamaServerSkipReason,
  startLlamaServer,
} from "./helpers/llama-server.js";
import { hasShared, sharedPath, sharedSkipReason } from "./helpers/shared.js";

const sharedAvailable = hasShared(
  ["models", "tinymt-small.gguf"],
  ["models", "tinymt-large.gguf"],
  ["models", "tinymt.template"],
  ["data", "multi30k-en-de", "val.jsonl"],
);
const serverAvailable = llamaServerBinary() !== null;
const skipReason = !serverAvailable
  ? llamaServerSkipReason("the llama-server tests")
  : !sharedAvailable
    ? sharedSkipReason("the llama-server tests")
    : "";
const MAX_TOKENS = 64;
/** Sentences compared between the remote and the in-process engines. */
const COMPARED = 60;
/** Sentences of the parallel-slots check. */
const PARALLEL_SENTENCES = 200;

let template: PromptTemplate;
let requests: TranslationRequest[];
const servers: LlamaServer[] = [];
const engines: Translator[] = [];

async function valRequests(count: number): Promise<TranslationRequest[]> {
  const lines = (await readFile(sharedPath("data", "multi30k-en-de", "val.jsonl"), "utf8"))
    .split("\n")
    .filter(Boolean)
    .slice(0, count);
  return lines.map((line) => {
    const record = JSON.parse(line) as { id: string; src: string };
    return { id: record.id, text: record.src, srcLang: "en", tgtLang: "de" };
  });
}

async function server(options: Parameters<typeof startLlamaServer>[0]): Promise<LlamaServer> {
  const started = await startLlamaServer(options);
  servers.push(started);
  return started;
}

function track<T extends Translator>(engine: T): T {
  engines.push(engine);
  return engine;
}

/** Translates one request at a time, in order. */
async function oneAtATime(engine: Translator, batch: TranslationRequest[]): Promise<Translation[]> {
  const results: Translation[] = [];
  for (const request of batch)
    results.push(...(await engine.translate([request], { maxTokens: MAX_TOKENS })));
  return results;
}

describe.skipIf(skipReason !== "")(`openai: engines on llama.cpp's server ${skipReason}`, () => {
  beforeAll(async () => {
    template = await loadPromptTemplate(sharedPath("models", "tinymt.template"));
    requests = await valRequests(PARALLEL_SENTENCES);
  });

  afterAll(async () => {
    await Promise.all(engines.map((engine) => engine.dispose()));
    await Promise.all(servers.map((started) => started.stop()));
  });

  it("translates with a base model through /v1/completions exactly as in-process, with its token counts", async () => {
    const largeModel = sharedPath("models", "tinymt-large.gguf");
    const remote = await server({ model: largeModel });
    const options = { threads: 1, template, concurrency: 1, maxTokens: MAX_TOKENS };
    const local = track(await openTranslator(largeModel, options));
    const viaCompletions = track(
      await openTranslator(`openai+completions:${remote.url}#tinymt-large`, options),
    );
    const batch = requests.slice(0, COMPARED);
    const expected = await oneAtATime(local, batch);
    const got = await oneAtATime(viaCompletions, batch);
    expect(got.map((translation) => translation.text)).toEqual(
      expected.map((translation) => translation.text),
    );
    // The server counts the same prompt tokens (BOS included); its completion tokens include the
    // end-of-sequence token it generated, which the in-process engine does not count.
    expect(got.map((translation) => translation.promptTokens)).toEqual(
      expected.map((translation) => translation.promptTokens),
    );
    expect(got.every((translation) => translation.finishReason === "stop")).toBe(true);
    expect(got.map((translation) => translation.outputTokens)).toEqual(
      expected.map((translation) => translation.outputTokens! + 1),
    );
    expect(expected.filter((translation) => translation.text.length > 0).length).toBe(COMPARED);
  });

  it("reads the remote small model's features from /v1/embeddings and decodes it through /v1/completions", async () => {
    const smallModel = sharedPath("models", "tinymt-small.gguf");
    const remote = await server({ model: smallModel, embeddingsPooling: "last" });
    const options = { threads: 1, template, concurrency: 1, maxTokens: MAX_TOKENS };
    const local = track(await openProbedTranslator(smallModel, options));
    const viaServer = track(
      await openProbedTranslator(`openai:${remote.url}#tinymt-small`, { ...options, remoteDim: 128 }),
    );
    let largestDifference = 0;
    let largestConfidenceDifference = 0;
    for (const request of requests.slice(0, COMPARED)) {
      const expected = await local.prefill(request);
      const got = await viaServer.prefill(request);
      expect(got.features.length).toBe(expected.features.length);
      for (let index = 0; index < got.features.length; index++) {
        largestDifference = Math.max(
          largestDifference,
          Math.abs(got.features[index]! - expected.features[index]!),
        );
      }
      expect(got.promptTokens).toBe(expected.promptTokens);
      // With the confidence the post-hoc guard ranks by: the server's token log-probabilities.
      const [expectedText, gotText] = [
        await expected.continue({ maxTokens: MAX_TOKENS, confidence: true }),
        await got.continue({ maxTokens: MAX_TOKENS, confidence: true }),
      ];
      expect(gotText.text, request.id).toBe(expectedText.text);
      expect(gotText.meanLogProbability, request.id).toEqual(expect.any(Number));
      largestConfidenceDifference = Math.max(
        largestConfidenceDifference,
        Math.abs(gotText.meanLogProbability! - expectedText.meanLogProbability!),
      );
    }
    // Both read the final normed state at the last prompt token; the f16 KV caches differ in rounding.
    expect(largestDifference).toBeLessThan(1e-2);
    expect(largestDifference).toBeGreaterThan(0);
    // The same mean over the same tokens, the end token included.
    expect(largestConfidenceDifference).toBeLessThan(1e-3);
  });

  it("sends an embedding as base64 float32 exactly as it sends it in JSON numbers", async () => {
    const remote = await server({
      model: sharedPath("models", "tinymt-small.gguf"),
      embeddingsPooling: "last",
    });
    const embedding = async (input: string, encoding?: "base64") => {
      const answer = await fetch(`${remote.url}/embeddings`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          input,
          embd_normalize: -1,
          ...(encoding ? { encoding_format: encoding } : {}),
        }),
      });
      expect(answer.status).toBe(200);
      return ((await answer.json()) as { data: { embedding: number[] | string }[] }).data[0]!.embedding;
    };
    for (const request of requests.slice(0, 8)) {
      // The server's first evaluation of a prompt and its later ones (its prompt cache then holds all
      // but the last token) round differently; compare two answers from the same state.
      await embedding(request.text);
      const numbers = await embedding(request.text);
      const base64 = await embedding(request.text, "base64");
      expect(typeof base64).toBe("string");
      expect(Array.from(decodeBase64Floats(base64 as string)!)).toEqual(
        Array.from(Float32Array.from(numbers as number[])),
      );
    }
  });

  it("decodes 8 requests at once on 8 slots exactly as one at a time", async () => {
    const largeModel = sharedPath("models", "tinymt-large.gguf");
    const [single, parallel] = await Promise.all([
      server({ model: largeModel, parallel: 1 }),
      server({ model: largeModel, parallel: 8 }),
    ]);
    const options = { threads: 1, template, maxTokens: MAX_TOKENS };
    const sequential = track(
      await openTranslator(`openai+completions:${single.url}#tinymt-large`, { ...options, concurrency: 1 }),
    );
    const concurrent = track(
      await openTranslator(`openai+completions:${parallel.url}#tinymt-large`, { ...options, concurrency: 8 }),
    );
    const expected = await oneAtATime(sequential, requests);
    const got = await concurrent.translate(requests, { maxTokens: MAX_TOKENS });
    const identical = got.filter((translation, index) => translation.text === expected[index]!.text).length;
    expect(identical).toBe(PARALLEL_SENTENCES);
  });
});
