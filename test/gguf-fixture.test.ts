/**
 * The generated tiny llama GGUF loads in node-llama-cpp (llama.cpp, CPU) and computes what the
 * plain-TypeScript reference computes: same tokens, same final hidden state, same greedy tokens.
 * This is what lets the engine tests run on a generated model instead of a downloaded one.
 */
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { getLlama, type Llama, type LlamaModel, readGgufFileInfo, type Token } from "node-llama-cpp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ParsedGguf, readGguf } from "./helpers/gguf-reader.js";
import { argmax, referenceForward } from "./helpers/reference-llama.js";
import { referenceTokenize } from "./helpers/reference-spm-tokenizer.js";
import { hasShared, sharedPath, sharedSkipReason } from "./helpers/shared.js";
import {
  byteTokenId,
  type GeneratedLlama,
  SPECIAL_TOKEN_IDS,
  type Vocabulary,
  writeTinyLlamaGguf,
} from "./helpers/tiny-llama.js";

const CONTEXT_SIZE = 256;

const PROMPTS = [
  "the cat sat on the mat",
  "Hello, world!",
  "English: a red dog is in the house\nGerman:",
  "The man was at the big house with a cat",
  "naïve café €5",
];

interface Agreement {
  maxAbsDiff: number;
  cosine: number;
}

function agreement(actual: ArrayLike<number>, expected: ArrayLike<number>): Agreement {
  expect(actual.length).toBe(expected.length);
  let maxAbsDiff = 0;
  let dot = 0;
  let actualNorm = 0;
  let expectedNorm = 0;
  for (let i = 0; i < expected.length; i++) {
    maxAbsDiff = Math.max(maxAbsDiff, Math.abs(actual[i]! - expected[i]!));
    dot += actual[i]! * expected[i]!;
    actualNorm += actual[i]! ** 2;
    expectedNorm += expected[i]! ** 2;
  }
  return { maxAbsDiff, cosine: dot / Math.sqrt(actualNorm * expectedNorm) };
}

function worst(results: Agreement[]): Agreement {
  return {
    maxAbsDiff: Math.max(...results.map((result) => result.maxAbsDiff)),
    cosine: Math.min(...results.map((result) => result.cosine)),
  };
}

function logSoftmax(logits: ArrayLike<number>): Float64Array {
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i]!);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i]! - max);
  const logSum = max + Math.log(sum);
  return Float64Array.from({ length: logits.length }, (_, i) => logits[i]! - logSum);
}

/** Gap between the best and second-best logit: how robust the greedy choice is to rounding. */
function topMargin(logits: ArrayLike<number>): number {
  const sorted = Array.from(logits).sort((left, right) => right - left);
  return sorted[0]! - sorted[1]!;
}

describe("generated tiny llama GGUF in node-llama-cpp", () => {
  let directory: string;
  let generated: GeneratedLlama;
  let parsed: ParsedGguf;
  let llama: Llama;
  let model: LlamaModel;

  beforeAll(async () => {
    directory = mkdtempSync(path.join(os.tmpdir(), "routelmt-gguf-fixture-"));
    generated = writeTinyLlamaGguf(path.join(directory, "tiny-llama.gguf"));
    parsed = readGguf(generated.path);
    llama = await getLlama({ gpu: false, build: "never" });
    model = await llama.loadModel({ modelPath: generated.path });
  });

  afterAll(async () => {
    await model?.dispose();
    await llama?.dispose();
    if (directory) rmSync(directory, { recursive: true, force: true });
  });

  it("is a small GGUF whose metadata and tensor shapes node-llama-cpp's own parser reads back", async () => {
    expect(generated.bytes).toBeLessThan(2_000_000);
    const info = await readGgufFileInfo(generated.path, { readTensorInfo: true });
    expect(info.version).toBe(3);
    expect(info.metadata.general.architecture).toBe("llama");
    const { llama: hyper, tokenizer } = info.metadata as unknown as {
      llama: Record<string, unknown> & { attention: Record<string, unknown>; rope: Record<string, unknown> };
      tokenizer: { ggml: Record<string, unknown> };
    };
    expect(hyper.embedding_length).toBe(64);
    expect(hyper.block_count).toBe(2);
    expect(hyper.attention.head_count).toBe(4);
    expect(hyper.attention.head_count_kv).toBe(2);
    expect(hyper.rope.dimension_count).toBe(16);
    expect(tokenizer.ggml.tokens).toEqual(generated.vocabulary.tokens);
    expect(tokenizer.ggml.token_type).toEqual(generated.vocabulary.tokenTypes);
    const tensors = new Map(info.tensorInfo?.map((tensor) => [tensor.name, tensor]));
    expect(tensors.size).toBe(3 + 2 * 9);
    expect(tensors.get("token_embd.weight")?.dimensions).toEqual([64, 512]);
    expect(tensors.get("blk.1.attn_k.weight")?.dimensions).toEqual([64, 32]);
    expect(tensors.get("blk.0.ffn_down.weight")?.dimensions).toEqual([128, 64]);
    for (const tensor of tensors.values()) expect(Number(tensor.offset) % 32).toBe(0);
    expect(model.trainContextSize).toBe(256);
    expect(model.embeddingVectorSize).toBe(64);
    expect(model.tokens.bos).toBe(SPECIAL_TOKEN_IDS.bos);
    expect(model.tokens.eos).toBe(SPECIAL_TOKEN_IDS.eos);
    expect(model.tokens.shouldPrependBosToken).toBe(true);
    expect(model.tokens.shouldAppendEosToken).toBe(false);
  });

  it("tokenises into whole words, byte fallbacks and the reference SPM tokenizer's ids", () => {
    const pieces = (text: string) => model.tokenize(text).map((id) => generated.vocabulary.tokens[id]);
    expect(pieces("the cat sat on the mat")).toEqual(["the", "▁cat", "▁sat", "▁on", "▁the", "▁mat"]);
    expect(pieces("Hello, world!")).toEqual(["Hello", ",", "▁world", "!"]);
    // No space prefix, "\n" and "é" have no piece of their own: byte tokens.
    expect(model.tokenize("German:\né")).toEqual([
      ...model.tokenize("German:"),
      byteTokenId(0x0a),
      byteTokenId(0xc3),
      byteTokenId(0xa9),
    ]);
    for (const text of [...PROMPTS, "xyzzy Quux 42", "  two  spaces", "dogs and cats"]) {
      const ids = model.tokenize(text);
      expect(ids, text).toEqual(referenceTokenize(generated.vocabulary, text));
      expect(model.detokenize(ids)).toBe(text);
    }
  });

  it("returns the reference final hidden state as the embedding (default flash attention, f16 KV cache)", async () => {
    const context = await model.createEmbeddingContext({ contextSize: CONTEXT_SIZE, threads: 1 });
    try {
      const results: Agreement[] = [];
      for (const prompt of PROMPTS) {
        const { vector } = await context.getEmbeddingFor(prompt);
        // getEmbeddingFor prepends BOS itself (add_bos_token=true) and reads the last token's state.
        const reference = referenceForward(parsed, [SPECIAL_TOKEN_IDS.bos, ...model.tokenize(prompt)]);
        results.push(agreement(vector, reference.hiddenFinal));
      }
      const summary = worst(results);
      console.log(`embedding vs reference (flash attention auto): ${JSON.stringify(summary)}`);
      // The f16 KV cache and f16 attention products leave errors of a few f16 ulps on unit-size values.
      expect(summary.maxAbsDiff).toBeLessThan(5e-3);
      expect(summary.cosine).toBeGreaterThan(0.99999);
    } finally {
      await context.dispose();
    }
  });

  it("matches the reference to float32 rounding once the reference rounds attention to f16 like llama.cpp", async () => {
    const exactModel = await llama.loadModel({
      modelPath: generated.path,
      defaultContextFlashAttention: false,
    });
    const context = await exactModel.createEmbeddingContext({ contextSize: CONTEXT_SIZE, threads: 1 });
    try {
      const plain: Agreement[] = [];
      const simulated: Agreement[] = [];
      for (const prompt of PROMPTS) {
        const { vector } = await context.getEmbeddingFor(prompt);
        const ids = [SPECIAL_TOKEN_IDS.bos, ...exactModel.tokenize(prompt)];
        plain.push(agreement(vector, referenceForward(parsed, ids).hiddenFinal));
        simulated.push(
          agreement(vector, referenceForward(parsed, ids, { simulateF16Attention: true }).hiddenFinal),
        );
      }
      const plainSummary = worst(plain);
      const simulatedSummary = worst(simulated);
      console.log(
        `embedding vs reference (no flash attention): plain ${JSON.stringify(plainSummary)}, ` +
          `f16-simulated ${JSON.stringify(simulatedSummary)}`,
      );
      expect(simulatedSummary.maxAbsDiff).toBeLessThan(plainSummary.maxAbsDiff);
      // Left over: an occasional f16 rounding that falls the other way in float32 than in float64.
      expect(simulatedSummary.maxAbsDiff).toBeLessThan(1e-3);
      expect(Math.min(...simulated.map((result) => result.maxAbsDiff))).toBeLessThan(1e-5);
    } finally {
      await context.dispose();
      await exactModel.dispose();
    }
  });

  it("picks the reference's greedy next token with the reference's log-probabilities", async () => {
    const context = await model.createContext({ contextSize: CONTEXT_SIZE, threads: 1 });
    try {
      const sequence = context.getSequence();
      let maxLogProbabilityDiff = 0;
      let smallestMargin = Number.POSITIVE_INFINITY;
      for (const prompt of PROMPTS) {
        await sequence.clearHistory();
        const ids = [model.tokens.bos!, ...model.tokenize(prompt)];
        const reference = referenceForward(parsed, ids);
        smallestMargin = Math.min(smallestMargin, topMargin(reference.logitsLast));
        const iterator = sequence.evaluateWithMetadata(ids, { probabilities: true }, { temperature: 0 });
        const first = await iterator.next();
        await iterator.return();
        if (first.done) throw new Error("evaluateWithMetadata yielded nothing");
        expect(first.value.token, prompt).toBe(argmax(reference.logitsLast));
        const expected = logSoftmax(reference.logitsLast);
        expect(first.value.probabilities.size).toBe(generated.vocabulary.tokens.length);
        for (const [token, probability] of first.value.probabilities) {
          // Only tokens with meaningful mass: tiny float32 probabilities lose relative precision.
          if (probability < 1e-4) continue;
          maxLogProbabilityDiff = Math.max(
            maxLogProbabilityDiff,
            Math.abs(Math.log(probability) - expected[token]!),
          );
        }
      }
      console.log(
        `greedy next token: ${PROMPTS.length}/${PROMPTS.length} equal; max |Δ log p| ${maxLogProbabilityDiff}; ` +
          `smallest reference top-2 margin ${smallestMargin}`,
      );
      expect(maxLogProbabilityDiff).toBeLessThan(2e-2);
      // Guard for the fixture itself: a near-tie would make the equality above depend on rounding.
      expect(smallestMargin).toBeGreaterThan(0.05);
    } finally {
      await context.dispose();
    }
  });

  it("continues greedily token for token like the reference over 16 steps", async () => {
    const context = await model.createContext({ contextSize: CONTEXT_SIZE, threads: 1 });
    try {
      const sequence = context.getSequence();
      const prompt = [model.tokens.bos!, ...model.tokenize("English: hello world\nGerman:")];
      const expected: Token[] = [];
      let smallestMargin = Number.POSITIVE_INFINITY;
      for (let step = 0; step < 16; step++) {
        const { logitsLast } = referenceForward(parsed, [...prompt, ...expected]);
        smallestMargin = Math.min(smallestMargin, topMargin(logitsLast));
        expected.push(argmax(logitsLast) as Token);
      }
      const generatedTokens: Token[] = [];
      for await (const token of sequence.evaluate(prompt, { temperature: 0, yieldEogToken: true })) {
        generatedTokens.push(token);
        if (generatedTokens.length === expected.length) break;
      }
      console.log(
        `greedy continuation: ${JSON.stringify(model.detokenize(generatedTokens))}; ` +
          `smallest reference top-2 margin ${smallestMargin}`,
      );
      expect(generatedTokens).toEqual(expected);
      expect(new Set(expected).size).toBeGreaterThan(3);
      expect(smallestMargin).toBeGreaterThan(0.02);
    } finally {
      await context.dispose();
    }
  });

  it("also loads and agrees with F16 matrices and plain multi-head attention", async () => {
    const variant = writeTinyLlamaGguf(path.join(directory, "tiny-llama-f16.gguf"), {
      seed: 99,
      nHeadKv: 4,
      matrixType: "F16",
    });
    const variantParsed = readGguf(variant.path);
    expect(variantParsed.tensors.get("blk.0.attn_q.weight")?.type).toBe(1);
    expect(variantParsed.tensors.get("blk.0.attn_norm.weight")?.type).toBe(0);
    const variantModel = await llama.loadModel({ modelPath: variant.path });
    const context = await variantModel.createEmbeddingContext({ contextSize: CONTEXT_SIZE, threads: 1 });
    try {
      const results: Agreement[] = [];
      for (const prompt of PROMPTS) {
        const { vector } = await context.getEmbeddingFor(prompt);
        const ids = [SPECIAL_TOKEN_IDS.bos, ...variantModel.tokenize(prompt)];
        results.push(agreement(vector, referenceForward(variantParsed, ids).hiddenFinal));
      }
      const summary = worst(results);
      console.log(`F16-matrix variant embedding vs reference: ${JSON.stringify(summary)}`);
      // llama.cpp also rounds activations to f16 before every F16 matrix product.
      expect(summary.maxAbsDiff).toBeLessThan(1e-2);
      expect(summary.cosine).toBeGreaterThan(0.99999);
    } finally {
      await context.dispose();
      await variantModel.dispose();
    }
  });

  const hasTinymt = hasShared(["models", "tinymt-small.gguf"]);
  it.skipIf(!hasTinymt)(
    hasTinymt
      ? "reproduces the trained tinymt-small model too (reference tokenizer, hidden state, greedy token)"
      : sharedSkipReason("the tinymt-small cross-check"),
    async () => {
      const modelPath = sharedPath("models", "tinymt-small.gguf");
      const trained = readGguf(modelPath);
      const vocabulary: Vocabulary = {
        tokens: trained.metadata.get("tokenizer.ggml.tokens") as string[],
        scores: trained.metadata.get("tokenizer.ggml.scores") as number[],
        tokenTypes: trained.metadata.get("tokenizer.ggml.token_type") as number[],
      };
      const trainedModel = await llama.loadModel({ modelPath });
      const embeddingContext = await trainedModel.createEmbeddingContext({
        contextSize: CONTEXT_SIZE,
        threads: 1,
      });
      try {
        const prompts = [
          "English: A dog runs on the beach.\nGerman:",
          "English: Two men are playing soccer.\nGerman:",
        ];
        const results: Agreement[] = [];
        for (const prompt of prompts) {
          const ids = trainedModel.tokenize(prompt);
          expect(ids).toEqual(referenceTokenize(vocabulary, prompt));
          const reference = referenceForward(trained, [SPECIAL_TOKEN_IDS.bos, ...ids]);
          results.push(
            agreement((await embeddingContext.getEmbeddingFor(prompt)).vector, reference.hiddenFinal),
          );
          // The trained model answers with a leading-space German word: "▁Ein", "▁Zwei", ...
          expect(vocabulary.tokens[argmax(reference.logitsLast)]).toMatch(/^▁[A-Z]/);
        }
        const summary = worst(results);
        console.log(`tinymt-small embedding vs reference: ${JSON.stringify(summary)}`);
        expect(summary.maxAbsDiff).toBeLessThan(1e-2);
        expect(summary.cosine).toBeGreaterThan(0.99999);
      } finally {
        await embeddingContext.dispose();
        await trainedModel.dispose();
      }
    },
  );
});
