/**
 * The FFI engine's worker thread as its owner sees it: loading errors, a full context, and what
 * happens to requests in flight when the worker dies or is disposed (they reject; nothing hangs).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EngineCallError, InputError, UsageError } from "../src/errors/index.js";
import { featureViewsOf } from "../src/features/feature-views.js";
import { LlamaFfiWorkerEngine } from "../src/features/llama-ffi-worker-engine.js";
import { writeTinyLlamaGguf } from "./helpers/tiny-llama.js";

describe("LlamaFfiWorkerEngine", () => {
  let directory: string;
  let modelPath: string;

  beforeAll(async () => {
    directory = await mkdtemp(path.join(tmpdir(), "routelmt-ffi-worker-"));
    modelPath = path.join(directory, "tiny.gguf");
    writeTinyLlamaGguf(modelPath);
  });
  afterAll(async () => {
    if (directory) await rm(directory, { recursive: true, force: true });
  });

  it("reports a model llama.cpp cannot load as an InputError and leaves no worker behind", async () => {
    await expect(
      LlamaFfiWorkerEngine.open({
        modelPath: path.join(directory, "missing.gguf"),
        threads: 1,
        contextSize: 64,
        sequences: 1,
      }),
    ).rejects.toThrow(InputError);
  });

  it("stops a generation whose sequence fills its context with finish reason length", async () => {
    const engine = await LlamaFfiWorkerEngine.open({ modelPath, threads: 1, contextSize: 16, sequences: 2 });
    try {
      expect(engine.info).toMatchObject({ architecture: "llama", contextSize: 16, sequences: 2 });
      const prompt = [1, ...Array.from({ length: 9 }, (_, index) => 300 + index)];
      const { firstToken } = await engine.prefill(0, prompt, {
        views: featureViewsOf("final", 2),
        entropy: false,
      });
      const result = await engine.continueFrom(0, { maxTokens: 100 });
      // Unless generation ends first: 10 prompt cells + 6 decoded tokens fill 16; the 7th is not decoded.
      if (result.finishReason === "length") expect(result.tokens).toHaveLength(7);
      else expect(result.tokens.length).toBeLessThan(7);
      expect(result.tokens[0] ?? firstToken).toBe(firstToken);
      engine.release(0);
    } finally {
      await engine.dispose();
    }
  });

  it("rejects requests in flight and every later one when the worker dies", async () => {
    const engine = await LlamaFfiWorkerEngine.open({ modelPath, threads: 1, contextSize: 256, sequences: 2 });
    try {
      const prompt = [1, 300, 301, 302];
      const running = engine.translate(0, prompt, { maxTokens: 200, onTokens: () => engine.simulateCrash() });
      await expect(running).rejects.toThrow(EngineCallError);
      await expect(running).rejects.toThrow(/worker/);
      await expect(engine.prefill(1, prompt, { views: [], entropy: false })).rejects.toThrow(EngineCallError);
      await expect(engine.translate(1, prompt, { maxTokens: 5 })).rejects.toThrow(EngineCallError);
      engine.release(0);
    } finally {
      await engine.dispose();
    }
  });

  it("rejects requests in flight with a UsageError when disposed", async () => {
    const engine = await LlamaFfiWorkerEngine.open({ modelPath, threads: 1, contextSize: 256, sequences: 2 });
    let steps = 0;
    const running = engine.translate(0, [1, 300, 301], {
      maxTokens: 200,
      onTokens: () => {
        steps += 1;
      },
    });
    const disposing = engine.dispose();
    await expect(running).rejects.toThrow(UsageError);
    await expect(running).rejects.toThrow(/disposed while this request was in flight/);
    await disposing;
    await expect(engine.translate(1, [1, 2], { maxTokens: 5 })).rejects.toThrow(UsageError);
    expect(steps).toBeLessThan(200);
  });
});
