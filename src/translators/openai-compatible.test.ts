import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type FakeOpenAIServer, startFakeOpenAIServer } from "../../test/helpers/fake-openai-server.js";
import { EngineCallError, EngineTimeoutError, UsageError } from "../errors/index.js";
import type { RetryEvent } from "../util/retry.js";
import { mapOpenAIFinishReason } from "./map-openai-finish-reason.js";
import {
  DEFAULT_INSTRUCTION_TEMPLATE,
  defaultPromptBuilder,
  type OpenAICompatibleOptions,
  OpenAICompatibleTranslator,
  renderInstruction,
} from "./openai-compatible.js";

const request = { text: "Hello world", srcLang: "en", tgtLang: "de" };

let server: FakeOpenAIServer;
beforeAll(async () => {
  server = await startFakeOpenAIServer();
});
afterAll(async () => {
  await server.close();
});
beforeEach(() => {
  server.setBehaviour({ kind: "succeed" });
});

function makeTranslator(options: Partial<OpenAICompatibleOptions> = {}): OpenAICompatibleTranslator {
  return new OpenAICompatibleTranslator("large", { baseURL: server.url, retryBaseDelayMs: 5, ...options });
}

describe("mapOpenAIFinishReason", () => {
  it("maps the reasons servers send", () => {
    expect(mapOpenAIFinishReason("stop")).toBe("stop");
    expect(mapOpenAIFinishReason("eos")).toBe("stop");
    expect(mapOpenAIFinishReason("length")).toBe("length");
    expect(mapOpenAIFinishReason("max_tokens")).toBe("length");
    expect(mapOpenAIFinishReason("abort")).toBe("abort");
    expect(mapOpenAIFinishReason("content_filter")).toBe("other");
    expect(mapOpenAIFinishReason(null)).toBeUndefined();
    expect(mapOpenAIFinishReason(undefined)).toBeUndefined();
  });
});

describe("default prompt", () => {
  it("renders the instruction in one pass, leaving placeholders inside the text alone", () => {
    expect(
      renderInstruction(DEFAULT_INSTRUCTION_TEMPLATE, {
        text: "a {tgtLang} b",
        srcLang: "en",
        tgtLang: "fr",
      }),
    ).toBe("Translate the following text from en into fr. Reply with the translation only.\n\na {tgtLang} b");
    expect(defaultPromptBuilder(request).messages).toEqual([
      {
        role: "user",
        content:
          "Translate the following text from en into de. Reply with the translation only.\n\nHello world",
      },
    ]);
  });
});

describe("OpenAICompatibleTranslator", () => {
  it("translates through chat completions with deterministic settings", async () => {
    const translator = makeTranslator({ apiKey: "sk-test", headers: { "x-team": "mt" } });
    const [translation] = await translator.translate([request]);
    expect(translation).toMatchObject({
      text: "[large] Hello world",
      model: "large",
      promptTokens: 15, // whitespace words of the default prompt, the fake server's tokens
      outputTokens: 3,
      finishReason: "stop",
    });
    expect(translation?.ms).toBeGreaterThan(0);
    const sent = server.requests[0]!;
    expect(sent.path).toBe("/v1/chat/completions");
    expect(sent.headers.authorization).toBe("Bearer sk-test");
    expect(sent.headers["x-team"]).toBe("mt");
    expect(sent.body).toMatchObject({
      model: "large",
      temperature: 0,
      top_p: 1,
      seed: 0,
      n: 1,
      max_tokens: 256,
      messages: defaultPromptBuilder(request).messages,
    });
  });

  it("sends the raw prompt to /completions when its api is completions (a base model)", async () => {
    const translator = makeTranslator({
      api: "completions",
      renderPrompt: (r) => `English: ${r.text}\nGerman:`,
    });
    const [translation] = await translator.translate([request], { maxTokens: 7 });
    expect(translation).toMatchObject({ text: "[large] English: Hello world German:", finishReason: "stop" });
    expect(server.requests.map((sent) => sent.path)).toEqual(["/v1/completions"]);
    expect(server.requests[0]!.body).toEqual({
      model: "large",
      prompt: "English: Hello world\nGerman:",
      max_tokens: 7,
      temperature: 0,
      top_p: 1,
      seed: 0,
      n: 1,
      stream: false,
    });
    // Without a renderer the raw prompt is the prompt builder's message, as chat would send it.
    server.setBehaviour({ kind: "succeed" });
    await makeTranslator({ api: "completions" }).translate([request]);
    expect(server.requests[0]!.body).toMatchObject({
      prompt: defaultPromptBuilder(request).messages[0]!.content,
    });
  });

  it("asks for token log-probabilities only with confidence, and reads both formats servers send", async () => {
    const completions = makeTranslator({ api: "completions", renderPrompt: (r) => r.text });
    const answer = (logprobs: unknown) => ({
      choices: [{ text: " Hallo Welt", finish_reason: "stop", logprobs }],
    });
    // llama.cpp's server: the chat form, also for completions (its end token included).
    server.setBehaviour({
      kind: "json",
      body: answer({ content: [{ logprob: -0.5 }, { logprob: -0.25 }, { logprob: -0.75 }] }),
    });
    const [llamaCpp] = await completions.translate([request], { confidence: true });
    expect(llamaCpp!.meanLogProbability).toBeCloseTo(-0.5, 12);
    expect(server.requests[0]!.body).toMatchObject({ logprobs: 1 });
    // vLLM: the legacy completions form.
    server.setBehaviour({ kind: "json", body: answer({ tokens: ["a", "b"], token_logprobs: [-1, -2] }) });
    const [vllm] = await completions.translate([request], { confidence: true });
    expect(vllm!.meanLogProbability).toBeCloseTo(-1.5, 12);
    // A server without logprobs: no confidence, not an error.
    server.setBehaviour({ kind: "json", body: answer(undefined) });
    const [none] = await completions.translate([request], { confidence: true });
    expect(none).toMatchObject({ text: "Hallo Welt", meanLogProbability: null });
    // Nor does a shape of the server's own fail the translation, asked or not.
    server.setBehaviour({ kind: "json", body: answer([{ odd: true }]) });
    const [odd] = await completions.translate([request], { confidence: true });
    expect(odd).toMatchObject({ text: "Hallo Welt", meanLogProbability: null });
    server.setBehaviour({ kind: "json", body: answer("unexpected") });
    expect((await completions.translate([request]))[0]).toMatchObject({ text: "Hallo Welt" });
    // Not asked: not requested, not reported.
    server.setBehaviour({ kind: "json", body: answer({ content: [{ logprob: -3 }] }) });
    const [plain] = await completions.translate([request]);
    expect(server.requests[0]!.body).not.toHaveProperty("logprobs");
    expect(plain).not.toHaveProperty("meanLogProbability");
    // Chat completions ask with `logprobs: true`.
    server.setBehaviour({
      kind: "json",
      body: {
        choices: [
          { message: { content: "Hallo" }, finish_reason: "stop", logprobs: { content: [{ logprob: -2 }] } },
        ],
      },
    });
    const [chat] = await makeTranslator().translate([request], { confidence: true });
    expect(chat!.meanLogProbability).toBe(-2);
    expect(server.requests[0]!.body).toMatchObject({ logprobs: true });
  });

  it("uses the caller's prompt builder and max tokens, reporting length stops", async () => {
    const translator = makeTranslator({
      promptBuilder: (r) => ({
        messages: [
          { role: "system", content: "You translate." },
          { role: "user", content: `${r.srcLang}->${r.tgtLang}\n\n${r.text}` },
        ],
      }),
    });
    const [translation] = await translator.translate(
      [{ text: "one two three four", srcLang: "en", tgtLang: "de" }],
      {
        maxTokens: 3,
      },
    );
    expect(translation).toMatchObject({ text: "[large] one two", finishReason: "length", outputTokens: 3 });
    expect((server.requests[0]!.body as { messages: unknown[] }).messages).toHaveLength(2);
  });

  it("keeps request order and reports null token counts when the server sends no usage", async () => {
    const quiet = await startFakeOpenAIServer({ includeUsage: false, label: "q" });
    try {
      const translator = new OpenAICompatibleTranslator("m", { baseURL: `${quiet.url}/`, concurrency: 3 });
      const texts = ["a", "b", "c", "d", "e"];
      const out = await translator.translate(texts.map((text) => ({ text, srcLang: "en", tgtLang: "de" })));
      expect(out.map((t) => t.text)).toEqual(texts.map((text) => `[q] ${text}`));
      expect(out[0]).toMatchObject({ promptTokens: null, outputTokens: null });
    } finally {
      await quiet.close();
    }
  });

  it("honours 429 Retry-After before retrying", async () => {
    server.setBehaviour([{ kind: "fail", status: 429, retryAfter: "1" }, { kind: "succeed" }]);
    const retries: RetryEvent[] = [];
    const translator = makeTranslator({ onRetry: (event) => retries.push(event) });
    const started = performance.now();
    const [translation] = await translator.translate([request]);
    const elapsed = performance.now() - started;
    expect(translation?.text).toBe("[large] Hello world");
    expect(server.requests).toHaveLength(2);
    expect(retries).toHaveLength(1);
    expect(retries[0]?.error.status).toBe(429);
    expect(retries[0]?.delayMs).toBeGreaterThanOrEqual(1000);
    expect(elapsed).toBeGreaterThanOrEqual(1000);
  });

  it("retries a 500 and then succeeds", async () => {
    server.setBehaviour([{ kind: "fail", status: 500 }, { kind: "succeed" }]);
    const [translation] = await makeTranslator().translate([request]);
    expect(translation?.text).toBe("[large] Hello world");
    expect(server.requests).toHaveLength(2);
  });

  it("gives up on a persistent 500 after the retries, naming engine and status", async () => {
    server.setBehaviour({ kind: "fail", status: 500, body: "model crashed" });
    const translator = makeTranslator({ retries: 2 });
    const error = await translator.translate([request]).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(EngineCallError);
    expect(error).toMatchObject({ status: 500, engine: `openai:${server.url}#large` });
    expect((error as Error).message).toContain(`openai:${server.url}#large`);
    expect((error as Error).message).toContain("HTTP 500");
    expect((error as Error).message).toContain("model crashed");
    expect(server.requests).toHaveLength(3);
  });

  it("does not retry a 400", async () => {
    server.setBehaviour({ kind: "fail", status: 400 });
    await expect(makeTranslator().translate([request])).rejects.toMatchObject({
      status: 400,
      isRetryable: false,
    });
    expect(server.requests).toHaveLength(1);
  });

  it("times out a hanging server, retries, then reports EngineTimeoutError", async () => {
    server.setBehaviour({ kind: "hang" });
    const translator = makeTranslator({ timeoutMs: 100, retries: 1 });
    const error = await translator.translate([request]).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(EngineTimeoutError);
    expect((error as Error).message).toContain("no answer within 100 ms");
    expect(server.requests).toHaveLength(2);
  });

  it("recovers from a closed socket", async () => {
    server.setBehaviour([{ kind: "close-socket" }, { kind: "succeed" }]);
    const [translation] = await makeTranslator().translate([request]);
    expect(translation?.text).toBe("[large] Hello world");
    expect(server.requests).toHaveLength(2);
  });

  it("reports a closed socket without status when retries run out", async () => {
    server.setBehaviour({ kind: "close-socket" });
    const error = await makeTranslator({ retries: 0 })
      .translate([request])
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(EngineCallError);
    expect(error).toMatchObject({ status: undefined, isRetryable: true });
    expect((error as Error).message).toContain("failed");
  });

  it("rejects malformed JSON and wrong shapes with clear, non-retried errors", async () => {
    server.setBehaviour({ kind: "malformed" });
    await expect(makeTranslator().translate([request])).rejects.toThrow(
      /malformed JSON from POST .*chat\/completions/,
    );
    expect(server.requests).toHaveLength(1);

    server.setBehaviour({ kind: "json", body: { choices: [] } });
    await expect(makeTranslator().translate([request])).rejects.toThrow(/unexpected answer shape .*choices/);

    server.setBehaviour({ kind: "json", body: { choices: [{ message: { content: 42 } }] } });
    await expect(makeTranslator().translate([request])).rejects.toThrow(/choices\.0\.message\.content/);

    server.setBehaviour({
      kind: "json",
      body: { choices: [{ message: { content: null }, finish_reason: "length" }] },
    });
    await expect(makeTranslator().translate([request])).rejects.toThrow(
      /no message content \(finish_reason: length\)/,
    );
  });

  it("accepts a minimal answer with nullish optional fields", async () => {
    server.setBehaviour({
      kind: "json",
      body: {
        model: null,
        choices: [{ message: { content: "  Hallo Welt \n" }, finish_reason: null }],
        usage: null,
      },
    });
    const [translation] = await makeTranslator().translate([request]);
    expect(translation).toMatchObject({
      text: "Hallo Welt",
      model: "large",
      promptTokens: null,
      outputTokens: null,
    });
    expect(translation?.finishReason).toBeUndefined();
  });

  it("keeps at most `concurrency` requests in flight", async () => {
    server.setBehaviour({ kind: "succeed", delayMs: 40 });
    const translator = makeTranslator({ concurrency: 2 });
    const texts = Array.from({ length: 7 }, (_, i) => `text ${i}`);
    const out = await translator.translate(texts.map((text) => ({ text, srcLang: "en", tgtLang: "de" })));
    expect(out.map((t) => t.text)).toEqual(texts.map((text) => `[large] ${text}`));
    expect(server.requests).toHaveLength(7);
    expect(server.maxInFlight).toBe(2);
  });

  it("shares the limit between concurrent translate calls", async () => {
    server.setBehaviour({ kind: "succeed", delayMs: 30 });
    const translator = makeTranslator({ concurrency: 3 });
    const batch = (prefix: string) =>
      translator.translate([1, 2, 3].map((n) => ({ text: `${prefix}${n}`, srcLang: "en", tgtLang: "de" })));
    await Promise.all([batch("a"), batch("b")]);
    expect(server.maxInFlight).toBe(3);
  });

  it("translates a large batch with a caller's signal without a listener-leak warning", async () => {
    // Every request of a batch listens to the batch's signal (queue wait, HTTP call): with more than
    // ten in a batch Node warns of a leak unless the signal is marked as shared on purpose.
    server.setBehaviour({ kind: "succeed", delayMs: 20 });
    const warnings: string[] = [];
    const onWarning = (warning: Error) => warnings.push(warning.name);
    process.on("warning", onWarning);
    try {
      const caller = new AbortController();
      const texts = Array.from({ length: 24 }, (_, i) => `text ${i}`);
      const translator = makeTranslator({ concurrency: 16 });
      for (const signal of [undefined, caller.signal]) {
        const out = await translator.translate(
          texts.map((text) => ({ text, srcLang: "en", tgtLang: "de" })),
          { signal },
        );
        expect(out).toHaveLength(24);
      }
      // Warnings are emitted on the next tick.
      await new Promise((resolve) => setImmediate(resolve));
    } finally {
      process.off("warning", onWarning);
    }
    expect(warnings).not.toContain("MaxListenersExceededWarning");
  });

  it("rejects with the caller's abort reason", async () => {
    server.setBehaviour({ kind: "hang" });
    const controller = new AbortController();
    const reason = new Error("user cancelled");
    setTimeout(() => controller.abort(reason), 50);
    await expect(makeTranslator().translate([request], { signal: controller.signal })).rejects.toBe(reason);
  });

  it("validates its configuration and refuses use after dispose", async () => {
    expect(() => new OpenAICompatibleTranslator("m", { baseURL: "not a url" })).toThrow(UsageError);
    expect(() => new OpenAICompatibleTranslator("m", { baseURL: "ftp://x/v1" })).toThrow(UsageError);
    expect(() => new OpenAICompatibleTranslator("m", { baseURL: server.url, concurrency: 0 })).toThrow(
      UsageError,
    );
    const translator = makeTranslator();
    await translator.dispose();
    await expect(translator.translate([request])).rejects.toBeInstanceOf(UsageError);
  });
});
