/**
 * The FFI engine over node-llama-cpp's libllama, called directly (no worker): its views against a
 * plain-TypeScript forward pass (generated random-weight model, always runs), its batched decoding
 * against one-sequence decoding, and its states against node-llama-cpp itself (tinymt-small from
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
import { type FeatureView, featureViewsOf } from "../src/features/feature-views.js";
import { LlamaFfiEngine } from "../src/features/llama-ffi-engine.js";
import { argmax, logSoftmaxAt, NORM_STATISTICS_DIM, normStatistics } from "../src/features/pooling.js";
import { assertViewsSupported } from "../src/features/view-architectures.js";
import { readGguf } from "./helpers/gguf-reader.js";
import { euclideanNorm, meanRows, referenceForward } from "./helpers/reference-llama.js";
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

const views = (selection: string, layerCount = 3): FeatureView[] => featureViewsOf(selection, layerCount);

describe("assertViewsSupported", () => {
  it("accepts every view of a checked architecture", () => {
    expect(() => assertViewsSupported(views("all"), "gemma3", "m.gguf")).not.toThrow();
  });
  it("allows only last:final elsewhere, naming the architecture", () => {
    expect(() => assertViewsSupported(views("final"), "minicpm", "m.gguf")).not.toThrow();
    expect(() => assertViewsSupported(views("mean:final"), "minicpm", "m.gguf")).toThrow(UnsupportedError);
    expect(() => assertViewsSupported(views("1,final"), "minicpm", "m.gguf")).toThrow(
      /last:1 cannot be read from m\.gguf: architecture "minicpm"/,
    );
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
    engine = await LlamaFfiEngine.open({
      modelPath,
      threads: 1,
      contextSize: 64,
      sequences: 4,
      batchSize: 16,
    });
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
    expect(engine.batchCapacity).toBe(16);
  });

  it("reads every view, last, mean and norms, as the reference forward pass computes it", () => {
    const tokens = [1, 40, 77, 300, 12, 5, 511, 260];
    const all = views("all");
    const { features, logits, firstToken, entropy } = engine.prefill(0, tokens, {
      views: all,
      entropy: true,
      keepLogits: true,
    });
    engine.releaseSequence(0);
    const reference = referenceForward(readGguf(modelPath), tokens, { simulateF16Attention: true });
    const expected = new Map<string, Float32Array>([
      ["last:final", reference.hiddenFinal],
      ["mean:final", meanRows(reference.hiddenFinalAll)],
      ["norms:final", normStatistics(reference.hiddenFinalAll.map(euclideanNorm))],
    ]);
    for (let layer = 0; layer < 3; layer++) {
      const rows = reference.layerInputsAll[layer] as Float32Array[];
      expected.set(`last:${layer}`, reference.layerInputs[layer] as Float32Array);
      expected.set(`mean:${layer}`, meanRows(rows));
      expected.set(`norms:${layer}`, normStatistics(rows.map(euclideanNorm)));
    }
    expect(features).toHaveLength(all.length);
    all.forEach((view, index) => {
      const mine = features[index] as Float32Array;
      const theirs = expected.get(view.name) as Float32Array;
      expect(mine, view.name).toHaveLength(view.pooling === "norms" ? NORM_STATISTICS_DIM : 64);
      expect(cosine(mine, theirs), view.name).toBeGreaterThan(0.9999);
      expect(maxAbsDifference(mine, theirs), view.name).toBeLessThan(2e-3);
    });
    // Layer 0 at the last token is that token's embedding row: exact.
    expect(Array.from(features[0] as Float32Array)).toEqual(
      Array.from(reference.layerInputs[0] as Float32Array),
    );
    expect(cosine(logits as Float32Array, reference.logitsLast)).toBeGreaterThan(0.9999);
    expect(firstToken).toBe(argmax(reference.logitsLast));
    expect(entropy).toBeGreaterThan(0);
  });

  it("reads the same views whatever else is read, and in chunks when the prompt outgrows the batch", () => {
    const tokens = Array.from({ length: 37 }, (_, index) => 3 + ((index * 29) % 500));
    tokens[0] = 1;
    const alone = engine.prefill(0, tokens, { views: views("mean:1"), keepLogits: true });
    const together = engine.prefill(1, tokens, {
      views: views("last:2,mean:1,mean:final"),
      keepLogits: true,
    });
    engine.releaseSequence(0);
    engine.releaseSequence(1);
    // 37 tokens in batches of 16: three decodes, pooled across them.
    expect(maxAbsDifference(alone.features[0] as Float32Array, together.features[1] as Float32Array)).toBe(0);
    const reference = referenceForward(readGguf(modelPath), tokens, { simulateF16Attention: true });
    expect(
      cosine(together.features[1] as Float32Array, meanRows(reference.layerInputsAll[1] as Float32Array[])),
    ).toBeGreaterThan(0.9999);
    expect(cosine(together.features[2] as Float32Array, meanRows(reference.hiddenFinalAll))).toBeGreaterThan(
      0.9999,
    );
    expect(together.firstToken).toBe(alone.firstToken);
    expect(maxAbsDifference(alone.logits as Float32Array, together.logits as Float32Array)).toBeLessThan(
      1e-4,
    );
  });

  it("continues greedily from the prefilled cache exactly as a from-scratch reference would", () => {
    const prompt = [1, 30, 31, 32];
    const { firstToken } = engine.prefill(0, prompt);
    const generated = [firstToken];
    for (let step = 0; step < 4; step++) {
      generated.push(
        engine.decodeBatch([
          { sequenceId: 0, tokens: [generated.at(-1) as number], outputLast: true, scoreOutput: true },
        ])[0] as number,
      );
    }
    const logProbability = engine.generatedLogProbability(0);
    engine.releaseSequence(0);
    expect(engine.generatedLogProbability(0)).toBe(0);
    const model = readGguf(modelPath);
    const expected: number[] = [];
    let expectedLogProbability = 0;
    let context = [...prompt];
    for (let step = 0; step < generated.length; step++) {
      const { logitsLast } = referenceForward(model, context, { simulateF16Attention: true });
      const next = argmax(logitsLast);
      expected.push(next);
      // The model's confidence in each greedy token it chose.
      expectedLogProbability += logSoftmaxAt(logitsLast, next);
      context = [...context, next];
    }
    expect(generated).toEqual(expected);
    expect(expectedLogProbability).toBeLessThan(0);
    expect(Math.abs(logProbability - expectedLogProbability)).toBeLessThan(1e-3 * generated.length);
  });

  it("decodes a batch of several sequences with exactly the tokens of one-sequence decoding", () => {
    const prompts = [
      [1, 40, 41, 42],
      [1, 300, 12],
      [1, 5, 6, 7],
      [1, 260, 261, 262, 263],
    ];
    const alone = prompts.map((prompt) => {
      const tokens = [engine.prefill(0, prompt).firstToken];
      for (let step = 0; step < 10; step++) {
        tokens.push(
          engine.decodeBatch([
            { sequenceId: 0, tokens: [tokens.at(-1) as number], outputLast: true },
          ])[0] as number,
        );
      }
      engine.releaseSequence(0);
      return tokens;
    });
    // Prompts evaluated together in one batch, then every sequence's steps batched.
    const firsts = engine.decodeBatch(
      prompts.map((tokens, sequenceId) => ({ sequenceId, tokens, outputLast: true })),
    );
    const together = firsts.map((token) => [token as number]);
    for (let step = 0; step < 10; step++) {
      const next = engine.decodeBatch(
        together.map((tokens, sequenceId) => ({
          sequenceId,
          tokens: [tokens.at(-1) as number],
          outputLast: true,
        })),
      );
      next.forEach((token, sequenceId) => {
        together[sequenceId]?.push(token as number);
      });
    }
    for (let sequenceId = 0; sequenceId < 4; sequenceId++) engine.releaseSequence(sequenceId);
    expect(together).toEqual(alone);
  });

  it("refuses bad requests before calling into llama.cpp and stays usable", () => {
    expect(() => engine.prefill(0, [1, 2], { views: views("3", 4) })).toThrow(UsageError);
    expect(() => engine.prefill(0, [])).toThrow(InputError);
    expect(() => engine.prefill(0, new Array(65).fill(5))).toThrow(InputError);
    expect(() => engine.prefill(0, [1, 512])).toThrow(InputError);
    expect(() => engine.prefill(4, [1, 2])).toThrow(UsageError);
    engine.prefill(0, [1, 2]);
    expect(() => engine.prefill(0, [1, 2])).toThrow(UsageError);
    expect(() =>
      engine.decodeBatch([
        { sequenceId: 1, tokens: [1], outputLast: true },
        { sequenceId: 1, tokens: [2], outputLast: true },
      ]),
    ).toThrow(UsageError);
    expect(() =>
      engine.decodeBatch([{ sequenceId: 1, tokens: new Array(17).fill(5), outputLast: true }]),
    ).toThrow(UsageError);
    expect(() =>
      engine.decodeBatch([{ sequenceId: 0, tokens: new Array(63).fill(5), outputLast: true }]),
    ).toThrow(InputError);
    engine.releaseSequence(0);
    const { features } = engine.prefill(0, [1, 2, 3], { views: views("2") });
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
          views: views("final", 2),
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
        const { firstToken } = engine.prefill(0, engine.tokenize(promptOf(sentence), true), {
          views: views("1,final,mean:0", 2),
        });
        const generated: number[] = [];
        for (let token = firstToken; !engine.isEndOfGeneration(token) && generated.length < 60; ) {
          generated.push(token);
          token = engine.decodeBatch([{ sequenceId: 0, tokens: [token], outputLast: true }])[0] as number;
        }
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
      const { features } = engine.prefill(0, tokens, { views: views("0,1,final", 2) });
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
    expect(() => engine.prefill(0, [1, 2, 3], { views: views("2", 3) })).toThrow(UsageError);
    expect(() => engine.prefill(0, [1, 2, 3], { views: views("0", 2) })).not.toThrow();
    engine.releaseSequence(0);
  });
});
