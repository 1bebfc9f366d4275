/**
 * LlamaFfiTranslator: feature views against the plain-TypeScript reference forward pass, decoding
 * against LlamaTranslator (node-llama-cpp), batching against one-at-a-time decoding, streaming, the
 * guards, and `routelmt collect` with a view list. The generated fixture always runs; tinymt-small from
 * ../shared is skipped when absent.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadDataset } from "../src/dataset/index.js";
import { InputError, UnsupportedError, UsageError } from "../src/errors/index.js";
import { featureViewsFor, LlamaFfiTranslator } from "../src/translators/llama-ffi-translator.js";
import { LlamaTranslator } from "../src/translators/llama-translator.js";
import { resolveFeatureEngine } from "../src/translators/open.js";
import {
  loadPromptTemplate,
  type PromptTemplate,
  parsePromptTemplate,
} from "../src/translators/prompt-template.js";
import type { Translation, TranslationRequest } from "../src/translators/types.js";
import { runCliCaptured } from "./helpers/cli.js";
import { collectArguments, writeFixturePair } from "./helpers/fixture-pair.js";
import { type ParsedGguf, readGguf } from "./helpers/gguf-reader.js";
import { gguf, writeGguf } from "./helpers/gguf-writer.js";
import { meanRows, type ReferenceForwardResult, referenceForward } from "./helpers/reference-llama.js";
import { hasShared, sharedPath, sharedSkipReason } from "./helpers/shared.js";
import { writeTinyLlamaGguf } from "./helpers/tiny-llama.js";
import { cosine, maxAbsDifference } from "./helpers/vector-compare.js";

/** Entropy in nats written out directly: p = exp(z) / Σ exp(z), H = −Σ p ln p (float64, no shift). */
function directEntropy(logits: ArrayLike<number>): number {
  const weights = Array.from(logits, (logit) => Math.exp(logit));
  const total = weights.reduce((sum, weight) => sum + weight, 0);
  return -weights.reduce((sum, weight) => {
    const probability = weight / total;
    return probability > 0 ? sum + probability * Math.log(probability) : sum;
  }, 0);
}

const requestsOf = (texts: string[]): TranslationRequest[] =>
  texts.map((text, index) => ({ id: String(index), text, srcLang: "en", tgtLang: "de" }));

const ffiAvailable = process.platform === "linux" && process.arch === "x64";

describe("featureViewsFor (the guard run before any model is loaded)", () => {
  const llamaModel = { architecture: "llama", layerCount: 4, modelId: "m.gguf" };
  it("parses a selection in order, old forms as last-token views", () => {
    expect(featureViewsFor(" 2, FINAL,mean:0", llamaModel).map((view) => view.name)).toEqual([
      "last:2",
      "last:final",
      "mean:0",
    ]);
    expect(featureViewsFor("all", llamaModel)).toHaveLength(15);
    expect(featureViewsFor("final", { ...llamaModel, architecture: "minicpm" })).toHaveLength(1);
  });
  it("names the model's layer count for an index out of range", () => {
    expect(() => featureViewsFor("4", llamaModel)).toThrow(UsageError);
    expect(() => featureViewsFor("1,mean:99", llamaModel)).toThrow(/m\.gguf has 4 layers \(indices 0…3/);
  });
  it("refuses views an unchecked architecture cannot give, saying last:final works", () => {
    const minicpm = { ...llamaModel, architecture: "minicpm" };
    expect(() => featureViewsFor("1,final", minicpm)).toThrow(UnsupportedError);
    expect(() => featureViewsFor("mean:final", minicpm)).toThrow(/"minicpm".*last:final works/);
  });
});

describe("resolveFeatureEngine", () => {
  it("auto picks the FFI engine wherever it is available, node-llama-cpp elsewhere", () => {
    expect(resolveFeatureEngine("final", "auto")).toBe(ffiAvailable ? "ffi" : "llama");
    if (ffiAvailable) {
      expect(resolveFeatureEngine(" FINAL ")).toBe("ffi");
      expect(resolveFeatureEngine("mean:8,final")).toBe("ffi");
    } else {
      expect(() => resolveFeatureEngine("8")).toThrow(UnsupportedError);
    }
  });
  it("honours an explicit choice, refusing llama for views other than last:final", () => {
    expect(resolveFeatureEngine("final", "ffi")).toBe("ffi");
    expect(resolveFeatureEngine("last:final", "llama")).toBe("llama");
    expect(() => resolveFeatureEngine("0,final", "llama")).toThrow(UsageError);
    expect(() => resolveFeatureEngine("mean:final", "llama")).toThrow(/reads only last:final/);
  });
});

describe("LlamaFfiTranslator on a generated llama GGUF", () => {
  const template: PromptTemplate = parsePromptTemplate("{src}: {text}\n{tgt}:", "inline");
  const texts = ["the cat sat on the mat", "hello world", "a big red house", "the dog is in the house"];
  const requests = requestsOf(texts);
  const maxTokens = 12;
  const selection = "last:final,last:0,mean:1,mean:final";
  let directory: string;
  let modelPath: string;
  let model: ParsedGguf;
  let views: LlamaFfiTranslator;
  let final: LlamaFfiTranslator;
  let llamaTranslator: LlamaTranslator;
  const references = new Map<string, ReferenceForwardResult>();

  const referenceFor = (request: TranslationRequest) => {
    let reference = references.get(request.text);
    if (!reference) {
      reference = referenceForward(model, final.tokenizePrompt(request), { simulateF16Attention: true });
      references.set(request.text, reference);
    }
    return reference;
  };

  beforeAll(async () => {
    directory = await mkdtemp(path.join(tmpdir(), "routelmt-ffi-translator-"));
    modelPath = path.join(directory, "tiny.gguf");
    writeTinyLlamaGguf(modelPath);
    model = readGguf(modelPath);
    final = await LlamaFfiTranslator.create({ modelPath, threads: 1, template, maxTokens, sequences: 2 });
    views = await LlamaFfiTranslator.create({
      modelPath,
      threads: 1,
      layer: selection,
      template,
      maxTokens,
      sequences: 2,
    });
    llamaTranslator = await LlamaTranslator.create({
      modelPath,
      threads: 1,
      template,
      maxTokens,
      sequences: 1,
    });
  });
  afterAll(async () => {
    await final?.dispose();
    await views?.dispose();
    await llamaTranslator?.dispose();
    if (directory) await rm(directory, { recursive: true, force: true });
  });

  it("reports the feature identity of each selection, with each view's place in the vector", () => {
    expect(final.featureIdentity).toMatchObject({
      arch: "llama",
      layer: "last:final",
      dim: 64,
      template: template.text,
      views: [{ name: "last:final", pooling: "last", layer: "final", dim: 64, offset: 0 }],
    });
    expect(final.featureIdentity.fingerprint).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(views.featureIdentity).toMatchObject({ layer: selection, dim: 256 });
    expect(views.featureIdentity.views.map(({ name, offset }) => [name, offset])).toEqual([
      ["last:final", 0],
      ["last:0", 64],
      ["mean:1", 128],
      ["mean:final", 192],
    ]);
    expect(llamaTranslator.featureIdentity).toMatchObject({
      layer: "last:final",
      fingerprint: final.featureIdentity.fingerprint,
      views: [{ name: "last:final", dim: 64, offset: 0 }],
    });
  });

  it("evaluates the same prompt token ids as LlamaTranslator", () => {
    for (const request of requests) {
      const ids = final.tokenizePrompt(request);
      expect(ids[0]).toBe(1);
      expect(ids.length).toBeGreaterThan(5);
      expect(ids).toEqual(llamaTranslator.tokenizePrompt(request));
    }
  });

  it("reads every view of the selection as the reference forward pass computes it", async () => {
    for (const request of requests.slice(0, 2)) {
      const reference = referenceFor(request);
      const prefilled = await views.prefill(request);
      await prefilled.release();
      const part = (name: string) => {
        const span = views.featureIdentity.views.find((view) => view.name === name);
        return prefilled.features.subarray(span?.offset, (span?.offset ?? 0) + (span?.dim ?? 0));
      };
      const expected: [string, Float32Array][] = [
        ["last:final", reference.hiddenFinal],
        ["last:0", reference.layerInputs[0] as Float32Array],
        ["mean:1", meanRows(reference.layerInputsAll[1] as Float32Array[])],
        ["mean:final", meanRows(reference.hiddenFinalAll)],
      ];
      for (const [name, theirs] of expected) {
        expect(cosine(part(name), theirs), name).toBeGreaterThan(0.9999);
        expect(maxAbsDifference(part(name), theirs), name).toBeLessThan(2e-3);
      }
      // Layer 0 at the last prompt token is that token's embedding row: exact.
      expect(Array.from(part("last:0"))).toEqual(Array.from(reference.layerInputs[0] as Float32Array));
      // With mean:final every prompt token is an output, so the last layer's products run over all of
      // them instead of one row: the same state up to float rounding.
      const alone = await final.prefill(request);
      await alone.release();
      expect(maxAbsDifference(alone.features, part("last:final"))).toBeLessThan(1e-5);
    }
  });

  it("gives the entropy of softmax(logits) over the full vocabulary", async () => {
    for (const request of requests.slice(0, 2)) {
      const prefilled = await views.prefill(request);
      await prefilled.release();
      const expected = directEntropy(referenceFor(request).logitsLast);
      expect(expected).toBeGreaterThan(0.5);
      expect(prefilled.entropy).toBeCloseTo(expected, 3);
    }
    const withoutEntropy = await LlamaFfiTranslator.create({
      modelPath,
      threads: 1,
      template,
      maxTokens,
      entropy: false,
    });
    try {
      const prefilled = await withoutEntropy.prefill(requests[0] as TranslationRequest);
      await prefilled.release();
      expect(prefilled.entropy).toBeNull();
    } finally {
      await withoutEntropy.dispose();
    }
  });

  it("continue() equals translate() and LlamaTranslator's greedy output", async () => {
    const expected = await llamaTranslator.translate(requests);
    const plain = await Promise.all(
      requests.map(async (request) => (await final.translate([request], { confidence: true }))[0]),
    );
    for (const [index, request] of requests.entries()) {
      const want = expected[index] as Translation;
      expect(want.outputTokens).toBeGreaterThan(0);
      const continued = await (await views.prefill(request)).continue({ confidence: true });
      for (const mine of [continued, plain[index] as Translation]) {
        expect(mine.text).toBe(want.text);
        expect(mine.outputTokens).toBe(want.outputTokens);
        expect(mine.finishReason).toBe(want.finishReason);
        expect(mine.promptTokens).toBe(want.promptTokens);
        expect(mine.model).toBe("tiny.gguf");
      }
      // The small model's confidence in its own output: a mean log-probability, the same on both paths.
      expect(continued.meanLogProbability).toBeLessThan(0);
      expect(continued.meanLogProbability).toBeCloseTo(plain[index]?.meanLogProbability as number, 6);
      // node-llama-cpp's engine reads the same confidence, from llama.cpp's own softmax.
      const [scored] = await llamaTranslator.translate([request], { confidence: true });
      const held = await (await llamaTranslator.prefill(request)).continue({ confidence: true });
      for (const other of [scored, held]) {
        expect(other?.text).toBe(want.text);
        expect(
          Math.abs((other?.meanLogProbability as number) - (continued.meanLogProbability as number)),
        ).toBeLessThan(1e-3);
      }
      // Only when asked: it costs a pass over the vocabulary per token.
      expect(want.meanLogProbability).toBeUndefined();
      expect((await final.translate([request]))[0]?.meanLogProbability).toBeUndefined();
    }
  });

  it("gives the features and translations of one-at-a-time decoding with 1, 2, 4 and 8 requests in flight", async () => {
    const many = requestsOf(
      Array.from({ length: 16 }, (_, index) =>
        texts
          .slice(0, 1 + (index % 4))
          .join(" and ")
          .slice(0, 60 + index),
      ),
    );
    const run = async (translator: LlamaFfiTranslator, request: TranslationRequest, index: number) => {
      // Half the requests read features and continue; the others translate plainly.
      if (index % 2 === 0) {
        const prefilled = await translator.prefill(request);
        return { features: prefilled.features, translation: await prefilled.continue({ confidence: true }) };
      }
      const [translation] = await translator.translate([request], { confidence: true });
      return { features: undefined, translation: translation as Translation };
    };
    const alone: Awaited<ReturnType<typeof run>>[] = [];
    for (const [index, request] of many.entries()) alone.push(await run(views, request, index));
    for (const level of [1, 2, 4, 8]) {
      const translator = await LlamaFfiTranslator.create({
        modelPath,
        threads: 1,
        layer: selection,
        template,
        maxTokens,
        sequences: level,
      });
      try {
        const together = await Promise.all(many.map((request, index) => run(translator, request, index)));
        const differences = together.flatMap((result, index) => {
          const single = alone[index];
          // The confidence comes from the same logits as the tokens: batching must not move it either.
          const sameText =
            result.translation.text === single?.translation.text &&
            result.translation.outputTokens === single?.translation.outputTokens &&
            Math.abs(
              (result.translation.meanLogProbability ?? Number.NaN) -
                (single?.translation.meanLogProbability ?? Number.NaN),
            ) <= 1e-6;
          const featureGap =
            result.features && single?.features ? maxAbsDifference(result.features, single.features) : 0;
          return sameText && featureGap <= 1e-5
            ? []
            : [{ index, level, featureGap, text: result.translation.text }];
        });
        expect(differences, `${level} in flight`).toEqual([]);
      } finally {
        await translator.dispose();
      }
    }
  });

  it("keeps the event loop turning while long generations decode in the worker", async () => {
    const translator = await LlamaFfiTranslator.create({
      modelPath,
      threads: 1,
      template,
      maxTokens: 40,
      sequences: 4,
    });
    try {
      let turns = 0;
      let done = false;
      const tick = () => {
        turns += 1;
        if (!done) setImmediate(tick);
      };
      setImmediate(tick);
      const translations = await Promise.all(
        requests.map(async (request) => (await translator.translate([request]))[0] as Translation),
      );
      done = true;
      const tokens = translations.reduce((total, translation) => total + (translation.outputTokens ?? 0), 0);
      expect(tokens).toBeGreaterThan(40);
      // No decode runs on this thread: it turns at least once per token decoded in the worker.
      expect(turns).toBeGreaterThan(tokens);
    } finally {
      await translator.dispose();
    }
  });

  it("streams text deltas that concatenate to the untrimmed text of the translation", async () => {
    for (const request of requests) {
      const deltas: string[] = [];
      const [translated] = await final.translate([request], { onText: (delta) => deltas.push(delta) });
      const fromPrefill: string[] = [];
      const continued = await (await views.prefill(request)).continue({
        onText: (delta) => fromPrefill.push(delta),
      });
      for (const [stream, translation] of [
        [deltas, translated],
        [fromPrefill, continued],
      ] as const) {
        expect(stream.join("").trim()).toBe(translation?.text);
        expect(stream.every((delta) => delta.length > 0)).toBe(true);
        expect(stream.join("").length).toBeGreaterThanOrEqual(translation?.text.length ?? 0);
      }
      expect(deltas.length).toBeGreaterThan(1);
    }
    await expect(final.translate(requests.slice(0, 2), { onText: () => {} })).rejects.toThrow(UsageError);
  });

  it("stops at maxTokens with finishReason length, and honours an abort before and during decoding", async () => {
    const request = requests[0] as TranslationRequest;
    const [long] = await final.translate([request]);
    expect(long?.outputTokens).toBeGreaterThan(3);
    const [short] = await final.translate([request], { maxTokens: 3 });
    expect(short).toMatchObject({ outputTokens: 3, finishReason: "length" });
    const controller = new AbortController();
    controller.abort();
    const [aborted] = await final.translate([request], { signal: controller.signal });
    expect(aborted).toMatchObject({ outputTokens: 0, finishReason: "abort", text: "" });
    // This model runs on to any length: the abort, sent at the first text, lands long before 200 tokens.
    const during = new AbortController();
    const [stopped] = await final.translate([request], {
      maxTokens: 200,
      signal: during.signal,
      onText: () => during.abort(),
    });
    expect(stopped?.finishReason).toBe("abort");
    expect(stopped?.outputTokens).toBeLessThan(200);
  });

  it("frees a prefill that is never continued, for the next request to take", async () => {
    const translator = await LlamaFfiTranslator.create({
      modelPath,
      threads: 1,
      template,
      maxTokens,
      sequences: 1,
    });
    try {
      const held = await translator.prefill(requests[0] as TranslationRequest);
      // The only sequence is held: this one waits until the release.
      const waiting = translator.translate([requests[1] as TranslationRequest]);
      await held.release();
      await held.release();
      const [translation] = await waiting;
      const [expected] = await final.translate([requests[1] as TranslationRequest]);
      expect(translation?.text).toBe(expected?.text);
      await expect(held.continue()).rejects.toThrow(UsageError);
    } finally {
      await translator.dispose();
    }
  });

  it("refuses bad requests with clean errors and stays usable", async () => {
    await expect(final.prefill({ text: "  ", srcLang: "en", tgtLang: "de" })).rejects.toThrow(InputError);
    await expect(final.translate([{ text: "", srcLang: "en", tgtLang: "de" }])).rejects.toThrow(/empty text/);
    const long = { text: "the cat ".repeat(200), srcLang: "en", tgtLang: "de" };
    await expect(final.prefill(long)).rejects.toThrow(/exceeds the context size 256/);
    await expect(final.prefill({ text: "a cat", srcLang: "en", tgtLang: "xx-nope" })).rejects.toThrow(
      UsageError,
    );
    const prefilled = await final.prefill(requests[1] as TranslationRequest);
    await prefilled.continue({ maxTokens: 2 });
    await expect(prefilled.continue()).rejects.toThrow(UsageError);
    await prefilled.release();
    const [after] = await final.translate([requests[1] as TranslationRequest], { maxTokens: 2 });
    expect(after?.outputTokens).toBe(2);
  });

  it("refuses a layer out of range, naming the model's layer count, before loading", async () => {
    await expect(LlamaFfiTranslator.create({ modelPath, threads: 1, layer: "99" })).rejects.toThrow(
      /layer 99 is out of range: tiny\.gguf has 2 layers/,
    );
    await expect(LlamaFfiTranslator.create({ modelPath, threads: 1, layer: "mean:2" })).rejects.toThrow(
      UsageError,
    );
    await expect(
      LlamaFfiTranslator.create({ modelPath, threads: 1, maxTokens: 64, contextSize: 64 }),
    ).rejects.toThrow(/leaves no room/);
  });

  it("refuses views of an unchecked architecture from the GGUF header alone", async () => {
    // Only a header: loading it would fail with an InputError, so an UnsupportedError proves the
    // guard ran first.
    const headerPath = path.join(directory, "minicpm-header.gguf");
    writeGguf(
      headerPath,
      {
        "general.architecture": gguf.str("minicpm"),
        "minicpm.block_count": gguf.u32(24),
        "minicpm.context_length": gguf.u32(4096),
      },
      [],
    );
    const attempt = LlamaFfiTranslator.create({ modelPath: headerPath, threads: 1, layer: "8,final" });
    await expect(attempt).rejects.toThrow(UnsupportedError);
    await expect(
      LlamaFfiTranslator.create({ modelPath: headerPath, threads: 1, layer: "mean:8" }),
    ).rejects.toThrow(/architecture "minicpm".*last:final works/);
    await expect(
      LlamaFfiTranslator.create({ modelPath: headerPath, threads: 1, layer: "final" }),
    ).rejects.toThrow(InputError);
  });

  it("rejects requests in flight when disposed, without hanging, and is unusable after", async () => {
    const translator = await LlamaFfiTranslator.create({
      modelPath,
      threads: 1,
      template,
      maxTokens: 60,
      sequences: 2,
    });
    const held = await translator.prefill(requests[0] as TranslationRequest);
    const inFlight = [
      translator.translate([requests[1] as TranslationRequest]),
      translator.translate([requests[2] as TranslationRequest]),
      held.continue(),
    ].map((promise) =>
      promise.then(
        () => "resolved",
        (error: Error) => error,
      ),
    );
    await translator.dispose();
    await translator.dispose();
    for (const outcome of await Promise.all(inFlight)) {
      // A request may have finished before the dispose reached the worker; none may hang.
      if (outcome !== "resolved") {
        expect(outcome).toBeInstanceOf(UsageError);
        expect((outcome as Error).message).toMatch(/disposed/);
      }
    }
    await held.release();
    await expect(translator.translate(requests.slice(0, 1))).rejects.toThrow(UsageError);
    expect(() => translator.tokenizePrompt(requests[0] as TranslationRequest)).toThrow(UsageError);
  });
});

const tinymtTitle = "LlamaFfiTranslator on tinymt-small, against LlamaTranslator";
const tinymtAvailable = hasShared(["models", "tinymt-small.gguf"], ["models", "tinymt.template"]);
describe(tinymtAvailable ? tinymtTitle : sharedSkipReason(tinymtTitle), () => {
  const requests = requestsOf([
    "A man is riding a bike.",
    "Two dogs play in the snow.",
    "A woman in a red dress is singing.",
    "An old man sits on a bench.",
  ]);
  let ffi: LlamaFfiTranslator;
  let reference: LlamaTranslator;

  beforeAll(async () => {
    if (!tinymtAvailable) return;
    const modelPath = sharedPath("models", "tinymt-small.gguf");
    const template = await loadPromptTemplate(sharedPath("models", "tinymt.template"));
    ffi = await LlamaFfiTranslator.create({
      modelPath,
      threads: 1,
      template,
      maxTokens: 48,
      layer: "1,final",
    });
    reference = await LlamaTranslator.create({
      modelPath,
      threads: 1,
      template,
      maxTokens: 48,
      sequences: 1,
    });
  });
  afterAll(async () => {
    await ffi?.dispose();
    await reference?.dispose();
  });

  it.skipIf(!tinymtAvailable)(
    "reads the final state LlamaTranslator reads, after layer 1's input",
    async () => {
      expect(ffi.featureIdentity).toMatchObject({ arch: "llama", layer: "last:1,last:final", dim: 256 });
      for (const request of requests.slice(0, 2)) {
        expect(ffi.tokenizePrompt(request)).toEqual(reference.tokenizePrompt(request));
        const mine = await ffi.prefill(request);
        const theirs = await reference.prefill(request);
        await mine.release();
        await theirs.release();
        expect(cosine(mine.features.subarray(128), theirs.features)).toBeGreaterThan(0.9999);
        expect(mine.entropy).toBeCloseTo(theirs.entropy as number, 3);
      }
    },
  );

  it.skipIf(!tinymtAvailable)("translates exactly as LlamaTranslator does, streaming included", async () => {
    const expected = await reference.translate(requests);
    for (const [index, request] of requests.entries()) {
      const [plain] = await ffi.translate([request]);
      const deltas: string[] = [];
      const continued = await (await ffi.prefill(request)).continue({
        onText: (delta) => deltas.push(delta),
      });
      const referenceDeltas: string[] = [];
      const [referenceStreamed] = await reference.translate([request], {
        onText: (delta) => referenceDeltas.push(delta),
      });
      expect(expected[index]?.text.length).toBeGreaterThan(0);
      expect(continued.text).toBe(expected[index]?.text);
      expect(plain?.text).toBe(expected[index]?.text);
      expect(deltas.join("").trim()).toBe(continued.text);
      expect(referenceDeltas.join("")).toBe(deltas.join(""));
      expect(referenceStreamed?.text).toBe(continued.text);
    }
  });
});

describe("routelmt collect with a view list", () => {
  let work: string;
  let args: (out: string, extra: string[]) => string[];

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), "routelmt-ffi-collect-"));
    const pair = await writeFixturePair(work);
    const input = path.join(work, "in.jsonl");
    const sentences = ["the cat sat on the mat", "hello world", "a big red house", "the man with a dog"];
    await writeFile(
      input,
      `${sentences.map((src, index) => JSON.stringify({ id: `s${index}`, src, ref: sentences[(index + 1) % 4] })).join("\n")}\n`,
    );
    args = (out, extra) =>
      collectArguments({ ...pair, input, out }, ["--concurrency", "2", "--max-tokens", "6", ...extra]);
  });
  afterAll(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("writes the concatenated views of --layer 0,mean:final and records the selection", async () => {
    const out = path.join(work, "views");
    const run = await runCliCaptured(args(out, ["--layer", "0,mean:final"]));
    expect(run.stderr).not.toMatch(/error/i);
    expect(run.code).toBe(0);
    const dataset = await loadDataset(out);
    expect(dataset.meta.dim).toBe(128);
    expect(dataset.meta.small.layer).toBe("last:0,mean:final");
    expect(dataset.features?.length).toBe(4 * 128);
    const first = dataset.features?.subarray(0, 128) as Float32Array;
    // Token embedding then mean final state: two different vectors, neither all zeros.
    expect(cosine(first.subarray(0, 64), first.subarray(64))).toBeLessThan(0.99);
    expect(Math.max(...Array.from(first.subarray(0, 64), Math.abs))).toBeGreaterThan(0);
    // The FFI engine also records the small model's confidence in each translation (for guarded-qe).
    // Known also where the small model stopped at once: the end token was its choice.
    for (const record of dataset.records) expect(record.small_mean_logprob, record.id).toBeLessThan(0);
  });

  it("refuses --feature-engine llama for views other than last:final and bad engine names", async () => {
    const refused = await runCliCaptured(
      args(path.join(work, "never"), ["--layer", "0", "--feature-engine", "llama"]),
    );
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/reads only last:final/);
    const unknown = await runCliCaptured(args(path.join(work, "never"), ["--feature-engine", "vllm"]));
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/vllm/);
  });
});
