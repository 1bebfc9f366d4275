/**
 * The FFI engine over node-llama-cpp's libllama: its states against a plain-TypeScript forward pass
 * (generated random-weight model, always runs) and against node-llama-cpp itself (tinymt-small from
 * ../shared, skipped when absent).
 */
import { readFileSync } from "node:fs";
import { mkdtemp, open, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {
  getLlama,
  type Llama,
  LlamaCompletion,
  LlamaLogLevel,
  type LlamaModel,
  readGgufFileInfo,
} from "node-llama-cpp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InputError, UnsupportedError, UsageError } from "../src/errors/index.js";
import { argmax, LlamaFfiEngine, validateFeatureLayers } from "../src/features/llama-ffi-engine.js";
import { readGguf } from "./helpers/gguf-reader.js";
import { referenceForward } from "./helpers/reference-llama.js";
import { hasShared, sharedPath, sharedSkipReason } from "./helpers/shared.js";
import { writeTinyLlamaGguf } from "./helpers/tiny-llama.js";
import { cosine, maxAbsDifference } from "./helpers/vector-compare.js";

function mappedLibllamaPaths(): string[] {
  const maps = readFileSync("/proc/self/maps", "utf8");
  const paths = new Set(
    maps
      .split("\n")
      .map((line) => line.split(/\s+/).slice(5).join(" "))
      .filter((file) => path.basename(file).startsWith("libllama.v")),
  );
  return [...paths];
}

// libllama is shared with node-llama-cpp's addon, and so is its log callback: loading node-llama-cpp
// first routes the engine's llama.cpp logs through its logger (errors only) instead of raw stderr.
let llama: Llama;
beforeAll(async () => {
  llama = await getLlama({ gpu: false, logLevel: LlamaLogLevel.error });
});

describe("argmax", () => {
  it("returns the index of the largest value, the first on ties", () => {
    expect(argmax([0.5, 2, -1, 2])).toBe(1);
    expect(argmax(new Float32Array([-3, -2, -2.5]))).toBe(1);
    expect(() => argmax([])).toThrow(UsageError);
  });
});

describe("validateFeatureLayers", () => {
  const llamaModel = { layerCount: 4, architecture: "llama" };
  it("accepts final and layer indices 0…n-1 of an allow-listed architecture", () => {
    expect(() => validateFeatureLayers(["final", 0, 3], llamaModel)).not.toThrow();
  });
  it("refuses indices outside 0…n-1 and non-integers", () => {
    expect(() => validateFeatureLayers([4], llamaModel)).toThrow(UsageError);
    expect(() => validateFeatureLayers([-1], llamaModel)).toThrow(UsageError);
    expect(() => validateFeatureLayers([1.5], llamaModel)).toThrow(UsageError);
  });
  it("refuses layer inputs for architectures that do not record them, but allows final", () => {
    const qwen2 = { layerCount: 4, architecture: "qwen2" };
    expect(() => validateFeatureLayers([1], qwen2)).toThrow(UnsupportedError);
    expect(() => validateFeatureLayers(["final"], qwen2)).not.toThrow();
  });
});

describe("LlamaFfiEngine on a generated llama GGUF, against the reference forward pass", () => {
  let directory: string;
  let engine: LlamaFfiEngine;
  let modelPath: string;

  beforeAll(async () => {
    directory = await mkdtemp(path.join(os.tmpdir(), "routelmt-llama-ffi-"));
    modelPath = path.join(directory, "tiny.gguf");
    writeTinyLlamaGguf(modelPath, { nLayer: 3 });
    engine = await LlamaFfiEngine.open({ modelPath, threads: 1, contextSize: 64, sequences: 2 });
  });
  afterAll(async () => {
    engine?.dispose();
    if (directory) await rm(directory, { recursive: true, force: true });
  });

  it("reports the model shape", () => {
    expect(engine.architecture).toBe("llama");
    expect(engine.layerCount).toBe(3);
    expect(engine.embeddingSize).toBe(64);
    expect(engine.vocabularySize).toBe(512);
  });

  it("returns every layer input, the final state and the logits of the last prompt token", () => {
    const tokens = [1, 40, 77, 300, 12, 5, 511, 260];
    const { features, logitsLast } = engine.prefill(0, tokens, { layers: [0, 1, 2, "final"] });
    engine.releaseSequence(0);
    const reference = referenceForward(readGguf(modelPath), tokens, { simulateF16Attention: true });
    expect(features).toHaveLength(4);
    // Layer 0 is a row copy of the token embedding: exact.
    expect(Array.from(features[0] as Float32Array)).toEqual(
      Array.from(reference.layerInputs[0] as Float32Array),
    );
    for (const layer of [1, 2]) {
      const mine = features[layer] as Float32Array;
      const theirs = reference.layerInputs[layer] as Float32Array;
      expect(mine).toHaveLength(64);
      expect(cosine(mine, theirs)).toBeGreaterThan(0.9999);
      expect(maxAbsDifference(mine, theirs)).toBeLessThan(2e-3);
    }
    expect(cosine(features[3] as Float32Array, reference.hiddenFinal)).toBeGreaterThan(0.9999);
    expect(cosine(logitsLast, reference.logitsLast)).toBeGreaterThan(0.9999);
    expect(argmax(logitsLast)).toBe(argmax(reference.logitsLast));
  });

  it("gives the same layer inputs and logits whether or not the final state is read", () => {
    const tokens = [1, 9, 99, 199, 299, 399];
    const withFinal = engine.prefill(0, tokens, { layers: [1, "final"] });
    const withoutFinal = engine.prefill(1, tokens, { layers: [1] });
    engine.releaseSequence(0);
    engine.releaseSequence(1);
    const allOutputs = engine.prefill(0, tokens, {
      layers: [1, "final"],
      finalStrategy: "embeddings-on-all",
    });
    engine.releaseSequence(0);
    expect(
      maxAbsDifference(withFinal.features[1] as Float32Array, allOutputs.features[1] as Float32Array),
    ).toBeLessThan(1e-4);
    expect(
      maxAbsDifference(withFinal.features[0] as Float32Array, allOutputs.features[0] as Float32Array),
    ).toBeLessThan(1e-5);
    expect(
      maxAbsDifference(withFinal.features[0] as Float32Array, withoutFinal.features[0] as Float32Array),
    ).toBeLessThan(1e-5);
    expect(maxAbsDifference(withFinal.logitsLast, withoutFinal.logitsLast)).toBeLessThan(1e-4);
  });

  it("continues greedily from the prefilled cache exactly as a from-scratch reference would", () => {
    const prompt = [1, 30, 31, 32];
    const { logitsLast } = engine.prefill(0, prompt);
    const generated = engine.decodeGreedy(0, argmax(logitsLast), 4);
    engine.releaseSequence(0);
    const model = readGguf(modelPath);
    const expected: number[] = [];
    let context = [...prompt];
    for (let step = 0; step < generated.length; step++) {
      const next = argmax(referenceForward(model, context, { simulateF16Attention: true }).logitsLast);
      expected.push(next);
      context = [...context, next];
    }
    expect(generated.length).toBeGreaterThan(0);
    expect(generated).toEqual(expected);
  });

  it("refuses bad requests before calling into llama.cpp and stays usable", () => {
    expect(() => engine.prefill(0, [1, 2], { layers: [3] })).toThrow(UsageError);
    expect(() => engine.prefill(0, [1, 2], { layers: [-1] })).toThrow(UsageError);
    expect(() => engine.prefill(0, [])).toThrow(InputError);
    expect(() => engine.prefill(0, new Array(65).fill(5))).toThrow(InputError);
    expect(() => engine.prefill(0, [1, 512])).toThrow(InputError);
    expect(() => engine.prefill(2, [1, 2])).toThrow(UsageError);
    expect(() => engine.decodeGreedy(0, 5, 3)).toThrow(UsageError);
    engine.prefill(0, [1, 2]);
    expect(() => engine.prefill(0, [1, 2])).toThrow(UsageError);
    engine.releaseSequence(0);
    const { features } = engine.prefill(0, [1, 2, 3], { layers: [2] });
    engine.releaseSequence(0);
    expect(features[0]).toHaveLength(64);
  });

  it("reports a missing model file as an InputError and refuses calls after dispose", async () => {
    await expect(
      LlamaFfiEngine.open({ modelPath: path.join(directory, "missing.gguf"), threads: 1 }),
    ).rejects.toThrow(InputError);
    const shortLived = await LlamaFfiEngine.open({ modelPath, threads: 1, contextSize: 16 });
    shortLived.dispose();
    shortLived.dispose();
    expect(() => shortLived.tokenize("a", true)).toThrow(UsageError);
  });

  it("fills a sequence up to its context size and stops generating there", () => {
    const { logitsLast } = engine.prefill(0, new Array(60).fill(7));
    const generated = engine.decodeGreedy(0, argmax(logitsLast), 100);
    engine.releaseSequence(0);
    // 60 prompt tokens + 4 decoded = 64 positions; the 5th generated token is returned but not decoded.
    expect(generated).toHaveLength(5);
  });
});

const tinymtParts = ["models", "tinymt-small.gguf"];
const hasTinymt = hasShared(tinymtParts);

const tinymtTitle = "LlamaFfiEngine on tinymt-small, against node-llama-cpp";
describe(hasTinymt ? tinymtTitle : sharedSkipReason(tinymtTitle), () => {
  const sentences = [
    "A man is riding a bike.",
    "Two dogs are playing in the snow.",
    "A woman in a red dress is walking down the street.",
    "A group of children are playing soccer on a field.",
    "A little girl is sitting on a bench.",
  ];
  const promptOf = (sentence: string) => `English: ${sentence}\nGerman:`;
  let engine: LlamaFfiEngine;
  let model: LlamaModel;

  beforeAll(async () => {
    if (!hasTinymt) return;
    model = await llama.loadModel({ modelPath: sharedPath(...tinymtParts) });
    engine = await LlamaFfiEngine.open({
      modelPath: sharedPath(...tinymtParts),
      threads: 1,
      contextSize: 512,
    });
  });
  afterAll(async () => {
    engine?.dispose();
    await model?.dispose();
  });

  it.skipIf(!hasTinymt)("shares one libllama mapping with node-llama-cpp's addon", () => {
    expect(mappedLibllamaPaths()).toHaveLength(1);
  });

  it.skipIf(!hasTinymt)("tokenizes like node-llama-cpp", () => {
    for (const sentence of sentences) {
      expect(engine.tokenize(promptOf(sentence), true)).toEqual([
        model.tokens.bos,
        ...model.tokenize(promptOf(sentence)),
      ]);
    }
  });

  it.skipIf(!hasTinymt)("reads the same final state as node-llama-cpp's embedding context", async () => {
    const embeddingContext = await model.createEmbeddingContext({ threads: 1, contextSize: 512 });
    try {
      for (const sentence of sentences.slice(0, 3)) {
        const { vector } = await embeddingContext.getEmbeddingFor(promptOf(sentence));
        const { features } = engine.prefill(0, engine.tokenize(promptOf(sentence), true), {
          layers: ["final"],
        });
        engine.releaseSequence(0);
        expect(features[0]).toHaveLength(128);
        expect(cosine(features[0] as Float32Array, vector)).toBeGreaterThan(0.9999);
      }
    } finally {
      await embeddingContext.dispose();
    }
  });

  it.skipIf(!hasTinymt)("generates node-llama-cpp's greedy translation while reading features", async () => {
    const context = await model.createContext({ contextSize: 512, threads: 1 });
    try {
      const completion = new LlamaCompletion({ contextSequence: context.getSequence() });
      for (const sentence of sentences) {
        const expected = await completion.generateCompletion(promptOf(sentence), {
          temperature: 0,
          repeatPenalty: false,
          maxTokens: 60,
        });
        const { logitsLast } = engine.prefill(0, engine.tokenize(promptOf(sentence), true), {
          layers: [1, "final"],
        });
        const generated = engine.decodeGreedy(0, argmax(logitsLast), 60);
        engine.releaseSequence(0);
        expect(engine.detokenize(generated).trim()).toBe(expected.trim());
        expect(expected.trim().length).toBeGreaterThan(0);
      }
    } finally {
      await context.dispose();
    }
  });

  it.skipIf(!hasTinymt)(
    "reads layer 0 as the last prompt token's embedding row and distinct later layers",
    async () => {
      const tokens = engine.tokenize(promptOf(sentences[0] as string), true);
      const { features } = engine.prefill(0, tokens, { layers: [0, 1, "final"] });
      engine.releaseSequence(0);

      const info = await readGgufFileInfo(sharedPath(...tinymtParts), { logWarnings: false });
      const embedding = info.tensorInfo?.find((tensor) => tensor.name === "token_embd.weight");
      expect(embedding?.ggmlType).toBe(0); // F32
      const lastToken = tokens[tokens.length - 1] as number;
      const rowBytes = 128 * Float32Array.BYTES_PER_ELEMENT;
      const file = await open(sharedPath(...tinymtParts), "r");
      const row = Buffer.alloc(rowBytes);
      try {
        await file.read(row, 0, rowBytes, Number(embedding?.fileOffset) + lastToken * rowBytes);
      } finally {
        await file.close();
      }
      expect(Array.from(features[0] as Float32Array)).toEqual(
        Array.from(new Float32Array(row.buffer, row.byteOffset, 128)),
      );
      expect(features[1]).toHaveLength(128);
      expect(cosine(features[0] as Float32Array, features[1] as Float32Array)).toBeLessThan(0.99);
      expect(cosine(features[1] as Float32Array, features[2] as Float32Array)).toBeLessThan(0.99);

      const reference = referenceForward(readGguf(sharedPath(...tinymtParts)), tokens, {
        simulateF16Attention: true,
      });
      expect(cosine(features[1] as Float32Array, reference.layerInputs[1] as Float32Array)).toBeGreaterThan(
        0.9999,
      );
      expect(cosine(features[2] as Float32Array, reference.hiddenFinal)).toBeGreaterThan(0.9999);
    },
  );

  it.skipIf(!hasTinymt)("refuses a layer out of range without crashing", () => {
    expect(() => engine.prefill(0, [1, 2, 3], { layers: [2] })).toThrow(UsageError);
    expect(() => engine.prefill(0, [1, 2, 3], { layers: [0] })).not.toThrow();
    engine.releaseSequence(0);
  });
});
