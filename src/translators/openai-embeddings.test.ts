import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  type FakeOpenAIServer,
  fakeEmbedding,
  startFakeOpenAIServer,
} from "../../test/helpers/fake-openai-server.js";
import { EngineCallError, UnsupportedError, UsageError } from "../errors/index.js";
import { DEFAULT_INSTRUCTION_TEMPLATE } from "./openai-compatible.js";
import { OpenAIProbedTranslator } from "./openai-embeddings.js";

const request = { text: "Good morning", srcLang: "en", tgtLang: "fr" };
const renderedPrompt =
  "Translate the following text from en into fr. Reply with the translation only.\n\nGood morning";

let server: FakeOpenAIServer;
beforeAll(async () => {
  server = await startFakeOpenAIServer({ label: "small", embeddingDim: 6 });
});
afterAll(async () => {
  await server.close();
});
beforeEach(() => {
  server.setBehaviour({ kind: "succeed" });
});

describe("OpenAIProbedTranslator", () => {
  it("builds its feature identity from the options", () => {
    const translator = new OpenAIProbedTranslator("small", { baseURL: `${server.url}/`, dim: 6 });
    expect(translator.featureIdentity).toEqual({
      fingerprint: `remote:${server.url}#small`,
      arch: "remote",
      layer: "last:final",
      dim: 6,
      template: DEFAULT_INSTRUCTION_TEMPLATE,
      views: [{ name: "last:final", pooling: "last", layer: "final", dim: 6, offset: 0 }],
    });
    expect(
      new OpenAIProbedTranslator("small", { baseURL: server.url, dim: 6, layer: "final" }).featureIdentity
        .layer,
    ).toBe("last:final");
    const custom = new OpenAIProbedTranslator("small", {
      baseURL: server.url,
      dim: 6,
      fingerprint: "sha256:abc",
      arch: "qwen2",
      template: "{srcLang}>{tgtLang}: {text}",
    });
    expect(custom.featureIdentity).toMatchObject({
      fingerprint: "sha256:abc",
      arch: "qwen2",
      template: "{srcLang}>{tgtLang}: {text}",
    });
  });

  it("refuses views other than last:final: the server pools only the last token's final state", () => {
    for (const layer of ["mean:final", "8", "last:8,final"]) {
      expect(() => new OpenAIProbedTranslator("small", { baseURL: server.url, dim: 6, layer })).toThrow(
        UnsupportedError,
      );
    }
  });

  it("reads features from the embeddings endpoint, then decodes through chat completions", async () => {
    const translator = new OpenAIProbedTranslator("small", {
      baseURL: server.url,
      dim: 6,
      retryBaseDelayMs: 5,
    });
    const prefilled = await translator.prefill(request);
    expect(Array.from(prefilled.features)).toEqual(
      Array.from(Float32Array.from(fakeEmbedding(renderedPrompt, 6))),
    );
    expect(prefilled.entropy).toBeNull();
    expect(prefilled.promptTokens).toBe(15);
    expect(server.requests[0]).toMatchObject({
      path: "/v1/embeddings",
      body: { model: "small", input: renderedPrompt, embd_normalize: -1, encoding_format: "base64" },
    });

    const translation = await prefilled.continue({ maxTokens: 64 });
    expect(translation).toMatchObject({ text: "[small] Good morning", model: "small", finishReason: "stop" });
    expect(server.requests[1]).toMatchObject({
      path: "/v1/chat/completions",
      body: { max_tokens: 64, temperature: 0, messages: [{ role: "user", content: renderedPrompt }] },
    });
    await expect(prefilled.continue()).rejects.toBeInstanceOf(UsageError);
  });

  it("can decode the exact rendered prompt through /completions", async () => {
    const translator = new OpenAIProbedTranslator("small", {
      baseURL: server.url,
      dim: 6,
      api: "completions",
      renderPrompt: (r) => `<|user|>${r.srcLang}-${r.tgtLang}\n\n${r.text}<|assistant|>`,
    });
    const prefilled = await translator.prefill(request);
    const translation = await prefilled.continue();
    expect(translation.text).toBe("[small] Good morning<|assistant|>");
    expect(server.requests[1]).toMatchObject({
      path: "/v1/completions",
      body: { prompt: "<|user|>en-fr\n\nGood morning<|assistant|>", seed: 0, top_p: 1 },
    });
  });

  it("release is idempotent and forbids a later continue", async () => {
    const translator = new OpenAIProbedTranslator("small", { baseURL: server.url, dim: 6 });
    const prefilled = await translator.prefill(request);
    await prefilled.release();
    await prefilled.release();
    await expect(prefilled.continue()).rejects.toThrow(/continue\(\) after release\(\)/);
    expect(server.requests).toHaveLength(1);
  });

  it("rejects features of the wrong size and per-token embeddings", async () => {
    const wrongDim = new OpenAIProbedTranslator("small", { baseURL: server.url, dim: 4 });
    await expect(wrongDim.prefill(request)).rejects.toThrow(/has 6 values, expected dim 4/);

    server.setBehaviour({ kind: "json", body: { data: [{ embedding: [[0.1, 0.2]] }] } });
    const translator = new OpenAIProbedTranslator("small", { baseURL: server.url, dim: 6 });
    const error = await translator.prefill(request).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(EngineCallError);
    expect((error as Error).message).toContain("--pooling last");
  });

  it("retries the embeddings call like any other", async () => {
    server.setBehaviour([{ kind: "fail", status: 503 }, { kind: "succeed" }]);
    const translator = new OpenAIProbedTranslator("small", {
      baseURL: server.url,
      dim: 6,
      retryBaseDelayMs: 5,
    });
    const prefilled = await translator.prefill(request);
    expect(prefilled.features).toHaveLength(6);
    expect(server.requests).toHaveLength(2);
  });

  it("reads base64 and JSON-number embeddings alike, and asks for numbers once a server refuses base64", async () => {
    const viaNumbers = new OpenAIProbedTranslator("small", { baseURL: server.url, dim: 6 });
    // A server that does not know the encoding: 400 for base64, numbers otherwise.
    server.setBehaviour((incoming) =>
      (incoming.body as { encoding_format?: string }).encoding_format === "base64"
        ? { kind: "fail", status: 400, body: '{"error":{"message":"unknown encoding_format"}}' }
        : { kind: "succeed" },
    );
    const first = await viaNumbers.prefill(request);
    const second = await viaNumbers.prefill(request);
    expect(server.requests.map((r) => (r.body as { encoding_format?: string }).encoding_format)).toEqual([
      "base64",
      undefined,
      undefined,
    ]);
    server.setBehaviour({ kind: "succeed" });
    const viaBase64 = await new OpenAIProbedTranslator("small", { baseURL: server.url, dim: 6 }).prefill(
      request,
    );
    expect(Array.from(viaBase64.features)).toEqual(Array.from(first.features));
    expect(Array.from(second.features)).toEqual(Array.from(first.features));
  });

  it("rejects a base64 embedding of the wrong size", async () => {
    const translator = new OpenAIProbedTranslator("small", { baseURL: server.url, dim: 6 });
    const fiveFloats = Buffer.from(new Float32Array(5).buffer).toString("base64");
    server.setBehaviour({ kind: "json", body: { data: [{ embedding: fiveFloats }] } });
    await expect(translator.prefill(request)).rejects.toThrow(/has 5 values, expected dim 6/);
    server.setBehaviour({
      kind: "json",
      body: { data: [{ embedding: Buffer.from([1, 2, 3]).toString("base64") }] },
    });
    await expect(translator.prefill(request)).rejects.toThrow(
      /a base64 embedding that is not float32 values/,
    );
  });

  it("rejects a bad dim", () => {
    expect(() => new OpenAIProbedTranslator("small", { baseURL: server.url, dim: 0 })).toThrow(UsageError);
  });
});
