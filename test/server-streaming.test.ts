/**
 * Streamed answers of `routelmt serve` over real HTTP on 127.0.0.1: the text of the model that
 * produces the translation, as it decodes, through the official `openai` client and as NDJSON;
 * fallbacks before and after the first text; a client that goes away mid-stream; the in-process
 * small model.
 */
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { FastifyInstance } from "fastify";
import OpenAI from "openai";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { buildApp } from "../src/server/app.js";
import { resolveServerConfig } from "../src/server/config.js";
import { serverErrorBodySchema } from "../src/server/errors.js";
import { ffiEngineAvailable } from "../src/translators/open.js";
import { type FakeOpenAIServer, startFakeOpenAIServer } from "./helpers/fake-openai-server.js";
import {
  fakeServerConfig,
  postJson,
  remoteRouter,
  sampleText,
  tinyGgufWithRouter,
  writeRouter,
} from "./server-fixtures.js";

let work: string;
let small: FakeOpenAIServer;
let large: FakeOpenAIServer;
let routerFile: string;
const apps: FastifyInstance[] = [];

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), "routelmt-stream-"));
  // Padded as models answer (a leading space, a trailing newline), which the stream must trim away.
  const padding = { leading: " ", trailing: "\n" };
  small = await startFakeOpenAIServer({ label: "small", models: ["small"], embeddingDim: 8, padding });
  large = await startFakeOpenAIServer({ label: "large", models: ["large"], padding });
  routerFile = await writeRouter(work, remoteRouter(small.url));
});

afterAll(async () => {
  await small.close();
  await large.close();
});

afterEach(async () => {
  small.setBehaviour({ kind: "succeed" });
  large.setBehaviour({ kind: "succeed" });
  while (apps.length > 0) await apps.pop()?.close();
});

async function startServer(overrides: Record<string, unknown> = {}) {
  const app = await buildApp(fakeServerConfig(small.url, large.url, routerFile, overrides));
  apps.push(app);
  const origin = await app.listen({ port: 0, host: "127.0.0.1" });
  return { app, origin, client: new OpenAI({ baseURL: `${origin}/v1`, apiKey: "unused", maxRetries: 0 }) };
}

/** A chat completion body for text `index`. */
function chat(index: number) {
  return { model: "routelmt", messages: [{ role: "user" as const, content: sampleText(index) }] };
}

/** Streams a chat completion with the official client: the content deltas, when each came, and the headers. */
async function streamChat(client: OpenAI, index: number) {
  const { data: stream, response } = await client.chat.completions
    .create({ ...chat(index), stream: true, stream_options: { include_usage: true } })
    .withResponse();
  const started = performance.now();
  const deltas: { text: string; atMs: number }[] = [];
  let finish: string | null = null;
  let routing: Record<string, unknown> | undefined;
  let totalTokens: number | undefined;
  let failure: unknown;
  try {
    for await (const chunk of stream) {
      const content = chunk.choices[0]?.delta.content;
      if (content) deltas.push({ text: content, atMs: performance.now() - started });
      finish = chunk.choices[0]?.finish_reason ?? finish;
      routing = (chunk as unknown as { routelmt?: Record<string, unknown> }).routelmt ?? routing;
      totalTokens = chunk.usage?.total_tokens ?? totalTokens;
    }
  } catch (error) {
    failure = error;
  }
  return {
    deltas,
    text: deltas.map((delta) => delta.text).join(""),
    finish,
    routing,
    totalTokens,
    failure,
    headers: response.headers,
  };
}

/** POSTs to /v1/translate with `stream: true`: the NDJSON events and the headers. */
async function streamTranslate(origin: string, body: Record<string, unknown>) {
  const response = await fetch(`${origin}/v1/translate`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ ...body, stream: true }),
  });
  const text = await response.text();
  return {
    status: response.status,
    headers: response.headers,
    events: text
      .split("\n")
      .filter((line) => line !== "")
      .map((line) => JSON.parse(line) as Record<string, unknown>),
  };
}

async function metricsText(origin: string): Promise<string> {
  return (await fetch(`${origin}/metrics`)).text();
}

function metricValue(metrics: string, series: string): number {
  const escaped = series.replace(/[{}"=,]/g, (character) => `\\${character}`);
  const match = new RegExp(`^${escaped} (\\S+)$`, "m").exec(metrics);
  return match ? Number(match[1]) : 0;
}

describe("routelmt serve: streaming from either model", () => {
  it("streams a kept request's small decode token by token, adding up to the plain answer", async () => {
    const { client } = await startServer({ budget: 0 });
    const plain = await client.chat.completions.create(chat(2));
    small.setBehaviour((request) =>
      request.path === "/v1/completions" ? { kind: "succeed", tokenDelayMs: 15 } : { kind: "succeed" },
    );
    const streamed = await streamChat(client, 2);
    expect(streamed.failure).toBeUndefined();
    expect(streamed.headers.get("x-routelmt-model")).toBe("small");
    expect(streamed.headers.get("x-routelmt-fallback")).toBe("none");
    expect(streamed.headers.get("content-type")).toMatch(/^text\/event-stream/);
    // The small decode was itself streamed, and its words reached the client one by one.
    expect(small.requests.find((request) => request.path === "/v1/completions")?.body).toMatchObject({
      stream: true,
    });
    const words = streamed.text.split(" ").length;
    expect(streamed.deltas.length).toBe(words);
    expect(streamed.deltas.at(-1)!.atMs - streamed.deltas[0]!.atMs).toBeGreaterThan(10 * (words - 2));
    expect(streamed.text).toBe(plain.choices[0]?.message.content);
    expect(streamed.text).toMatch(/^\[small\] \S.*\S$/);
    expect(streamed.finish).toBe("stop");
    expect(streamed.totalTokens).toBe(plain.usage?.total_tokens);
    expect(streamed.routing).toMatchObject({ model: "small", fallback: false });
  });

  it("pipes a routed request's large stream through, adding up to the plain answer", async () => {
    const { client, origin } = await startServer({ budget: 1 });
    const plain = await client.chat.completions.create(chat(3));
    large.setBehaviour({ kind: "succeed", tokenDelayMs: 15 });
    const streamed = await streamChat(client, 3);
    expect(streamed.failure).toBeUndefined();
    expect(streamed.headers.get("x-routelmt-model")).toBe("large");
    expect(streamed.headers.get("x-routelmt-fallback")).toBe("none");
    expect(large.requests.at(-1)?.body).toMatchObject({ stream: true });
    expect(streamed.deltas.length).toBe(streamed.text.split(" ").length);
    expect(streamed.text).toBe(plain.choices[0]?.message.content);
    expect(streamed.text).toMatch(/^\[large\] /);
    expect(streamed.routing).toMatchObject({ model: "large", fallback: false });
    const metrics = await metricsText(origin);
    expect(metricValue(metrics, 'routelmt_stage_seconds_count{stage="first_text"}')).toBe(1);
  });

  it("streams /v1/translate as NDJSON: deltas then the translation, and a batch text by text", async () => {
    const { origin } = await startServer({ budget: 0.5 });
    const plain = await postJson(`${origin}/v1/translate`, { text: sampleText(4) });
    const single = await streamTranslate(origin, { text: sampleText(4) });
    expect(single.status).toBe(200);
    expect(single.headers.get("content-type")).toMatch(/^application\/x-ndjson/);
    expect(single.headers.get("x-routelmt-model")).toBe(plain.body.model);
    const deltas = single.events.filter((event) => event.type === "delta");
    expect(deltas.length).toBeGreaterThan(3);
    const last = single.events.at(-1)!;
    expect(single.events.indexOf(last)).toBe(deltas.length);
    expect(last).toMatchObject({
      type: "translation",
      translation: plain.body.translation,
      model: plain.body.model,
    });
    expect(deltas.map((event) => event.text).join("")).toBe(plain.body.translation);

    const texts = [0, 1, 2, 3, 5, 6].map(sampleText);
    const plainBatch = (await postJson(`${origin}/v1/translate`, { texts })).body.translations as Record<
      string,
      unknown
    >[];
    const batch = await streamTranslate(origin, { texts });
    expect(batch.status).toBe(200);
    expect(batch.events).toHaveLength(texts.length);
    expect(batch.events.every((event) => event.type === "translation")).toBe(true);
    const byIndex = [...batch.events].sort((a, b) => (a.index as number) - (b.index as number));
    expect(byIndex.map((event) => event.index)).toEqual(texts.map((_, index) => index));
    expect(byIndex.map((event) => [event.translation, event.model])).toEqual(
      plainBatch.map((item) => [item.translation, item.model]),
    );
    expect(batch.headers.get("x-routelmt-model")?.split(",")).toEqual(plainBatch.map((item) => item.model));
  });
});

describe("routelmt serve: streamed fallbacks", () => {
  it("streams the small model instead when the large one fails before its first text, and says so in the headers", async () => {
    const { client, origin } = await startServer({ budget: 1, "large-timeout-ms": 400 });
    // Refused outright, broken before any text, or silent past the deadline.
    const cases = [
      { behaviour: { kind: "fail", status: 500 } as const, reason: "large-error" },
      { behaviour: { kind: "stream-fail", afterTokens: 0 } as const, reason: "large-error" },
      // Only whitespace came before the break: no text had gone out yet.
      { behaviour: { kind: "stream-fail", afterTokens: 1 } as const, reason: "large-error" },
      { behaviour: { kind: "hang" } as const, reason: "large-timeout" },
    ];
    for (const { behaviour, reason } of cases) {
      large.setBehaviour(behaviour);
      const streamed = await streamChat(client, 5);
      expect(streamed.failure).toBeUndefined();
      expect(streamed.headers.get("x-routelmt-model")).toBe("small");
      expect(streamed.headers.get("x-routelmt-fallback")).toBe(reason);
      expect(streamed.text).toMatch(/^\[small\] \S/);
      expect(streamed.routing).toMatchObject({ model: "small", fallback: true });
    }
    const metrics = await metricsText(origin);
    expect(metricValue(metrics, 'routelmt_fallbacks_total{reason="large-error"}')).toBe(3);
    expect(metricValue(metrics, 'routelmt_fallbacks_total{reason="large-timeout"}')).toBe(1);
    expect(metricValue(metrics, 'routelmt_stream_errors_total{engine="large"}')).toBe(0);
  });

  it("ends the stream with an error event when the large model fails after its first text", async () => {
    const { client, origin } = await startServer({ budget: 1 });
    large.setBehaviour({ kind: "stream-fail", afterTokens: 3 });
    const streamed = await streamChat(client, 6);
    expect(streamed.headers.get("x-routelmt-model")).toBe("large");
    expect(streamed.text).toMatch(/^\[large\] \S+$/);
    // The official client raises the error event as an APIError carrying our error object.
    expect(streamed.failure).toBeInstanceOf(OpenAI.APIError);
    expect((streamed.failure as InstanceType<typeof OpenAI.APIError>).error).toMatchObject({
      code: "RLMT_ERR_ENGINE_STREAM_FAILED",
    });

    // On the wire: the last event is the documented error body, and no [DONE] follows.
    large.setBehaviour({ kind: "stream-fail", afterTokens: 3, how: "error-event" });
    const raw = await fetch(`${origin}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ ...chat(6), stream: true }),
    });
    expect(raw.status).toBe(200);
    const events = (await raw.text()).split("\n\n").filter((event) => event !== "");
    expect(events.at(-1)).toMatch(/^data: \{"error"/);
    const error = serverErrorBodySchema.parse(JSON.parse(events.at(-1)!.slice("data: ".length))).error;
    expect(error.code).toBe("RLMT_ERR_ENGINE_STREAM_FAILED");
    expect(error.message).toContain(`large engine openai:${large.url}#large`);
    expect(events.some((event) => event === "data: [DONE]")).toBe(false);

    const ndjson = await streamTranslate(origin, { text: sampleText(6) });
    expect(ndjson.events.at(-1)).toMatchObject({
      type: "error",
      error: { code: "RLMT_ERR_ENGINE_STREAM_FAILED" },
    });
    const metrics = await metricsText(origin);
    expect(metricValue(metrics, 'routelmt_stream_errors_total{engine="large"}')).toBe(3);
    expect(metricValue(metrics, 'routelmt_fallbacks_total{reason="large-error"}')).toBe(0);
  });

  it("answers a small engine failure before the first text as a plain 503, and one after it as an error event", async () => {
    const { origin } = await startServer({ budget: 0 });
    small.setBehaviour((request) =>
      request.path === "/v1/completions" ? { kind: "fail", status: 500 } : { kind: "succeed" },
    );
    const before = await fetch(`${origin}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ ...chat(7), stream: true }),
    });
    expect(before.status).toBe(503);
    expect(before.headers.get("content-type")).toMatch(/^application\/json/);
    expect(serverErrorBodySchema.parse(await before.json()).error.code).toBe(
      "RLMT_ERR_SMALL_ENGINE_UNAVAILABLE",
    );

    small.setBehaviour((request) =>
      request.path === "/v1/completions" ? { kind: "stream-fail", afterTokens: 4 } : { kind: "succeed" },
    );
    const after = await streamTranslate(origin, { text: sampleText(7) });
    expect(after.status).toBe(200);
    expect(after.events.filter((event) => event.type === "delta").length).toBeGreaterThan(0);
    expect(after.events.at(-1)).toMatchObject({
      type: "error",
      error: { code: "RLMT_ERR_ENGINE_STREAM_FAILED" },
    });
    expect(metricValue(await metricsText(origin), 'routelmt_stream_errors_total{engine="small"}')).toBe(1);
  });
});

describe("routelmt serve: a client that goes away mid-stream", () => {
  it("aborts the engine call and frees the small engine's request and the large one's", async () => {
    for (const [engine, budget] of [
      [small, 0],
      [large, 1],
    ] as const) {
      const { origin } = await startServer({ budget, "small-concurrency": 1 });
      // 20-odd words at 50 ms each: a second of decoding, unless it is stopped.
      engine.setBehaviour((request) =>
        request.path === "/v1/embeddings" ? { kind: "succeed" } : { kind: "succeed", tokenDelayMs: 50 },
      );
      const controller = new AbortController();
      const response = await fetch(`${origin}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ ...chat(8), stream: true }),
        signal: controller.signal,
      });
      const reader = response.body!.getReader();
      let received = "";
      while (!received.includes('"content":"['))
        received += new TextDecoder().decode((await reader.read()).value);
      const sentBefore = engine.requests.length;
      controller.abort();
      const stoppedAt = performance.now();
      await expect.poll(() => engine.inFlight, { timeout: 2000, interval: 10 }).toBe(0);
      expect(performance.now() - stoppedAt).toBeLessThan(500);
      const metrics = await metricsText(origin);
      expect(metricValue(metrics, "routelmt_client_disconnects_total")).toBe(1);
      expect(metricValue(metrics, 'routelmt_queue_depth{engine="small"}')).toBe(0);
      expect(metricValue(metrics, 'routelmt_queue_depth{engine="large"}')).toBe(0);
      // Nothing was started for a client that is gone: no retry, no fallback.
      expect(engine.requests.length).toBe(sentBefore);
      expect(metricValue(metrics, 'routelmt_fallbacks_total{reason="large-error"}')).toBe(0);
      // The one small sequence is free again: the next request is served.
      engine.setBehaviour({ kind: "succeed" });
      expect((await postJson(`${origin}/v1/translate`, { text: sampleText(9) })).status).toBe(200);
      await apps.pop()?.close();
    }
  });
});

// Every in-process engine this platform has, with several sequences.
const inProcessEngines = ffiEngineAvailable()
  ? [
      { engine: "ffi" as const, sequences: 2 },
      { engine: "llama" as const, sequences: 2 },
    ]
  : [{ engine: "llama" as const, sequences: 2 }];

describe.each(inProcessEngines)(
  "routelmt serve: streaming from the in-process small model ($engine)",
  ({ engine: featureEngine, sequences }) => {
    it("streams text adding up to the plain answer, and frees the sequence when the client goes away", async () => {
      // A context long enough for decodes of hundreds of tokens (on some texts the random model never
      // stops).
      const fixture = await tinyGgufWithRouter(work, 12, { contextLength: 1024 });
      const startInProcess = async (maxTokens: number) => {
        const app = await buildApp(
          resolveServerConfig(
            {},
            {
              small: fixture.modelPath,
              large: `openai:${large.url}#large`,
              router: fixture.routerFile,
              budget: 0,
              port: 0,
              threads: 1,
              "small-concurrency": sequences,
              "feature-engine": featureEngine,
              "max-tokens": maxTokens,
              "log-level": "silent",
            },
          ),
        );
        apps.push(app);
        return { app, origin: await app.listen({ port: 0, host: "127.0.0.1" }) };
      };
      const { origin } = await startInProcess(24);
      const client = new OpenAI({ baseURL: `${origin}/v1`, apiKey: "unused", maxRetries: 0 });
      const plain = await client.chat.completions.create(chat(1));
      const streamed = await streamChat(client, 1);
      expect(streamed.failure).toBeUndefined();
      expect(streamed.headers.get("x-routelmt-model")).toBe("small");
      expect(streamed.text).toBe(plain.choices[0]?.message.content);
      expect(streamed.text.length).toBeGreaterThan(0);
      const ndjson = await streamTranslate(origin, { text: sampleText(1) });
      const deltas = ndjson.events.filter((event) => event.type === "delta").map((event) => event.text);
      expect(deltas.join("")).toBe(plain.choices[0]?.message.content);
      expect(ndjson.events.at(-1)).toMatchObject({ type: "translation", translation: deltas.join("") });

      // Token by token, not one delta at the end.
      expect(streamed.deltas.length).toBeGreaterThan(1);
      expect(deltas.length).toBeGreaterThan(1);

      // Long decodes on every sequence, abandoned by their clients: the decodes stop and free their
      // sequences.
      const { app: longApp, origin: longOrigin } = await startInProcess(900);
      // As long as a decode on every sequence at once takes. One text throughout: the random model
      // stops early on some texts and never on others.
      const longText = sampleText(2);
      const translateOnEverySequence = () =>
        Promise.all(
          Array.from({ length: sequences }, () => postJson(`${longOrigin}/v1/translate`, { text: longText })),
        );
      let fullMs = Number.POSITIVE_INFINITY;
      // The best of two: the first decodes also warm up.
      for (let round = 0; round < 2; round++) {
        const fullStarted = performance.now();
        await translateOnEverySequence();
        fullMs = Math.min(fullMs, performance.now() - fullStarted);
      }
      const controller = new AbortController();
      const abandoned = Array.from({ length: sequences }, () =>
        fetch(`${longOrigin}/v1/chat/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({
            model: "routelmt",
            messages: [{ role: "user", content: longText }],
            stream: true,
          }),
          signal: controller.signal,
        }).then((response) => response.text()),
      );
      await new Promise((resolve) => setTimeout(resolve, fullMs / 10));
      controller.abort();
      for (const request of abandoned) await expect(request).rejects.toThrow();
      // Every sequence is free within a few token steps: holding a prefill on each comes at once,
      // where a decode still running would hold its sequence for most of a full decode.
      const engine = longApp.routelmt.small.translator;
      const heldStarted = performance.now();
      const held = await Promise.all(
        Array.from({ length: sequences }, () =>
          engine.prefill({ text: "Kurz.", srcLang: "en", tgtLang: "de" }),
        ),
      );
      const heldMs = performance.now() - heldStarted;
      await Promise.all(held.map((prefilled) => prefilled.release()));
      expect(heldMs).toBeLessThan(fullMs / 3);
      expect((await translateOnEverySequence()).map((answer) => answer.status)).toEqual(
        Array.from({ length: sequences }, () => 200),
      );
      const metrics = await metricsText(longOrigin);
      expect(metricValue(metrics, "routelmt_client_disconnects_total")).toBe(sequences);
      expect(metricValue(metrics, 'routelmt_queue_depth{engine="small"}')).toBe(0);
    }, 60_000);
  },
);
