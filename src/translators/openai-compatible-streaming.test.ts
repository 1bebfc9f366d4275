import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type FakeOpenAIServer, startFakeOpenAIServer } from "../../test/helpers/fake-openai-server.js";
import { EngineCallError, EngineTimeoutError, UsageError } from "../errors/index.js";
import { OpenAICompatibleTranslator } from "./openai-compatible.js";
import { OpenAIProbedTranslator } from "./openai-embeddings.js";

const request = { text: "Guten Morgen allerseits", srcLang: "de", tgtLang: "en" };

let server: FakeOpenAIServer;
beforeAll(async () => {
  // Padded like real models' answers: a leading space token and a trailing newline.
  server = await startFakeOpenAIServer({
    models: ["large", "small"],
    padding: { leading: " ", trailing: "\n" },
  });
});
afterAll(async () => {
  await server.close();
});
beforeEach(() => {
  server.setBehaviour({ kind: "succeed" });
});

function collector() {
  const deltas: string[] = [];
  return { deltas, onText: (delta: string) => deltas.push(delta) };
}

describe("OpenAICompatibleTranslator streaming (onText)", () => {
  it("streams chat deltas whose concatenation, trimmed, is the translation", async () => {
    const translator = new OpenAICompatibleTranslator("large", { baseURL: server.url, retryBaseDelayMs: 5 });
    const plain = await translator.translateOne(request);
    const { deltas, onText } = collector();
    const streamed = await translator.translateOne(request, { onText });
    expect(server.requests.at(-1)?.body).toMatchObject({
      stream: true,
      stream_options: { include_usage: true },
      temperature: 0,
      seed: 0,
    });
    expect(deltas).toEqual([" ", "[large]", " Guten", " Morgen", " allerseits", "\n"]);
    expect(deltas.join("").trim()).toBe(streamed.text);
    expect(streamed).toMatchObject({ text: plain.text, finishReason: "stop", model: "large" });
    expect(streamed.outputTokens).toBe(plain.outputTokens);
    expect(streamed.promptTokens).toBe(plain.promptTokens);
  });

  it("retries a failure before the first delta, never one after it", async () => {
    const translator = new OpenAICompatibleTranslator("large", {
      baseURL: server.url,
      retries: 2,
      retryBaseDelayMs: 5,
    });
    server.setBehaviour([{ kind: "fail", status: 503 }, { kind: "succeed" }]);
    const first = collector();
    const recovered = await translator.translateOne(request, { onText: first.onText });
    expect(server.requests).toHaveLength(2);
    expect(first.deltas.join("").trim()).toBe(recovered.text);

    for (const how of ["close-socket", "error-event"] as const) {
      server.setBehaviour({ kind: "stream-fail", afterTokens: 2, how });
      const broken = collector();
      const failure = await translator
        .translateOne(request, { onText: broken.onText })
        .catch((error) => error);
      expect(failure).toBeInstanceOf(EngineCallError);
      expect((failure as EngineCallError).isRetryable).toBe(false);
      expect(failure.message).toMatch(/openai:http:\/\/127\.0\.0\.1:\d+\/v1#large/);
      expect(broken.deltas).toEqual([" ", "[large]"]);
      expect(server.requests).toHaveLength(1);
    }
  });

  it("times out a stream that stalls, and a stream that never starts is retried as a timeout", async () => {
    const translator = new OpenAICompatibleTranslator("large", {
      baseURL: server.url,
      retries: 1,
      retryBaseDelayMs: 5,
      timeoutMs: 500,
    });
    server.setBehaviour({ kind: "succeed", tokenDelayMs: 120 });
    const stalled = collector();
    const failure = await translator
      .translateOne(request, { onText: stalled.onText })
      .catch((error) => error);
    expect(failure).toBeInstanceOf(EngineCallError);
    expect(failure.cause).toBeInstanceOf(EngineTimeoutError);
    expect(stalled.deltas.length).toBeGreaterThan(0);
    expect(server.requests).toHaveLength(1);

    server.setBehaviour({ kind: "hang" });
    await expect(translator.translateOne(request, { onText: () => {} })).rejects.toBeInstanceOf(
      EngineTimeoutError,
    );
    expect(server.requests).toHaveLength(2);
  });

  it("stops reading at the caller's abort, with its reason, and frees the server's request", async () => {
    const translator = new OpenAICompatibleTranslator("large", { baseURL: server.url, retries: 0 });
    server.setBehaviour({ kind: "succeed", tokenDelayMs: 40 });
    const controller = new AbortController();
    const reason = new Error("client went away");
    const { deltas } = collector();
    const streaming = translator.translateOne(request, {
      signal: controller.signal,
      onText: (delta) => {
        deltas.push(delta);
        if (deltas.length === 2) controller.abort(reason);
      },
    });
    await expect(streaming).rejects.toBe(reason);
    expect(deltas).toHaveLength(2);
    await expect.poll(() => server.inFlight).toBe(0);
  });

  it("refuses onText for several requests at once", async () => {
    const translator = new OpenAICompatibleTranslator("large", { baseURL: server.url });
    await expect(translator.translate([request, request], { onText: () => {} })).rejects.toBeInstanceOf(
      UsageError,
    );
  });
});

describe("OpenAIProbedTranslator streaming (the remote small model's decode)", () => {
  it("streams the continued decode of the exact rendered prompt through /completions", async () => {
    const translator = new OpenAIProbedTranslator("small", {
      baseURL: server.url,
      dim: 8,
      api: "completions",
    });
    const plain = await (await translator.prefill(request)).continue();
    const prefilled = await translator.prefill(request);
    const { deltas, onText } = collector();
    const streamed = await prefilled.continue({ onText, maxTokens: 3 });
    const decode = server.requests.at(-1);
    expect(decode?.path).toBe("/v1/completions");
    expect(decode?.body).toMatchObject({ stream: true, max_tokens: 3 });
    expect(deltas.join("").trim()).toBe(streamed.text);
    expect(streamed.finishReason).toBe("length");
    expect(plain.text.startsWith(streamed.text)).toBe(true);
  });
});
