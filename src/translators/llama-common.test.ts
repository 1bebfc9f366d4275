import { describe, expect, it } from "vitest";
import { EngineCallError, InputError, UsageError } from "../errors/index.js";
import {
  asEngineError,
  assertPromptFits,
  assertRoomForPrompt,
  type HeldPrefillParts,
  heldPrefill,
  resolveMaxTokens,
  WaitingPool,
} from "./llama-common.js";
import type { Translation } from "./types.js";

describe("request guards", () => {
  it("resolves maxTokens from the request, else the default, and rejects non-positive ones", () => {
    expect(resolveMaxTokens({ maxTokens: 7 }, 256)).toBe(7);
    expect(resolveMaxTokens({}, 256)).toBe(256);
    expect(() => resolveMaxTokens({ maxTokens: 0 }, 256)).toThrow(
      "maxTokens must be a positive integer, got 0",
    );
    expect(() => resolveMaxTokens({ maxTokens: 1.5 }, 256)).toThrow(UsageError);
  });

  it("lets a prompt fill the context exactly, not one cell more, and names the request", () => {
    expect(() => assertPromptFits(10, 6, 16)).not.toThrow();
    expect(() => assertPromptFits(11, 6, 16)).toThrow(InputError);
    expect(() => assertPromptFits(11, 6, 16, "r1")).toThrow(
      "prompt of 11 tokens plus maxTokens 6 exceeds the context size 16 (request r1)",
    );
    expect(() => assertRoomForPrompt(15, 16)).not.toThrow();
    expect(() => assertRoomForPrompt(16, 16)).toThrow(
      "maxTokens (16) leaves no room for a prompt in contextSize 16",
    );
  });

  it("wraps foreign errors as non-retryable engine errors and passes its own through", () => {
    const wrapped = asEngineError("llama", new Error("boom"));
    expect(wrapped).toBeInstanceOf(EngineCallError);
    expect((wrapped as EngineCallError).isRetryable).toBe(false);
    expect(wrapped.message).toContain("boom");
    const own = new InputError("bad");
    expect(asEngineError("llama", own)).toBe(own);
  });
});

describe("WaitingPool", () => {
  it("hands out the last item first and serves waiters in arrival order", async () => {
    const pool = new WaitingPool([2, 1, 0]);
    expect(await pool.acquire()).toBe(0);
    expect(await pool.acquire()).toBe(1);
    expect(await pool.acquire()).toBe(2);
    const served: number[] = [];
    const first = pool.acquire().then((item) => served.push(item));
    const second = pool.acquire().then((item) => served.push(item * 10));
    pool.giveBack(1);
    pool.giveBack(2);
    await Promise.all([first, second]);
    expect(served).toEqual([1, 20]);
    pool.giveBack(0);
    expect(await pool.acquire()).toBe(0);
  });

  it("rejects waiters and later acquires once closed", async () => {
    const pool = new WaitingPool([0]);
    expect(await pool.acquire()).toBe(0);
    const waiting = pool.acquire();
    pool.close(new UsageError("disposed"));
    await expect(waiting).rejects.toThrow("disposed");
    await expect(pool.acquire()).rejects.toThrow(UsageError);
    pool.giveBack(0);
    await expect(pool.acquire()).rejects.toThrow("disposed");
  });
});

describe("heldPrefill", () => {
  const translation: Translation = {
    text: "hallo",
    model: "m.gguf",
    promptTokens: 3,
    outputTokens: 1,
    ms: 1,
    finishReason: "stop",
  };

  function parts(overrides: Partial<HeldPrefillParts<number>> = {}) {
    const log: string[] = [];
    const base: HeldPrefillParts<number> = {
      engineName: "test",
      tokens: [1, 2, 3],
      features: new Float32Array([0.5]),
      entropy: 1.25,
      contextSize: 10,
      defaultMaxTokens: 4,
      assertUsable: () => undefined,
      decode: async (maxTokens) => {
        log.push(`decode ${maxTokens}`);
        return translation;
      },
      releaseSequence: async () => {
        log.push("release");
      },
      ...overrides,
    };
    return { base, log };
  }

  it("reports the prefill, decodes once with the default maxTokens and releases once", async () => {
    const { base, log } = parts();
    const prefilled = heldPrefill(base);
    expect(prefilled.promptTokens).toBe(3);
    expect(prefilled.promptTokenIds).toEqual([1, 2, 3]);
    expect(prefilled.entropy).toBe(1.25);
    expect(await prefilled.continue()).toBe(translation);
    await prefilled.release();
    expect(log).toEqual(["decode 4", "release"]);
    await expect(prefilled.continue()).rejects.toThrow("this prefill was already continued or released");
  });

  it("reports NaN entropy as null and releases without decoding, idempotently", async () => {
    const { base, log } = parts({ entropy: Number.NaN });
    const prefilled = heldPrefill(base);
    expect(prefilled.entropy).toBeNull();
    await prefilled.release();
    await prefilled.release();
    expect(log).toEqual(["release"]);
    await expect(prefilled.continue()).rejects.toThrow(UsageError);
  });

  it("releases and rejects when the prompt plus maxTokens overflows the context", async () => {
    const { base, log } = parts();
    const prefilled = heldPrefill(base);
    await expect(prefilled.continue({ maxTokens: 8 })).rejects.toThrow(
      "prompt of 3 tokens plus maxTokens 8 exceeds the context size 10",
    );
    expect(log).toEqual(["release"]);
  });

  it("wraps a failed decode and still releases", async () => {
    const { base, log } = parts({
      decode: async () => {
        throw new Error("kv cache full");
      },
    });
    await expect(heldPrefill(base).continue()).rejects.toThrow(EngineCallError);
    expect(log).toEqual(["release"]);
  });
});
