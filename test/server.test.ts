/**
 * `routelmt serve` over real HTTP on 127.0.0.1: fake OpenAI-compatible small (with embeddings) and
 * large engines, the official `openai` client, budget and hard cap under concurrency, faults, bad
 * input, auth.
 */
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { FastifyInstance } from "fastify";
import OpenAI from "openai";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { fnv1a32Utf8, SOURCE_WORDS_DIM } from "../src/features/source-words.js";
import { buildApp } from "../src/server/app.js";
import { maxLargeInAnyWindow, maxOverspendOfLongRuns } from "../src/server/decision-window.js";
import { serverErrorBodySchema } from "../src/server/errors.js";
import { closeWithDeadline } from "../src/server/shutdown.js";
import { type FakeOpenAIServer, startFakeOpenAIServer } from "./helpers/fake-openai-server.js";
import { openConnection, rawRequest, requestText } from "./helpers/raw-http.js";
import {
  fakeServerConfig,
  postJson,
  remoteRouter,
  runConcurrently,
  sampleText,
  writeRouter,
} from "./server-fixtures.js";

let work: string;
let small: FakeOpenAIServer;
let large: FakeOpenAIServer;
let routerFile: string;
const apps: FastifyInstance[] = [];

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), "routelmt-serve-"));
  small = await startFakeOpenAIServer({ label: "small", models: ["small"], embeddingDim: 8 });
  large = await startFakeOpenAIServer({ label: "large", models: ["large"] });
  routerFile = await writeRouter(work, remoteRouter(small.url, { withGuards: true }));
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

/** Builds and starts a server on a free loopback port; returns its origin. */
async function startServer(overrides: Record<string, unknown> = {}, largeUrl = large.url) {
  const app = await buildApp(fakeServerConfig(small.url, largeUrl, routerFile, overrides));
  apps.push(app);
  const origin = await app.listen({ port: 0, host: "127.0.0.1" });
  return { app, origin };
}

describe("routelmt serve: API", () => {
  it("translates one text and a batch, with routing facts in the body and headers", async () => {
    const { origin } = await startServer({ budget: 0.5 });
    const one = await postJson(`${origin}/v1/translate`, {
      text: sampleText(1),
      source_lang: "en",
      target_lang: "de",
    });
    expect(one.status).toBe(200);
    expect(one.body).toMatchObject({ guarded: false, fallback: false });
    expect(["small", "large"]).toContain(one.body.model);
    expect(one.body.translation).toMatch(new RegExp(`^\\[${one.body.model}\\] `));
    expect(typeof one.body.predicted_gain).toBe("number");
    expect(one.body.latency_ms).toBeGreaterThan(0);
    expect(one.headers.get("x-routelmt-model")).toBe(one.body.model);
    expect(Number(one.headers.get("x-routelmt-predicted-gain"))).toBeCloseTo(
      one.body.predicted_gain as number,
      3,
    );
    expect(one.headers.get("x-routelmt-budget")).toBe("0.5");

    // Languages default to the router's pair (en → de: "German" appears in the small prompt).
    const batch = await postJson(`${origin}/v1/translate`, { texts: [0, 1, 2, 3, 4, 5, 6].map(sampleText) });
    expect(batch.status).toBe(200);
    const translations = batch.body.translations as { model: string; predicted_gain: number }[];
    expect(translations).toHaveLength(7);
    // Exactly ⌊0.5 · 7⌋ = 3 go large: the three highest predicted gains.
    const large = translations.filter((item) => item.model === "large");
    expect(large).toHaveLength(3);
    const lowestLarge = Math.min(...large.map((item) => item.predicted_gain));
    const highestSmall = Math.max(
      ...translations.filter((item) => item.model === "small").map((item) => item.predicted_gain),
    );
    expect(lowestLarge).toBeGreaterThan(highestSmall);
    expect(batch.headers.get("x-routelmt-model")?.split(",")).toEqual(translations.map((item) => item.model));
    expect(batch.headers.get("x-routelmt-fallback")).toBe(new Array(7).fill("none").join(","));
  });

  it("serves the official openai client: chat completions, streaming, models", async () => {
    const { origin } = await startServer({ budget: 0 });
    const client = new OpenAI({ baseURL: `${origin}/v1`, apiKey: "unused", maxRetries: 0 });
    const models = await client.models.list();
    expect(models.data.map((model) => model.id)).toEqual(["routelmt"]);

    const completion = await client.chat.completions.create({
      model: "routelmt",
      messages: [
        { role: "system", content: "ignored" },
        { role: "user", content: "Guten Morgen" },
      ],
      metadata: { source_lang: "de", target_lang: "en" },
    });
    expect(completion.object).toBe("chat.completion");
    expect(completion.model).toBe("routelmt");
    expect(completion.id).toMatch(/^chatcmpl-/);
    expect(completion.choices[0]?.finish_reason).toBe("stop");
    // Budget 0: the small model answers; its prompt names the languages from metadata.
    expect(completion.choices[0]?.message.content).toMatch(
      /^\[small\] .*from German into English.*Guten Morgen/,
    );
    expect(completion.usage?.total_tokens).toBe(
      (completion.usage?.prompt_tokens ?? 0) + (completion.usage?.completion_tokens ?? 0),
    );
    expect(completion.usage?.completion_tokens).toBeGreaterThan(0);

    const { data: raw, response } = await client.chat.completions
      .create(
        { model: "routelmt", messages: [{ role: "user", content: "Bonjour" }] },
        { headers: { "x-routelmt-source-lang": "fr", "x-routelmt-target-lang": "it" } },
      )
      .withResponse();
    expect(response.headers.get("x-routelmt-model")).toBe("small");
    expect(raw.choices[0]?.message.content).toMatch(/from French into Italian/);

    const stream = await client.chat.completions.create({
      model: "routelmt",
      messages: [{ role: "user", content: "Guten Morgen" }],
      metadata: { source_lang: "de", target_lang: "en" },
      stream: true,
      stream_options: { include_usage: true },
    });
    let streamed = "";
    let finish: string | null = null;
    let usageTokens = 0;
    for await (const chunk of stream) {
      expect(chunk.object).toBe("chat.completion.chunk");
      streamed += chunk.choices[0]?.delta.content ?? "";
      finish = chunk.choices[0]?.finish_reason ?? finish;
      usageTokens = chunk.usage?.total_tokens ?? usageTokens;
    }
    expect(streamed).toBe(completion.choices[0]?.message.content);
    expect(finish).toBe("stop");
    expect(usageTokens).toBe(completion.usage?.total_tokens);

    await expect(
      client.chat.completions.create({ model: "gpt-4o", messages: [{ role: "user", content: "x" }] }),
    ).rejects.toMatchObject({ status: 404 });
  });

  it("exposes health, readiness and Prometheus metrics", async () => {
    const { origin } = await startServer({ budget: 0.3 });
    expect((await fetch(`${origin}/healthz`)).status).toBe(200);
    const ready = await fetch(`${origin}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({
      ready: true,
      checks: { small: { ok: true }, large: { ok: true } },
    });
    await runConcurrently(30, 8, (index) => postJson(`${origin}/v1/translate`, { text: sampleText(index) }));
    const metrics = await (await fetch(`${origin}/metrics`)).text();
    expect(metrics).toMatch(/routelmt_translations_total\{model="large",outcome="ok"\} \d+/);
    expect(metrics).toMatch(/routelmt_translations_total\{model="small",outcome="ok"\} \d+/);
    expect(metrics).toMatch(/routelmt_large_fraction 0\.\d+/);
    expect(metrics).toMatch(/routelmt_threshold -?\d/);
    expect(metrics).toMatch(/routelmt_budget 0\.3/);
    // Without a shared budget store there is no store to be up or down.
    expect(metrics).not.toMatch(/routelmt_budget_store_up/);
    expect(metrics).toMatch(/routelmt_predicted_gain_count 30/);
    for (const stage of ["prefill", "decision", "small_decode", "large_call"]) {
      expect(metrics).toMatch(new RegExp(`routelmt_stage_seconds_count\\{stage="${stage}"\\} \\d+`));
    }
  });

  it("serves a router that reads the words block: computed from each request's text", async () => {
    // Gain = 100 × the "zebra" bucket of the words block; the small model's values are not read.
    const zebra = fnv1a32Utf8("zebra") % SOURCE_WORDS_DIM;
    const weights = new Array<number>(SOURCE_WORDS_DIM).fill(0);
    weights[zebra] = 100;
    const base = remoteRouter(small.url);
    const gain = base.heads.gain!;
    const wordsRouter = {
      ...base,
      feature: { ...base.feature, layer: "words", dim: SOURCE_WORDS_DIM, blocks: ["words"] },
      heads: {
        gain: {
          ...gain,
          model: {
            format: 1 as const,
            kind: "ridge" as const,
            dim: SOURCE_WORDS_DIM,
            mean: new Array<number>(SOURCE_WORDS_DIM).fill(0),
            std: new Array<number>(SOURCE_WORDS_DIM).fill(1),
            weights,
            bias: 0,
            lambda: 1,
          },
        },
      },
    };
    const file = await writeRouter(work, wordsRouter, "words-router.json");
    const app = await buildApp(fakeServerConfig(small.url, large.url, file, { budget: 0.5 }));
    apps.push(app);
    const origin = await app.listen({ port: 0, host: "127.0.0.1" });
    const zebraText = await postJson(`${origin}/v1/translate`, { text: "A zebra runs." });
    expect(zebraText.status).toBe(200);
    expect(zebraText.body.predicted_gain).toBeCloseTo(100 / Math.sqrt(3), 4);
    const dogText = await postJson(`${origin}/v1/translate`, { text: "A dog runs." });
    expect(dogText.body.predicted_gain).toBe(0);
  });
});

describe("routelmt serve: language pairs", () => {
  it("counts texts of pairs the router was not trained on and warns once per pair", async () => {
    const lines: string[] = [];
    const app = await buildApp(fakeServerConfig(small.url, large.url, routerFile, { "log-level": "warn" }), {
      logStream: { write: (line: string) => lines.push(line) },
    });
    apps.push(app);
    const origin = await app.listen({ port: 0, host: "127.0.0.1" });
    const translate = (body: Record<string, unknown>) => postJson(`${origin}/v1/translate`, body);
    expect((await translate({ text: "One.", source_lang: "en", target_lang: "de" })).status).toBe(200);
    expect((await translate({ text: "Two.", source_lang: "en", target_lang: "fr" })).status).toBe(200);
    expect(
      (await translate({ texts: ["Three.", "Four."], source_lang: "en", target_lang: "fr" })).status,
    ).toBe(200);
    const metrics = await (await fetch(`${origin}/metrics`)).text();
    expect(metrics).toMatch(/^routelmt_unseen_pair_translations_total 3$/m);
    const warnings = lines.map((line) => JSON.parse(line)).filter((entry) => entry.pair !== undefined);
    expect(warnings).toEqual([
      expect.objectContaining({
        pair: "en→fr",
        trained_on: "en→de",
        msg: "the router was not trained on this language pair: its gain scores there are extrapolation",
      }),
    ]);
  });
});

describe("routelmt serve: budget under concurrency", () => {
  it("holds the budget within 1 point over 2000 requests at 64 concurrent, never overspending it", async () => {
    const window = 1000;
    const { app, origin } = await startServer({ budget: 0.2, window });
    const results = await runConcurrently(2000, 64, (index) =>
      postJson(`${origin}/v1/translate`, { text: sampleText(index) }),
    );
    expect(results.every((result) => result.status === 200)).toBe(true);
    const largeCount = results.filter((result) => result.body.model === "large").length;
    expect(Math.abs(largeCount / 2000 - 0.2)).toBeLessThanOrEqual(0.01);
    // The budget is never overspent: at most ⌊0.2 · 1000⌋ = 200 in any 1000 decisions, the first
    // 1000 included, and at most 0.2·N in any longer run.
    const log = app.routelmt.hybrid.decisionLog();
    expect(log.length).toBe(2000);
    expect(log.reduce((sum, value) => sum + value, 0)).toBe(largeCount);
    expect(largeCount).toBeLessThanOrEqual(400);
    expect(log.subarray(0, window).reduce((sum, value) => sum + value, 0)).toBeLessThanOrEqual(200);
    expect(maxLargeInAnyWindow(log, window)).toBeLessThanOrEqual(200);
    expect(maxOverspendOfLongRuns(log, 0.2, window)).toBeLessThanOrEqual(1e-9);
    // The large engine saw exactly the routed requests.
    expect(large.requests.filter((request) => request.path === "/v1/chat/completions").length).toBe(
      largeCount,
    );
  });

  it("keeps the hard cap when batches and single requests interleave", async () => {
    const window = 50;
    const { app, origin } = await startServer({ budget: 0.5, window });
    await runConcurrently(60, 16, (index) =>
      index % 3 === 0
        ? postJson(`${origin}/v1/translate`, {
            texts: [0, 1, 2, 3, 4, 5].map((offset) => sampleText(index * 10 + offset)),
          })
        : postJson(`${origin}/v1/translate`, { text: sampleText(index) }),
    );
    const log = app.routelmt.hybrid.decisionLog();
    expect(log.length).toBe(40 + 20 * 6);
    expect(maxLargeInAnyWindow(log, window)).toBeLessThanOrEqual(25);
    expect(maxOverspendOfLongRuns(log, 0.5, window)).toBeLessThanOrEqual(1e-9);
  });
});

describe("routelmt serve: faults", () => {
  it("answers every request when the large engine dies mid-run, counting fallbacks", async () => {
    const dying = await startFakeOpenAIServer({
      label: "large",
      models: ["large"],
      behaviour: { kind: "succeed", delayMs: 5 },
    });
    const { origin } = await startServer({ budget: 0.5 }, dying.url);
    let done = 0;
    const results = await runConcurrently(200, 16, async (index) => {
      const result = await postJson(`${origin}/v1/translate`, { text: sampleText(index) });
      done++;
      if (done === 60) void dying.close();
      return result;
    });
    expect(results.filter((result) => result.status !== 200)).toEqual([]);
    const fallbacks = results.filter((result) => result.body.fallback === true);
    expect(fallbacks.length).toBeGreaterThan(0);
    for (const fallback of fallbacks) {
      expect(fallback.body.model).toBe("small");
      expect(fallback.body.translation).toMatch(/^\[small\] /);
      expect(fallback.headers.get("x-routelmt-fallback")).toBe("large-error");
    }
    expect(results.some((result) => result.body.model === "large")).toBe(true);
    const metrics = await (await fetch(`${origin}/metrics`)).text();
    const counted = [...metrics.matchAll(/routelmt_fallbacks_total\{reason="large-error"\} (\d+)/g)];
    expect(Number(counted[0]?.[1])).toBe(fallbacks.length);
    expect(metrics).toMatch(/routelmt_backend_errors_total\{engine="large",kind="network"\} [1-9]/);
    const ready = await fetch(`${origin}/readyz`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toMatchObject({
      ready: false,
      checks: { large: { ok: false }, small: { ok: true } },
    });
  });

  it("falls back on a slow large engine after the per-request timeout, and counts retries", async () => {
    const { origin } = await startServer({ budget: 1, "large-timeout-ms": 300, "large-retries": 1 });
    large.setBehaviour({ kind: "hang" });
    const started = performance.now();
    const slow = await postJson(`${origin}/v1/translate`, { text: sampleText(3) });
    expect(performance.now() - started).toBeLessThan(3000);
    expect(slow.status).toBe(200);
    expect(slow.body).toMatchObject({ model: "small", fallback: true });
    expect(slow.headers.get("x-routelmt-fallback")).toBe("large-timeout");
    // Chat completions say so too, streamed (in the SSE answer's headers) or not.
    const chat = { model: "routelmt", messages: [{ role: "user", content: sampleText(8) }] };
    for (const stream of [false, true]) {
      const answer = await fetch(`${origin}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ ...chat, stream }),
      });
      expect(answer.status).toBe(200);
      expect(answer.headers.get("x-routelmt-model")).toBe("small");
      expect(answer.headers.get("x-routelmt-fallback")).toBe("large-timeout");
      expect(answer.headers.get("content-type")).toMatch(
        stream ? /^text\/event-stream/ : /^application\/json/,
      );
      await answer.text();
    }
    large.setBehaviour([{ kind: "fail", status: 500 }, { kind: "succeed" }]);
    const retried = await postJson(`${origin}/v1/translate`, { text: sampleText(4) });
    expect(retried.body).toMatchObject({ model: "large", fallback: false });
    expect(retried.headers.get("x-routelmt-fallback")).toBe("none");
    const metrics = await (await fetch(`${origin}/metrics`)).text();
    expect(metrics).toMatch(/routelmt_fallbacks_total\{reason="large-timeout"\} 3/);
    expect(metrics).toMatch(/routelmt_backend_retries_total\{engine="large"\} [1-9]/);
  });

  it("drains on close: in-flight requests finish and close their connection, new ones get 503 in the error format", async () => {
    const { app, origin } = await startServer({ budget: 1 });
    // What a request gets once draining began (set by the preClose hook): the documented error.
    app.routelmt.closing = true;
    const refused = await rawRequest(origin, [requestText("GET", "/healthz")]);
    app.routelmt.closing = false;
    expect(refused.status).toBe(503);
    expect(serverErrorBodySchema.parse(JSON.parse(refused.body)).error.code).toBe("RLMT_ERR_SHUTTING_DOWN");
    expect(refused.headers["retry-after"]).toBe("1");

    large.setBehaviour({ kind: "succeed", delayMs: 500 });
    const connection = await openConnection(origin);
    const body = JSON.stringify({ text: sampleText(5) });
    connection.write(
      `POST /v1/translate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
    );
    while (large.inFlight < 1) await new Promise((resolve) => setTimeout(resolve, 10));
    apps.splice(apps.indexOf(app), 1);
    const closing = closeWithDeadline(app, 10_000);
    const finished = await connection.next();
    expect(finished.status).toBe(200);
    expect(JSON.parse(finished.body)).toMatchObject({ model: "large" });
    expect(finished.headers.connection).toBe("close");
    connection.close();
    expect(await closing).toEqual({ abortedRequests: 0 });
  });

  it("answers 503 naming the small engine when it is down, and readiness turns false", async () => {
    const doomed = await startFakeOpenAIServer({ label: "small", models: ["small"], embeddingDim: 8 });
    const doomedRouter = await writeRouter(work, remoteRouter(doomed.url), "doomed-router.json");
    const app = await buildApp(
      fakeServerConfig(doomed.url, large.url, doomedRouter, { "small-timeout-ms": 1000 }),
    );
    apps.push(app);
    const origin = await app.listen({ port: 0, host: "127.0.0.1" });
    expect((await postJson(`${origin}/v1/translate`, { text: "hello" })).status).toBe(200);
    await doomed.close();
    const down = await postJson(`${origin}/v1/translate`, { text: "hello" });
    expect(down.status).toBe(503);
    expect(down.body.error).toMatchObject({ code: "RLMT_ERR_SMALL_ENGINE_UNAVAILABLE" });
    expect((down.body.error as { message: string }).message).toContain(
      `small engine openai:${doomed.url}#small`,
    );
    const ready = await fetch(`${origin}/readyz`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toMatchObject({ checks: { small: { ok: false } } });
  });

  it("answers 429 with Retry-After beyond the small engine's queue", async () => {
    const { origin } = await startServer({ "queue-size": 4 });
    small.setBehaviour((request) =>
      request.path === "/v1/completions" ? { kind: "succeed", delayMs: 300 } : { kind: "succeed" },
    );
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, index) =>
        postJson(`${origin}/v1/translate`, { text: sampleText(index) }),
      ),
    );
    const refused = results.filter((result) => result.status === 429);
    expect(results.filter((result) => result.status === 200).length).toBe(4);
    expect(refused.length).toBe(6);
    expect(refused[0]?.headers.get("retry-after")).toBe("1");
    expect(refused[0]?.body.error).toMatchObject({ code: "RLMT_ERR_OVERLOADED" });
    expect((await postJson(`${origin}/v1/translate`, { text: "again" })).status).toBe(200);
  });
});

describe("routelmt serve: input validation and auth", () => {
  it("answers 400 naming the field for bad input, and keeps serving", async () => {
    const { origin } = await startServer({
      "max-text-bytes": 100,
      "body-limit-bytes": 4096,
      "max-batch-size": 3,
    });
    const url = `${origin}/v1/translate`;
    const cases: [unknown, number, string, string | null][] = [
      ['{"text": "unterminated', 400, "RLMT_ERR_MALFORMED_JSON", null],
      [{}, 400, "RLMT_ERR_INVALID_REQUEST", "text"],
      [{ text: "   \n\t" }, 400, "RLMT_ERR_INVALID_REQUEST", "text"],
      [{ text: "" }, 400, "RLMT_ERR_INVALID_REQUEST", "text"],
      [{ text: 42 }, 400, "RLMT_ERR_INVALID_REQUEST", "text"],
      [{ text: "x".repeat(101) }, 400, "RLMT_ERR_INVALID_REQUEST", "text"],
      [{ text: "ü".repeat(51) }, 400, "RLMT_ERR_INVALID_REQUEST", "text"],
      [{ text: "hi", source_lang: "xx-notalang" }, 400, "RLMT_ERR_INVALID_REQUEST", "source_lang"],
      [{ text: "hi", target_lang: 7 }, 400, "RLMT_ERR_INVALID_REQUEST", "target_lang"],
      [{ texts: ["ok", " "] }, 400, "RLMT_ERR_INVALID_REQUEST", "texts.1"],
      [{ texts: ["a", "b", "c", "d"] }, 400, "RLMT_ERR_INVALID_REQUEST", "texts"],
      [{ texts: "not a list" }, 400, "RLMT_ERR_INVALID_REQUEST", "texts"],
      [{ text: "a", texts: ["b"] }, 400, "RLMT_ERR_INVALID_REQUEST", "texts"],
      [[1, 2], 400, "RLMT_ERR_INVALID_REQUEST", null],
      ['{"text": "\\ud800"}', 400, "RLMT_ERR_INVALID_UTF8", "text"],
      [Buffer.from('{"text": "caf\xff"}', "latin1"), 400, "RLMT_ERR_INVALID_UTF8", null],
      [JSON.stringify({ text: "y".repeat(5000) }), 413, "RLMT_ERR_BODY_TOO_LARGE", null],
    ];
    for (const [body, status, code, field] of cases) {
      const answer = await postJson(url, body);
      expect({ body, status: answer.status, code: (answer.body.error as { code: string })?.code }).toEqual({
        body,
        status,
        code,
      });
      expect((answer.body.error as { field: string | null }).field).toBe(field);
      expect((answer.body.error as { message: string }).message.length).toBeGreaterThan(0);
    }
    const plain = await fetch(url, {
      method: "POST",
      headers: { "content-type": "text/plain" },
      body: "hello",
    });
    expect(plain.status).toBe(415);
    const chat = await postJson(`${origin}/v1/chat/completions`, {
      model: "routelmt",
      messages: [{ role: "assistant", content: "x" }],
    });
    expect(chat.status).toBe(400);
    expect(chat.body.error).toMatchObject({ field: "messages" });
    const chatLanguage = await postJson(`${origin}/v1/chat/completions`, {
      model: "routelmt",
      messages: [{ role: "user", content: "x" }],
      metadata: { source_lang: "klingon??" },
    });
    expect(chatLanguage.body.error).toMatchObject({ field: "metadata.source_lang" });
    const unknownRoute = await fetch(`${origin}/v2/nothing`);
    expect(unknownRoute.status).toBe(404);
    // Still serving.
    expect((await postJson(url, { text: "still here" })).status).toBe(200);
  });

  it("refuses invisible texts, wrong types, non-UTF-8 charsets and wrong methods in the error format", async () => {
    const { origin } = await startServer();
    const url = `${origin}/v1/translate`;
    const cases: [unknown, string, string][] = [
      [{ text: "\u0000\u0007 \t\u200b" }, "text", "must hold some text"],
      [{ text: "\u00ad\ufeff\u2028" }, "text", "must hold some text"],
      [{ texts: ["ok", "\u0001\u0002"] }, "texts.1", "must hold some text"],
      [{ text: 42 }, "text", "text: must be a string"],
      [{ text: null }, "text", "text: must be a string"],
      [{ text: { nested: "x" } }, "text", "text: must be a string"],
      [{ texts: [1] }, "texts.0", "texts.0: must be a string"],
      [{ texts: "x" }, "texts", "texts: must be a list of strings"],
      [{ text: "hi", source_lang: ["de"] }, "source_lang", "source_lang: must be a string"],
    ];
    for (const [body, field, message] of cases) {
      const answer = await postJson(url, body);
      expect({ body, status: answer.status }).toEqual({ body, status: 400 });
      const error = serverErrorBodySchema.parse(answer.body).error;
      expect({ body, field: error.field }).toEqual({ body, field });
      expect(error.message).toContain(message);
    }
    const chat = await postJson(`${origin}/v1/chat/completions`, {
      model: "routelmt",
      messages: [{ role: "user", content: 5 }],
    });
    expect(serverErrorBodySchema.parse(chat.body).error).toMatchObject({
      field: "messages.0.content",
      message: "messages.0.content: must be a string or a list of content parts",
    });
    const post = (contentType: string) =>
      fetch(url, { method: "POST", headers: { "content-type": contentType }, body: '{"text": "hi"}' });
    for (const refused of [
      "application/json; charset=latin1",
      "application/json;charset=utf-16",
      'application/json; charset="ascii"',
    ]) {
      const answer = await post(refused);
      expect({ refused, status: answer.status }).toEqual({ refused, status: 415 });
      expect(serverErrorBodySchema.parse(await answer.json()).error).toMatchObject({
        code: "RLMT_ERR_UNSUPPORTED_MEDIA_TYPE",
        field: "content-type",
      });
    }
    // A body of another type or content coding is refused for what it is, naming the header.
    for (const [headers, field] of [
      [{ "content-type": "text/plain" }, "content-type"],
      [{ "content-type": "application/json", "content-encoding": "gzip" }, "content-encoding"],
    ] as const) {
      const answer = await fetch(url, { method: "POST", headers, body: '{"text": "hi"}' });
      expect({ headers, status: answer.status }).toEqual({ headers, status: 415 });
      expect(serverErrorBodySchema.parse(await answer.json()).error).toMatchObject({
        code: "RLMT_ERR_UNSUPPORTED_MEDIA_TYPE",
        field,
      });
    }
    const identity = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", "content-encoding": "identity" },
      body: '{"text": "hi"}',
    });
    expect(identity.status).toBe(200);
    // HTTP/1.1 without Host: the error format and Connection: close (HTTP/1.0 needs none).
    for (const target of ["/healthz", "/v1/translate"]) {
      const hostless = await rawRequest(origin, [`GET ${target} HTTP/1.1\r\nConnection: keep-alive\r\n\r\n`]);
      expect({ target, status: hostless.status, connection: hostless.headers.connection }).toEqual({
        target,
        status: 400,
        connection: "close",
      });
      expect(serverErrorBodySchema.parse(JSON.parse(hostless.body)).error).toMatchObject({
        code: "RLMT_ERR_MALFORMED_REQUEST",
        field: "host",
      });
    }
    expect((await rawRequest(origin, ["GET /healthz HTTP/1.0\r\n\r\n"])).status).toBe(200);
    for (const accepted of [
      "application/json; charset=utf-8",
      "application/json;charset=UTF8",
      "application/json",
    ]) {
      expect({ accepted, status: (await post(accepted)).status }).toEqual({ accepted, status: 200 });
    }
    for (const [method, target, allow] of [
      ["GET", "/v1/translate", "POST"],
      ["OPTIONS", "/v1/translate", "POST"],
      ["GET", "/%76%31/chat/completions", "POST"],
      ["DELETE", "/v1/models", "GET, HEAD"],
      ["POST", "/healthz", "GET, HEAD"],
      // Methods fastify does not route by default, on a known path: still 405, not 404.
      ["TRACE", "/v1/translate", "POST"],
      ["PROPFIND", "/healthz", "GET, HEAD"],
      ["COPY", "/%76%31/models", "GET, HEAD"],
    ] as const) {
      const answer = await rawRequest(origin, [requestText(method, target)]);
      expect({ method, target, status: answer.status, allow: answer.headers.allow }).toEqual({
        method,
        target,
        status: 405,
        allow,
      });
      expect(serverErrorBodySchema.parse(JSON.parse(answer.body)).error.code).toBe(
        "RLMT_ERR_METHOD_NOT_ALLOWED",
      );
    }
    const head = await rawRequest(origin, [requestText("HEAD", "/v1/translate")]);
    expect([head.status, head.headers.allow]).toEqual([405, "POST"]);
  });

  it("requires a configured Bearer key on /v1 routes, and never logs it", async () => {
    const keyFile = path.join(work, "keys.txt");
    await writeFile(keyFile, "# keys\nfirst-secret-key\n\nsecond-secret-key\n");
    const lines: string[] = [];
    const app = await buildApp(
      fakeServerConfig(small.url, large.url, routerFile, { "api-key-file": keyFile, "log-level": "trace" }),
      { logStream: { write: (line: string) => lines.push(line) } },
    );
    apps.push(app);
    const origin = await app.listen({ port: 0, host: "127.0.0.1" });
    const url = `${origin}/v1/translate`;
    const missing = await postJson(url, { text: "hi" });
    expect(missing.status).toBe(401);
    expect(missing.body.error).toMatchObject({ code: "RLMT_ERR_UNAUTHORIZED" });
    expect(missing.headers.get("www-authenticate")).toMatch(/^Bearer/);
    expect((await postJson(url, { text: "hi" }, { authorization: "Bearer first-secret-kez" })).status).toBe(
      401,
    );
    expect((await postJson(url, { text: "hi" }, { authorization: "Basic first-secret-key" })).status).toBe(
      401,
    );
    expect((await postJson(url, { text: "hi" }, { authorization: "Bearer first-secret-key" })).status).toBe(
      200,
    );
    expect((await postJson(url, { text: "hi" }, { authorization: "bearer second-secret-key" })).status).toBe(
      200,
    );
    const client = new OpenAI({ baseURL: `${origin}/v1`, apiKey: "second-secret-key", maxRetries: 0 });
    expect((await client.models.list()).data).toHaveLength(1);
    expect((await fetch(`${origin}/healthz`)).status).toBe(200);
    // Requests Node's parser rejects after reading the key: their errors carry the raw bytes.
    const keyed = "Authorization: Bearer first-secret-key\r\n";
    for (const broken of [
      `POST /v1/translate HTTP/1.1\r\nHost: x\r\n${keyed}Bad Header\r\n\r\n`,
      `GET /v1/models HTTP/1.1\r\nHost: x\r\n${keyed}X-Filler: ${"a".repeat(20_000)}\r\n\r\n`,
    ]) {
      expect((await rawRequest(origin, [broken])).status).toBeGreaterThanOrEqual(400);
    }
    await app.close();
    apps.pop();
    const log = lines.join("");
    expect(log).not.toContain("secret-key");
    const requestLines = lines
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((line) => line.msg === "request");
    expect(requestLines.length).toBeGreaterThanOrEqual(7);
    const served = requestLines.find((line) => line.status === 200 && line.route === "/v1/translate");
    expect(served).toMatchObject({ reqId: expect.any(String) });
    expect((served?.translations as Record<string, unknown>[] | undefined)?.[0]).toMatchObject({
      model: expect.stringMatching(/^(small|large)$/),
      predicted_gain: expect.any(Number),
      stages_ms: { prefill: expect.any(Number), decision: expect.any(Number) },
    });
  });

  it("authenticates on the route the router matched, denying by default", async () => {
    const keyFile = path.join(work, "route-keys.txt");
    await writeFile(keyFile, "route-secret-key\n");
    const { origin } = await startServer({ "api-key-file": keyFile });
    const body = JSON.stringify({ text: "hi" });
    const chat = JSON.stringify({ model: "routelmt", messages: [{ role: "user", content: "hi" }] });
    const json = { "content-type": "application/json" };
    const send = (method: string, target: string, headers: Record<string, string> = {}, text = "") =>
      rawRequest(origin, [requestText(method, target, headers, text)]);
    // Every spelling the router resolves to a protected route, and every path it resolves to none.
    const spellings: [string, string, string][] = [
      ["POST", "/v1/translate", body],
      ["POST", "/%76%31/translate", body],
      ["POST", "/v%31/translate", body],
      ["POST", "/%76%31/%74ranslate", body],
      ["POST", "/%76%31/chat/completions", chat],
      ["GET", "/%76%31/models", ""],
      ["HEAD", "/v1/models", ""],
      ["POST", "/v1/translate?key=route-secret-key", body],
      ["POST", "//v1/translate", body],
      ["POST", "/v1//translate", body],
      ["POST", "/v1/translate/", body],
      ["POST", "/V1/translate", body],
      ["POST", "/v1%2Ftranslate", body],
      ["POST", "/v1/./translate", body],
      ["POST", "/x/../v1/translate", body],
      ["GET", "/v1/translate", ""],
      ["GET", "/nothing-here", ""],
    ];
    for (const [method, target, text] of spellings) {
      const answer = await send(method, target, json, text);
      expect({ method, target, status: answer.status }).toEqual({ method, target, status: 401 });
      if (method !== "HEAD") {
        expect(JSON.parse(answer.body)).toMatchObject({ error: { code: "RLMT_ERR_UNAUTHORIZED" } });
      }
    }
    // With the key, the encoded spelling reaches the route.
    const keyed = await send(
      "POST",
      "/%76%31/translate",
      { ...json, authorization: "Bearer route-secret-key" },
      body,
    );
    expect(keyed.status).toBe(200);
    // Health, readiness and metrics stay open, however they are spelled.
    for (const target of ["/healthz", "/%68ealthz", "/readyz", "/metrics", "/healthz?x=1"]) {
      expect({ target, status: (await send("GET", target)).status }).toEqual({ target, status: 200 });
    }
    expect((await send("HEAD", "/healthz")).status).toBe(200);
  });
});

describe("routelmt serve: hostile HTTP", () => {
  it("answers what Node's parser rejects with a JSON error and Connection: close, then closes cleanly", async () => {
    const { origin } = await startServer();
    const oversized = `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Filler: ${"a".repeat(20_000)}\r\n\r\n`;
    const valid = requestText("GET", "/healthz");
    const cases: [string, string, number, string][] = [
      ["unknown method", "FOO /v1/translate HTTP/1.1\r\nHost: x\r\n\r\n", 400, "RLMT_ERR_MALFORMED_REQUEST"],
      ["garbage request line", "\u0001\u0002 hello\r\n\r\n", 400, "RLMT_ERR_MALFORMED_REQUEST"],
      [
        "bad header",
        "GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        400,
        "RLMT_ERR_MALFORMED_REQUEST",
      ],
      ["oversized headers", oversized, 431, "RLMT_ERR_HEADERS_TOO_LARGE"],
      ["CONNECT", "CONNECT 127.0.0.1:1 HTTP/1.1\r\nHost: x\r\n\r\n", 400, "RLMT_ERR_MALFORMED_REQUEST"],
      ["undecodable path", "GET /v1/%zz HTTP/1.1\r\nHost: x\r\n\r\n", 400, "RLMT_ERR_MALFORMED_REQUEST"],
    ];
    for (const [name, request, status, code] of cases) {
      // A keep-alive client would send its next request on the same connection: it must be told not to.
      const answer = await rawRequest(origin, [request, 50, valid]);
      expect({ name, status: answer.status }).toEqual({ name, status });
      expect(serverErrorBodySchema.parse(JSON.parse(answer.body)).error.code).toBe(code);
      expect({ name, connection: answer.headers.connection }).toEqual({ name, connection: "close" });
      expect({ name, closed: answer.closedAfterMs !== null, reset: answer.reset }).toEqual({
        name,
        closed: true,
        reset: false,
      });
    }
    expect((await fetch(`${origin}/healthz`)).status).toBe(200);
  });

  it("answers 408 and closes connections whose request does not arrive within the request timeout", async () => {
    const { origin } = await startServer({ "request-timeout-ms": 500, budget: 1 });
    const head = (length: number) =>
      `POST /v1/translate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\n\r\n`;
    const stalled = [
      // 17 of 100 announced bytes, twenty times over: none may hold its connection.
      ...Array.from({ length: 20 }, () => [head(100), '{"text": "hello w']),
      // Headers that never end, and a connection that sends nothing at all.
      ["POST /v1/translate HTTP/1.1\r\nHost: x\r\nX-Slow: "],
      [],
    ];
    const answers = await Promise.all(
      stalled.map((chunks) => rawRequest(origin, chunks, { timeoutMs: 5000 })),
    );
    for (const answer of answers) {
      expect(answer.status).toBe(408);
      expect(serverErrorBodySchema.parse(JSON.parse(answer.body)).error.code).toBe(
        "RLMT_ERR_REQUEST_TIMEOUT",
      );
      expect(answer.headers.connection).toBe("close");
      // Node checks every tenth of the timeout; the rest is scheduling slack on a busy machine.
      expect(answer.closedAfterMs).toBeGreaterThanOrEqual(450);
      expect(answer.closedAfterMs).toBeLessThan(1500);
    }
    // A body that is slow but complete within the bound is served.
    const body = JSON.stringify({ text: "slow but in time" });
    const slow = await rawRequest(
      origin,
      [head(Buffer.byteLength(body)), body.slice(0, 5), 200, body.slice(5)],
      {
        keepOpen: true,
      },
    );
    expect(slow.status).toBe(200);
    // The bound is on receiving the request: an answer that takes longer than it is not cut.
    large.setBehaviour({ kind: "succeed", delayMs: 800 });
    const started = performance.now();
    const late = await postJson(`${origin}/v1/translate`, { text: "still serving" });
    expect(performance.now() - started).toBeGreaterThan(700);
    expect([late.status, late.body.model]).toEqual([200, "large"]);
  });
});
