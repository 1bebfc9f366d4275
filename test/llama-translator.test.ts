import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { getLlama, LlamaLogLevel, type LlamaModel, type Token } from "node-llama-cpp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InputError, UnsupportedError, UsageError } from "../src/errors/index.js";
import { entropyOfLogits } from "../src/features/index.js";
import { logSoftmaxAt } from "../src/features/pooling.js";
import { LlamaTranslator } from "../src/translators/llama-translator.js";
import {
  loadPromptTemplate,
  type PromptTemplate,
  parsePromptTemplate,
} from "../src/translators/prompt-template.js";
import type { TranslationRequest } from "../src/translators/types.js";
import { type ParsedGguf, readGguf, tensorData } from "./helpers/gguf-reader.js";
import { referenceForward } from "./helpers/reference-llama.js";
import { hasShared, sharedPath, sharedSkipReason } from "./helpers/shared.js";
import { writeTinyLlamaGguf } from "./helpers/tiny-llama.js";
import { maxAbsDifference } from "./helpers/vector-compare.js";

const sentences = [
  "A man is riding a bike.",
  "Two dogs play in the snow.",
  "A woman in a red dress is singing.",
  "Children are playing soccer in a park.",
  "A little girl is climbing a tree.",
  "A group of people stand in front of a building.",
  "An old man sits on a bench.",
  "A brown dog runs through the grass.",
];
const requests: TranslationRequest[] = sentences.map((text, index) => ({
  id: String(index),
  text,
  srcLang: "en",
  tgtLang: "de",
}));
/** The tinymt prompt, exactly as README documents it (BOS is added separately). */
const tinymtPrompt = (text: string) => `English: ${text}\nGerman:`;

/** Logits at the last prompt token recomputed from the features and the GGUF's output matrix. */
function logitsFromFeatures(gguf: ParsedGguf, features: Float32Array): Float64Array {
  const output = tensorData(gguf, "output.weight");
  const [width, vocabulary] = output.dimensions as [number, number];
  const logits = new Float64Array(vocabulary);
  for (let row = 0; row < vocabulary; row++) {
    let sum = 0;
    for (let column = 0; column < width; column++)
      sum += (output.data[row * width + column] ?? 0) * (features[column] ?? 0);
    logits[row] = sum;
  }
  return logits;
}

interface ModelCase {
  name: string;
  available: boolean;
  skipReason: string;
  /** Resolves model file and template when the suite starts. */
  prepare(directory: string): Promise<{ modelPath: string; template: PromptTemplate }>;
  hiddenSize: number;
  maxTokens: number;
  /** Whether outputs should also match the reference forward pass written in JS (generated models only). */
  checkAgainstReference: boolean;
}

const tinymtAvailable = hasShared(["models", "tinymt-small.gguf"], ["models", "tinymt.template"]);
const cases: ModelCase[] = [
  {
    name: "tinymt-small",
    available: tinymtAvailable,
    skipReason: sharedSkipReason("tinymt-small model tests"),
    prepare: async () => ({
      modelPath: sharedPath("models", "tinymt-small.gguf"),
      template: await loadPromptTemplate(sharedPath("models", "tinymt.template")),
    }),
    hiddenSize: 128,
    maxTokens: 48,
    checkAgainstReference: false,
  },
  {
    name: "generated tiny llama",
    available: true,
    skipReason: "",
    prepare: async (directory) => {
      const modelPath = path.join(directory, "tiny-llama.gguf");
      writeTinyLlamaGguf(modelPath);
      return { modelPath, template: parsePromptTemplate("{src}: {text}\n{tgt}:", "inline") };
    },
    hiddenSize: 64,
    maxTokens: 12,
    checkAgainstReference: true,
  },
];

for (const modelCase of cases) {
  const title = modelCase.available ? `LlamaTranslator on ${modelCase.name}` : modelCase.skipReason;
  describe.skipIf(!modelCase.available)(title, () => {
    let directory: string;
    let translator: LlamaTranslator;
    let referenceModel: LlamaModel;
    let gguf: ParsedGguf;
    let modelPath: string;
    let template: PromptTemplate;

    beforeAll(async () => {
      directory = await mkdtemp(path.join(tmpdir(), "routelmt-llama-"));
      const prepared = await modelCase.prepare(directory);
      modelPath = prepared.modelPath;
      template = prepared.template;
      translator = await LlamaTranslator.create({
        modelPath,
        threads: 1,
        template: prepared.template,
        sequences: 3,
        maxTokens: modelCase.maxTokens,
      });
      const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
      referenceModel = await llama.loadModel({ modelPath });
      gguf = readGguf(modelPath);
    });
    afterAll(async () => {
      await translator?.dispose();
      await referenceModel?.dispose();
      if (directory) await rm(directory, { recursive: true, force: true });
    });

    it("evaluates the raw prompt as [BOS, ...tokenize(prompt)]", async () => {
      for (const request of requests.slice(0, 3)) {
        const expected = [1, ...referenceModel.tokenize(tinymtPrompt(request.text))];
        expect(translator.tokenizePrompt(request)).toEqual(expected);
        const prefilled = await translator.prefill(request);
        expect(prefilled.promptTokenIds).toEqual(expected);
        expect(prefilled.promptTokens).toBe(expected.length);
        await prefilled.release();
      }
    });

    it("reads the final hidden state at the last prompt token, equal to the embedding context's", async () => {
      const embeddingContext = await referenceModel.createEmbeddingContext({ contextSize: 256, threads: 1 });
      try {
        for (const request of requests.slice(0, 4)) {
          const prefilled = await translator.prefill(request);
          await prefilled.release();
          expect(prefilled.features).toBeInstanceOf(Float32Array);
          expect(prefilled.features.length).toBe(modelCase.hiddenSize);
          expect(translator.featureIdentity.dim).toBe(modelCase.hiddenSize);
          const { vector } = await embeddingContext.getEmbeddingFor(tinymtPrompt(request.text));
          expect(maxAbsDifference(prefilled.features, vector)).toBeLessThan(1e-4);
        }
      } finally {
        await embeddingContext.dispose();
      }
    });

    it("gives the next-token entropy of softmax(output · features) over the full vocabulary", async () => {
      for (const request of requests.slice(0, 4)) {
        const prefilled = await translator.prefill(request);
        await prefilled.release();
        const entropy = prefilled.entropy;
        expect(entropy).not.toBeNull();
        expect(Number.isFinite(entropy)).toBe(true);
        expect(entropy).toBeGreaterThan(0);
        const independent = entropyOfLogits(logitsFromFeatures(gguf, prefilled.features));
        expect(Math.abs((entropy ?? 0) - independent)).toBeLessThan(1e-3);
      }
    });

    it.skipIf(!modelCase.checkAgainstReference)(
      "matches the JavaScript reference forward pass (features and logits)",
      async () => {
        const prefilled = await translator.prefill(requests[0] as TranslationRequest);
        await prefilled.release();
        const reference = referenceForward(gguf, prefilled.promptTokenIds, { simulateF16Attention: true });
        expect(maxAbsDifference(prefilled.features, reference.hiddenFinal)).toBeLessThan(2e-2);
        expect(Math.abs((prefilled.entropy ?? 0) - entropyOfLogits(reference.logitsLast))).toBeLessThan(1e-2);
      },
    );

    it("decodes like a plain node-llama-cpp context (greedy, no repeat penalty)", async () => {
      const context = await referenceModel.createContext({ contextSize: 256, threads: 1 });
      try {
        const [translation] = await translator.translate([requests[0] as TranslationRequest]);
        const sequence = context.getSequence();
        const prompt = translator.tokenizePrompt(requests[0] as TranslationRequest);
        const tokens: Token[] = [];
        for await (const token of sequence.evaluate(prompt, { temperature: 0 })) {
          tokens.push(token);
          if (tokens.length >= modelCase.maxTokens) break;
        }
        expect(translation?.outputTokens).toBe(tokens.length);
        expect(translation?.text).toBe(referenceModel.detokenize(tokens).trim());
      } finally {
        await context.dispose();
      }
    });

    it("scores a translation by forced decoding: the mean log-softmax of its tokens and the end token", async () => {
      const request = requests[1] as TranslationRequest;
      const answer = "Zwei Hunde spielen im Schnee.";
      const prompt = [1, ...referenceModel.tokenize(tinymtPrompt(request.text))];
      const tokens = [1, ...referenceModel.tokenize(`${tinymtPrompt(request.text)} ${answer}`)];
      expect(tokens.slice(0, prompt.length)).toEqual(prompt);
      const score = await translator.scoreTranslation(request, answer);
      // Independently: the log-softmax of each next token from the logits the model gives its prefix.
      const logitsAfter = (length: number): ArrayLike<number> =>
        modelCase.checkAgainstReference
          ? referenceForward(gguf, tokens.slice(0, length), { simulateF16Attention: true }).logitsLast
          : [];
      if (modelCase.checkAgainstReference) {
        const expected: number[] = [];
        for (let index = prompt.length; index < tokens.length; index++)
          expected.push(logSoftmaxAt(logitsAfter(index), tokens[index] as number));
        expected.push(logSoftmaxAt(logitsAfter(tokens.length), referenceModel.tokens.eos as number));
        const mean = expected.reduce((sum, value) => sum + value, 0) / expected.length;
        expect(Math.abs(score - mean)).toBeLessThan(2e-2);
      }
      expect(score).toBeLessThan(0);
      // Its own greedy translation, where it ended by itself, scores what it was decoded with (its confidence).
      let compared = 0;
      for (const each of requests) {
        const [own] = await translator.translate([each], { confidence: true });
        if (own?.finishReason !== "stop" || own.text === "") continue;
        // Only where re-tokenizing the text gives as many tokens as the decode chose.
        const promptLength = translator.tokenizePrompt(each).length;
        const reTokenized = [1, ...referenceModel.tokenize(`${tinymtPrompt(each.text)} ${own.text}`)];
        if (reTokenized.length - promptLength !== own.outputTokens) continue;
        const ownScore = await translator.scoreTranslation(each, own.text);
        expect(Math.abs(ownScore - (own.meanLogProbability ?? 0))).toBeLessThan(1e-4);
        compared++;
      }
      // The trained model ends its translations; the random-weight one seldom does.
      if (!modelCase.checkAgainstReference) expect(compared).toBeGreaterThan(4);
    });

    it("scores the same whether translations are scored one at a time or together", async () => {
      const answers = requests.map((request) => `${request.text} Ende.`);
      const alone: number[] = [];
      for (const [index, request] of requests.entries())
        alone.push(await translator.scoreTranslation(request, answers[index] as string));
      const together = await Promise.all(
        requests.map((request, index) => translator.scoreTranslation(request, answers[index] as string)),
      );
      expect(together).toEqual(alone);
    });

    it("scores an empty translation by the end token alone, the probability of ending at once", async () => {
      const request = requests[0] as TranslationRequest;
      const prompt = translator.tokenizePrompt(request);
      const context = await referenceModel.createContext({ contextSize: 256, threads: 1 });
      try {
        const outputs = await context
          .getSequence()
          .controlledEvaluate(
            prompt.map((token, index) =>
              index === prompt.length - 1 ? [token, { generateNext: { probabilities: true } }] : token,
            ),
          );
        const ending = outputs.at(-1)?.next?.probabilities?.get(referenceModel.tokens.eos as Token);
        expect(await translator.scoreTranslation(request, "  ")).toBeCloseTo(
          Math.log(ending ?? Number.NaN),
          4,
        );
      } finally {
        await context.dispose();
      }
    });

    it("continues a prefill to exactly the plain translation (a kept request)", async () => {
      for (const request of requests) {
        // One request at a time on both sides, so llama.cpp sees the same batches.
        const [plain] = await translator.translate([request]);
        const prefilled = await translator.prefill(request);
        const kept = await prefilled.continue();
        expect(kept.text).toBe(plain?.text);
        expect(kept.outputTokens).toBe(plain?.outputTokens);
        expect(kept.finishReason).toBe(plain?.finishReason);
        expect(kept.promptTokens).toBe(prefilled.promptTokens);
        await expect(prefilled.continue()).rejects.toThrow(UsageError);
      }
    });

    it("streams text deltas that concatenate to the untrimmed translation", async () => {
      for (const request of requests) {
        const [plain] = await translator.translate([request]);
        const deltas: string[] = [];
        const [streamed] = await translator.translate([request], { onText: (delta) => deltas.push(delta) });
        const kept: string[] = [];
        const continued = await (await translator.prefill(request)).continue({
          onText: (delta) => kept.push(delta),
        });
        expect(streamed?.text).toBe(plain?.text);
        expect(deltas.join("").trim()).toBe(plain?.text);
        expect(kept.join("")).toBe(deltas.join(""));
        expect(continued.text).toBe(plain?.text);
        expect(deltas.every((delta) => delta.length > 0 && !delta.includes("\uFFFD"))).toBe(true);
      }
      await expect(translator.translate(requests.slice(0, 2), { onText: () => {} })).rejects.toThrow(
        UsageError,
      );
    });

    it("batch translation equals one-at-a-time translation exactly", async () => {
      // Three sequences share the batches; each output row must be read by its own sequence.
      const batched = await translator.translate(requests);
      expect(batched).toHaveLength(requests.length);
      for (const [index, request] of requests.entries()) {
        const [single] = await translator.translate([request]);
        expect(batched[index]?.text, request.text).toBe(single?.text);
        expect(batched[index]?.outputTokens).toBe(single?.outputTokens);
        expect(batched[index]?.model).toBe(path.basename(modelPath));
        expect(batched[index]?.promptTokens).toBe(single?.promptTokens);
      }
    });

    it("a translator without features decodes the same and refuses to prefill", async () => {
      const plain = await LlamaTranslator.create({
        modelPath,
        threads: 1,
        template,
        sequences: 3,
        maxTokens: modelCase.maxTokens,
        readsFeatures: false,
      });
      try {
        const [fromPlain, fromProbed] = await Promise.all([
          plain.translate(requests),
          translator.translate(requests),
        ]);
        expect(fromPlain.map((translation) => translation.text)).toEqual(
          fromProbed.map((translation) => translation.text),
        );
        await expect(plain.prefill(requests[0] as TranslationRequest)).rejects.toThrow(UsageError);
      } finally {
        await plain.dispose();
      }
    });

    it("reads the right features while other sequences decode in the same batches", async () => {
      const isolated: Float32Array[] = [];
      for (const request of requests.slice(0, 4)) {
        const prefilled = await translator.prefill(request);
        isolated.push(prefilled.features);
        await prefilled.release();
      }
      const [, concurrent] = await Promise.all([
        translator.translate(requests.slice(4)),
        Promise.all(
          requests.slice(0, 4).map(async (request) => {
            const prefilled = await translator.prefill(request);
            await prefilled.release();
            return prefilled.features;
          }),
        ),
      ]);
      for (const [index, features] of concurrent.entries()) {
        expect(maxAbsDifference(features, isolated[index] as Float32Array)).toBeLessThan(1e-5);
      }
    });

    it("frees the sequence of a released prefill (more prefills than sequences, no deadlock)", async () => {
      const releasedCount = await Promise.all(
        requests.map(async (request) => {
          const prefilled = await translator.prefill(request);
          await prefilled.release();
          await prefilled.release();
          await expect(prefilled.continue()).rejects.toThrow(UsageError);
          return 1;
        }),
      );
      expect(releasedCount).toHaveLength(requests.length);
      const [after] = await translator.translate([requests[0] as TranslationRequest]);
      expect(after?.finishReason).toMatch(/stop|length/);
    });

    it("stops at maxTokens with finishReason length", async () => {
      const [translation] = await translator.translate([requests[0] as TranslationRequest], { maxTokens: 1 });
      expect(translation?.outputTokens).toBe(1);
      expect(translation?.finishReason).toBe("length");
    });

    it("refuses bad requests with clean errors before evaluating anything", async () => {
      await expect(translator.translate([{ text: "  ", srcLang: "en", tgtLang: "de" }])).rejects.toThrow(
        InputError,
      );
      await expect(translator.prefill({ text: "", srcLang: "en", tgtLang: "de" })).rejects.toThrow(
        /empty text/,
      );
      await expect(translator.translate([{ text: "A dog.", srcLang: "en", tgtLang: "xx" }])).rejects.toThrow(
        UsageError,
      );
      await expect(
        translator.translate([requests[0] as TranslationRequest], { maxTokens: translator.contextSize }),
      ).rejects.toThrow(/exceeds the context size/);
      const longText = Array.from({ length: translator.contextSize }, () => "dog").join(" ");
      await expect(translator.prefill({ text: longText, srcLang: "en", tgtLang: "de" })).rejects.toThrow(
        InputError,
      );
      await expect(
        translator.translate([requests[0] as TranslationRequest], { maxTokens: 0 }),
      ).rejects.toThrow(UsageError);
      // The translator still works after refusing.
      const [translation] = await translator.translate([requests[1] as TranslationRequest]);
      expect(translation?.outputTokens).toBeGreaterThan(0);
    });

    it("refuses views other than last:final before loading anything", async () => {
      for (const layer of ["1,final", "mean:final"]) {
        await expect(
          LlamaTranslator.create({ modelPath: path.join(directory, "absent.gguf"), threads: 1, layer }),
        ).rejects.toThrow(UnsupportedError);
      }
      await expect(
        LlamaTranslator.create({ modelPath: path.join(directory, "absent.gguf"), threads: 1 }),
      ).rejects.toThrow(InputError);
    });

    it("is unusable after dispose, and dispose is idempotent", async () => {
      const disposable = await LlamaTranslator.create({ modelPath, threads: 1, sequences: 1, maxTokens: 8 });
      expect(disposable.featureIdentity.fingerprint).toBe(translator.featureIdentity.fingerprint);
      expect(disposable.featureIdentity.template).not.toBe(translator.featureIdentity.template);
      await disposable.dispose();
      await disposable.dispose();
      await expect(disposable.translate([requests[0] as TranslationRequest])).rejects.toThrow(/disposed/);
      await expect(disposable.prefill(requests[0] as TranslationRequest)).rejects.toThrow(UsageError);
    });
  });
}
