import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type FakeOpenAIServer, startFakeOpenAIServer } from "../../test/helpers/fake-openai-server.js";
import { EngineCallError, EngineTimeoutError } from "../errors/index.js";
import { bodySnippet, parseRetryAfterMs, postJson } from "./http.js";

describe("parseRetryAfterMs", () => {
  const now = Date.parse("2026-01-01T00:00:00Z");
  it("reads delay-seconds", () => {
    expect(parseRetryAfterMs("120", now)).toBe(120_000);
    expect(parseRetryAfterMs(" 0 ", now)).toBe(0);
    expect(parseRetryAfterMs("0.25", now)).toBe(250);
  });
  it("reads HTTP-dates relative to now, never negative", () => {
    expect(parseRetryAfterMs("Thu, 01 Jan 2026 00:00:30 GMT", now)).toBe(30_000);
    expect(parseRetryAfterMs("Wed, 31 Dec 2025 23:59:00 GMT", now)).toBe(0);
  });
  it("ignores absent or unreadable values", () => {
    expect(parseRetryAfterMs(null, now)).toBeUndefined();
    expect(parseRetryAfterMs(undefined, now)).toBeUndefined();
    expect(parseRetryAfterMs("", now)).toBeUndefined();
    expect(parseRetryAfterMs("soon", now)).toBeUndefined();
    expect(parseRetryAfterMs("-5", now)).toBeUndefined();
  });
});

describe("bodySnippet", () => {
  it("flattens whitespace and cuts long bodies", () => {
    expect(bodySnippet("a\n  b")).toBe("a b");
    expect(bodySnippet("x".repeat(400))).toBe(`${"x".repeat(300)}…`);
  });
});

describe("postJson", () => {
  let server: FakeOpenAIServer;
  beforeAll(async () => {
    server = await startFakeOpenAIServer();
  });
  afterAll(async () => {
    await server.close();
  });
  beforeEach(() => server.setBehaviour({ kind: "succeed" }));

  const call = (timeoutMs = 2_000, signal?: AbortSignal) =>
    postJson({
      engine: "svc",
      url: `${server.origin}/score`,
      body: { items: [{ mt: "abc" }] },
      timeoutMs,
      signal,
    });

  it("posts JSON and returns the parsed answer", async () => {
    expect(await call()).toEqual({ scores: [3] });
    expect(server.requests[0]?.headers["content-type"]).toBe("application/json");
  });

  it("maps a non-2xx answer to an EngineCallError with status and Retry-After", async () => {
    server.setBehaviour({ kind: "fail", status: 429, retryAfter: "7", body: "too many" });
    const error = await call().catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(EngineCallError);
    expect(error).toMatchObject({ status: 429, retryAfterMs: 7000, isRetryable: true, engine: "svc" });
    expect((error as Error).message).toBe(`svc: HTTP 429 from POST ${server.origin}/score: too many`);
  });

  it("maps a timeout, a refused connection and malformed JSON", async () => {
    server.setBehaviour({ kind: "hang" });
    await expect(call(50)).rejects.toBeInstanceOf(EngineTimeoutError);

    // A port that was just free: nothing listens there any more.
    const closed = await startFakeOpenAIServer();
    await closed.close();
    const refused = postJson({ engine: "svc", url: `${closed.origin}/x`, body: {}, timeoutMs: 2_000 });
    await expect(refused).rejects.toMatchObject({ status: undefined, isRetryable: true });
    await expect(refused).rejects.toThrow(/ECONNREFUSED/);

    server.setBehaviour({ kind: "malformed" });
    await expect(call()).rejects.toMatchObject({ isRetryable: false, status: 200 });
  });

  it("rethrows the caller's abort reason rather than a timeout", async () => {
    server.setBehaviour({ kind: "hang" });
    const reason = new Error("stop");
    await expect(call(5_000, AbortSignal.abort(reason))).rejects.toBe(reason);
  });
});

describe("postJson connections", () => {
  it("keeps connections alive between calls and reports a connection closed mid-answer", async () => {
    const server = await startFakeOpenAIServer();
    try {
      const call = () =>
        postJson({ engine: "svc", url: `${server.origin}/score`, body: { items: [] }, timeoutMs: 2_000 });
      await call();
      await call();
      expect(server.requests.map((request) => request.headers.connection)).toEqual([
        "keep-alive",
        "keep-alive",
      ]);
      server.setBehaviour({ kind: "stream-fail", afterTokens: 1 });
      const broken = postJson({
        engine: "svc",
        url: `${server.url}/chat/completions`,
        body: { model: "large", stream: true, messages: [{ role: "user", content: "a b c" }] },
        timeoutMs: 2_000,
      });
      await expect(broken).rejects.toMatchObject({ status: undefined, isRetryable: true, engine: "svc" });
    } finally {
      await server.close();
    }
  });
});
