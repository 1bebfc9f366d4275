import { describe, expect, it } from "vitest";
import { EngineCallError, EngineTimeoutError, InputError } from "../errors/index.js";
import { backoffDelayMs, type RetryEvent, sleep, withRetries } from "./retry.js";

describe("backoffDelayMs", () => {
  it("doubles per retry, keeps half fixed and caps at the maximum", () => {
    // base 100: exponential 100, 200, 400, 800 → capped at 500 from the fourth retry.
    expect(backoffDelayMs(1, 100, 500, 0)).toBe(50);
    expect(backoffDelayMs(1, 100, 500, 0.5)).toBe(75);
    expect(backoffDelayMs(2, 100, 500, 0)).toBe(100);
    expect(backoffDelayMs(3, 100, 500, 1)).toBe(400);
    expect(backoffDelayMs(4, 100, 500, 0)).toBe(250);
    expect(backoffDelayMs(10, 100, 500, 1)).toBe(500);
  });
});

describe("withRetries", () => {
  it("retries retryable engine errors and reports each retry", async () => {
    const events: RetryEvent[] = [];
    let calls = 0;
    const result = await withRetries(
      async (attempt) => {
        calls++;
        if (attempt < 2) throw new EngineCallError("e", "boom", { status: 503 });
        return "ok";
      },
      { retries: 3, baseDelayMs: 2, random: () => 0, onRetry: (event) => events.push(event) },
    );
    expect(result).toBe("ok");
    expect(calls).toBe(3);
    expect(events.map((event) => [event.retry, event.delayMs, event.error.status])).toEqual([
      [1, 1, 503],
      [2, 2, 503],
    ]);
  });

  it("throws the last error after the allowed retries", async () => {
    let calls = 0;
    const failing = withRetries(
      async () => {
        calls++;
        throw new EngineTimeoutError("engine-x", 10);
      },
      { retries: 2, baseDelayMs: 1 },
    );
    await expect(failing).rejects.toBeInstanceOf(EngineTimeoutError);
    expect(calls).toBe(3);
  });

  it("does not retry non-retryable or foreign errors", async () => {
    let calls = 0;
    const badRequest = withRetries(
      async () => {
        calls++;
        throw new EngineCallError("e", "bad request", { status: 400 });
      },
      { retries: 5, baseDelayMs: 1 },
    );
    await expect(badRequest).rejects.toMatchObject({ status: 400 });
    expect(calls).toBe(1);
    const input = withRetries(
      async () => {
        calls++;
        throw new InputError("bad");
      },
      { retries: 5, baseDelayMs: 1 },
    );
    await expect(input).rejects.toBeInstanceOf(InputError);
    expect(calls).toBe(2);
  });

  it("waits at least the server's Retry-After, and gives up when it exceeds the cap", async () => {
    const events: RetryEvent[] = [];
    let calls = 0;
    const started = performance.now();
    await withRetries(
      async (attempt) => {
        calls++;
        if (attempt === 0) throw new EngineCallError("e", "slow down", { status: 429, retryAfterMs: 80 });
        return attempt;
      },
      { retries: 1, baseDelayMs: 1, onRetry: (event) => events.push(event) },
    );
    expect(performance.now() - started).toBeGreaterThanOrEqual(79);
    expect(events[0]?.delayMs).toBe(80);

    calls = 0;
    const tooLong = withRetries(
      async () => {
        calls++;
        throw new EngineCallError("e", "come back later", { status: 429, retryAfterMs: 120_000 });
      },
      { retries: 3, baseDelayMs: 1 },
    );
    await expect(tooLong).rejects.toMatchObject({ retryAfterMs: 120_000 });
    expect(calls).toBe(1);
  });

  it("stops waiting when the signal aborts", async () => {
    const controller = new AbortController();
    const reason = new Error("caller gave up");
    setTimeout(() => controller.abort(reason), 20);
    const started = performance.now();
    const aborted = withRetries(
      async () => {
        throw new EngineCallError("e", "down", { status: 500 });
      },
      { retries: 3, baseDelayMs: 10_000, signal: controller.signal },
    );
    await expect(aborted).rejects.toBe(reason);
    expect(performance.now() - started).toBeLessThan(2_000);
  });
});

describe("sleep", () => {
  it("rejects at once on an already aborted signal", async () => {
    await expect(sleep(10_000, AbortSignal.abort(new Error("now")))).rejects.toThrow("now");
  });
});
