/**
 * LlamaFfiTranslator: layer-selected features against the plain-TypeScript reference forward pass,
 * decoding against LlamaTranslator (node-llama-cpp), the guards, scheduling, and `routelmt collect`
 * with a layer list. The generated fixture always runs; tinymt-small from ../shared is skipped when absent.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadDataset } from "../src/dataset/index.js";
import { InputError, UnsupportedError, UsageError } from "../src/errors/index.js";
import {
  concatenateFeatures,
  featureLayersFor,
  LlamaFfiTranslator,
  SerialQueue,
} from "../src/translators/llama-ffi-translator.js";
import { LlamaTranslator } from "../src/translators/llama-translator.js";
import { resolveFeatureEngine } from "../src/translators/open.js";
import {
  loadPromptTemplate,
  type PromptTemplate,
  parsePromptTemplate,
} from "../src/translators/prompt-template.js";
import type { TranslationRequest } from "../src/translators/types.js";
import { runCliCaptured } from "./helpers/cli.js";
import { collectArguments, writeFixturePair } from "./helpers/fixture-pair.js";
import { type ParsedGguf, readGguf } from "./helpers/gguf-reader.js";
import { gguf, writeGguf } from "./helpers/gguf-writer.js";
import { type ReferenceForwardResult, referenceForward } from "./helpers/reference-llama.js";
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

describe("featureLayersFor (the guard run before any model is loaded)", () => {
  const llamaModel = { architecture: "llama", layerCount: 4, modelId: "m.gguf" };
  it("parses a selection in order, final and indices", () => {
    expect(featureLayersFor(" 2, FINAL,0", llamaModel)).toEqual([2, "final", 0]);
    expect(featureLayersFor("final", { ...llamaModel, architecture: "qwen2" })).toEqual(["final"]);
  });
  it("names the model's layer count for an index out of range", () => {
    expect(() => featureLayersFor("4", llamaModel)).toThrow(UsageError);
    expect(() => featureLayersFor("1,99", llamaModel)).toThrow(/m\.gguf has 4 layers \(indices 0…3/);
  });
  it("refuses layer indices on architectures that do not record them, saying final works", () => {
    const qwen2 = { ...llamaModel, architecture: "qwen2" };
    expect(() => featureLayersFor("1,final", qwen2)).toThrow(UnsupportedError);
    expect(() => featureLayersFor("1", qwen2)).toThrow(/"qwen2".*"final" works/);
  });
});

describe("concatenateFeatures", () => {
  it("joins vectors in the given order", () => {
    const joined = concatenateFeatures([
      new Float32Array([1, 2]),
      new Float32Array([3]),
      new Float32Array([4, 5]),
    ]);
    expect(Array.from(joined)).toEqual([1, 2, 3, 4, 5]);
    expect(concatenateFeatures([])).toHaveLength(0);
  });
});

describe("resolveFeatureEngine", () => {
  it("auto picks node-llama-cpp for final and the FFI engine otherwise", () => {
    // One sequence at a time: the FFI engine reads `final` more cheaply; several: node-llama-cpp batches.
    expect(resolveFeatureEngine("final", "auto", 1)).toBe(
      process.platform === "linux" && process.arch === "x64" ? "ffi" : "llama",
    );
    expect(resolveFeatureEngine(" FINAL ", "auto", 4)).toBe("llama");
    expect(resolveFeatureEngine("8")).toBe("ffi");
    expect(resolveFeatureEngine("8,final")).toBe("ffi");
  });
  it("honours an explicit choice, refusing llama for layer indices", () => {
    expect(resolveFeatureEngine("final", "ffi")).toBe("ffi");
    expect(resolveFeatureEngine("final", "llama")).toBe("llama");
    expect(() => resolveFeatureEngine("0,final", "llama")).toThrow(UsageError);
  });
});

describe("SerialQueue", () => {
  it("runs jobs one at a time in order, lets timers run between them, and isolates failures", async () => {
    const queue = new SerialQueue();
    const events: string[] = [];
    const first = queue.run(() => {
      events.push("a");
      setImmediate(() => events.push("between"));
    });
    const failing = queue.run(() => {
      throw new Error("boom");
    });
    const last = queue.run(() => {
      events.push("b");
      return 7;
    });
    await first;
    await expect(failing).rejects.toThrow("boom");
    expect(await last).toBe(7);
    expect(events).toEqual(["a", "between", "b"]);
  });
});

describe("LlamaFfiTranslator on a generated llama GGUF", () => {
  const template: PromptTemplate = parsePromptTemplate("{src}: {text}\n{tgt}:", "inline");
  const texts = ["the cat sat on the mat", "hello world", "a big red house", "the dog is in the house"];
  const requests = requestsOf(texts);
  const maxTokens = 12;
  let directory: string;
  let modelPath: string;
  let model: ParsedGguf;
  const translators = new Map<string, LlamaFfiTranslator>();
  let llamaTranslator: LlamaTranslator;
  const references = new Map<string, ReferenceForwardResult>();

  const translatorFor = (layer: string) => translators.get(layer) as LlamaFfiTranslator;
  const referenceFor = (request: TranslationRequest) => {
    const key = request.text;
    let reference = references.get(key);
    if (!reference) {
      const tokens = translatorFor("final").tokenizePrompt(request);
      reference = referenceForward(model, tokens, { simulateF16Attention: true });
      references.set(key, reference);
    }
    return reference;
  };

  beforeAll(async () => {
    directory = await mkdtemp(path.join(tmpdir(), "routelmt-ffi-translator-"));
    modelPath = path.join(directory, "tiny.gguf");
    writeTinyLlamaGguf(modelPath);
    model = readGguf(modelPath);
    for (const layer of ["final", "0", "1", "1,final"]) {
      translators.set(
        layer,
        await LlamaFfiTranslator.create({ modelPath, threads: 1, layer, template, maxTokens, sequences: 2 }),
      );
    }
    llamaTranslator = await LlamaTranslator.create({
      modelPath,
      threads: 1,
      template,
      maxTokens,
      sequences: 1,
    });
  });
  afterAll(async () => {
    for (const translator of translators.values()) await translator.dispose();
    await llamaTranslator?.dispose();
    if (directory) await rm(directory, { recursive: true, force: true });
  });

  it("reports the feature identity of each selection", () => {
    const final = translatorFor("final").featureIdentity;
    expect(final).toMatchObject({ arch: "llama", layer: "final", dim: 64, template: template.text });
    expect(final.fingerprint).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(translatorFor("0").featureIdentity).toMatchObject({ layer: "0", dim: 64 });
    expect(translatorFor("1,final").featureIdentity).toMatchObject({ layer: "1,final", dim: 128 });
    expect(translatorFor("1,final").featureIdentity.fingerprint).toBe(final.fingerprint);
    expect(llamaTranslator.featureIdentity.fingerprint).toBe(final.fingerprint);
  });

  it("evaluates the same prompt token ids as LlamaTranslator", () => {
    for (const request of requests) {
      const ids = translatorFor("final").tokenizePrompt(request);
      expect(ids[0]).toBe(1);
      expect(ids.length).toBeGreaterThan(5);
      expect(ids).toEqual(llamaTranslator.tokenizePrompt(request));
    }
  });

  it("reads final, 0, 1 and 1,final as the reference forward pass computes them", async () => {
    for (const request of requests.slice(0, 2)) {
      const reference = referenceFor(request);
      const prefills = new Map<string, Float32Array>();
      for (const layer of ["final", "0", "1", "1,final"]) {
        const prefilled = await translatorFor(layer).prefill(request);
        prefills.set(layer, prefilled.features);
        await prefilled.release();
      }
      const final = prefills.get("final") as Float32Array;
      const layer0 = prefills.get("0") as Float32Array;
      const layer1 = prefills.get("1") as Float32Array;
      const joined = prefills.get("1,final") as Float32Array;
      expect(final).toHaveLength(64);
      expect(cosine(final, reference.hiddenFinal)).toBeGreaterThan(0.9999);
      // Layer 0 is the last prompt token's embedding row: exact.
      expect(Array.from(layer0)).toEqual(Array.from(reference.layerInputs[0] as Float32Array));
      expect(cosine(layer1, reference.layerInputs[1] as Float32Array)).toBeGreaterThan(0.9999);
      expect(maxAbsDifference(layer1, reference.layerInputs[1] as Float32Array)).toBeLessThan(2e-3);
      // Concatenated in the listed order: layer 1's input, then the final state.
      expect(joined).toHaveLength(128);
      expect(maxAbsDifference(joined.subarray(0, 64), layer1)).toBeLessThan(1e-5);
      expect(maxAbsDifference(joined.subarray(64), final)).toBeLessThan(1e-5);
      expect(cosine(joined.subarray(64), reference.hiddenFinal)).toBeGreaterThan(0.9999);
      expect(cosine(layer1, final)).toBeLessThan(0.99);
    }
  });

  it("gives the entropy of softmax(logits) over the full vocabulary", async () => {
    for (const request of requests.slice(0, 2)) {
      const prefilled = await translatorFor("1,final").prefill(request);
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

  it("continue() equals translate() and LlamaTranslator's greedy output, in any slice size", async () => {
    const expected = await llamaTranslator.translate(requests);
    const plain = await translatorFor("final").translate(requests);
    const sliced = await LlamaFfiTranslator.create({
      modelPath,
      threads: 1,
      template,
      maxTokens,
      layer: "0,final",
      decodeSliceTokens: 1,
    });
    try {
      for (const [index, request] of requests.entries()) {
        const want = expected[index];
        expect(want?.outputTokens).toBeGreaterThan(0);
        for (const translator of [translatorFor("1,final"), sliced]) {
          const prefilled = await translator.prefill(request);
          const continued = await prefilled.continue();
          expect(continued.text).toBe(want?.text);
          expect(continued.outputTokens).toBe(want?.outputTokens);
          expect(continued.finishReason).toBe(want?.finishReason);
          expect(continued.promptTokens).toBe(want?.promptTokens);
        }
        expect(plain[index]?.text).toBe(want?.text);
        expect(plain[index]?.outputTokens).toBe(want?.outputTokens);
        expect(plain[index]?.model).toBe("tiny.gguf");
      }
    } finally {
      await sliced.dispose();
    }
  });

  it("stops at maxTokens with finishReason length, and honours a pre-aborted signal", async () => {
    const translator = translatorFor("final");
    const request = requests[0] as TranslationRequest;
    const [long] = await translator.translate([request]);
    expect(long?.outputTokens).toBeGreaterThan(3);
    const [short] = await translator.translate([request], { maxTokens: 3 });
    expect(short).toMatchObject({ outputTokens: 3, finishReason: "length" });
    const controller = new AbortController();
    controller.abort();
    const [aborted] = await translator.translate([request], { signal: controller.signal });
    expect(aborted).toMatchObject({ outputTokens: 0, finishReason: "abort", text: "" });
  });

  it("serves concurrent callers over two sequences with the results of one-at-a-time runs", async () => {
    const translator = translatorFor("1");
    const alone = [];
    for (const request of requests) {
      const prefilled = await translator.prefill(request);
      alone.push({ features: prefilled.features, translation: await prefilled.continue() });
    }
    // Four prefills over two sequences: the later ones wait until earlier ones finish.
    const together = await Promise.all(
      requests.map(async (request) => {
        const prefilled = await translator.prefill(request);
        return { features: prefilled.features, translation: await prefilled.continue() };
      }),
    );
    for (const [index, result] of together.entries()) {
      const single = alone[index];
      expect(maxAbsDifference(result.features, single?.features as Float32Array)).toBeLessThan(1e-5);
      expect(result.translation.text).toBe(single?.translation.text);
    }
  });

  it("lets the event loop run between decode slices of a long generation", async () => {
    const translator = await LlamaFfiTranslator.create({
      modelPath,
      threads: 1,
      template,
      maxTokens: 40,
      decodeSliceTokens: 1,
    });
    try {
      let turns = 0;
      let done = false;
      const tick = () => {
        turns += 1;
        if (!done) setImmediate(tick);
      };
      setImmediate(tick);
      const [translation] = await translator.translate([requests[0] as TranslationRequest]);
      done = true;
      // One slice per generated token, each after its own event-loop turn.
      expect(translation?.outputTokens).toBeGreaterThan(10);
      expect(turns).toBeGreaterThanOrEqual(translation?.outputTokens ?? Number.POSITIVE_INFINITY);
    } finally {
      await translator.dispose();
    }
  });

  it("refuses bad requests with clean errors and stays usable", async () => {
    const translator = translatorFor("final");
    await expect(translator.prefill({ text: "  ", srcLang: "en", tgtLang: "de" })).rejects.toThrow(
      InputError,
    );
    await expect(translator.translate([{ text: "", srcLang: "en", tgtLang: "de" }])).rejects.toThrow(
      /empty text/,
    );
    const long = { text: "the cat ".repeat(200), srcLang: "en", tgtLang: "de" };
    await expect(translator.prefill(long)).rejects.toThrow(/exceeds the context size 256/);
    await expect(translator.prefill({ text: "a cat", srcLang: "en", tgtLang: "xx-nope" })).rejects.toThrow(
      UsageError,
    );
    const prefilled = await translator.prefill(requests[1] as TranslationRequest);
    await prefilled.continue({ maxTokens: 2 });
    await expect(prefilled.continue()).rejects.toThrow(UsageError);
    await prefilled.release();
    const [after] = await translator.translate([requests[1] as TranslationRequest], { maxTokens: 2 });
    expect(after?.outputTokens).toBe(2);
  });

  it("refuses a layer out of range, naming the model's layer count, before loading", async () => {
    await expect(LlamaFfiTranslator.create({ modelPath, threads: 1, layer: "99" })).rejects.toThrow(
      /layer 99 is out of range: tiny\.gguf has 2 layers/,
    );
    await expect(LlamaFfiTranslator.create({ modelPath, threads: 1, layer: "0,2" })).rejects.toThrow(
      UsageError,
    );
    await expect(
      LlamaFfiTranslator.create({ modelPath, threads: 1, maxTokens: 64, contextSize: 64 }),
    ).rejects.toThrow(/leaves no room/);
  });

  it("refuses layer indices of an unsupported architecture from the GGUF header alone", async () => {
    // Only a header: loading it would fail with an InputError, so an UnsupportedError proves the
    // guard ran first.
    const qwen2Path = path.join(directory, "qwen2-header.gguf");
    writeGguf(
      qwen2Path,
      {
        "general.architecture": gguf.str("qwen2"),
        "qwen2.block_count": gguf.u32(24),
        "qwen2.context_length": gguf.u32(4096),
      },
      [],
    );
    const attempt = LlamaFfiTranslator.create({ modelPath: qwen2Path, threads: 1, layer: "8,final" });
    await expect(attempt).rejects.toThrow(UnsupportedError);
    await expect(LlamaFfiTranslator.create({ modelPath: qwen2Path, threads: 1, layer: "8" })).rejects.toThrow(
      /architecture "qwen2".*layer "final" works/,
    );
    await expect(
      LlamaFfiTranslator.create({ modelPath: qwen2Path, threads: 1, layer: "final" }),
    ).rejects.toThrow(InputError);
  });

  it("is unusable after dispose, and dispose is idempotent", async () => {
    const translator = await LlamaFfiTranslator.create({ modelPath, threads: 1, template, maxTokens });
    const held = await translator.prefill(requests[0] as TranslationRequest);
    await translator.dispose();
    await translator.dispose();
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
      expect(ffi.featureIdentity).toMatchObject({ arch: "llama", layer: "1,final", dim: 256 });
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

  it.skipIf(!tinymtAvailable)("translates exactly as LlamaTranslator does", async () => {
    const expected = await reference.translate(requests);
    const plain = await ffi.translate(requests);
    for (const [index, request] of requests.entries()) {
      const prefilled = await ffi.prefill(request);
      const continued = await prefilled.continue();
      expect(expected[index]?.text.length).toBeGreaterThan(0);
      expect(continued.text).toBe(expected[index]?.text);
      expect(plain[index]?.text).toBe(expected[index]?.text);
    }
  });
});

describe("routelmt collect with a layer list", () => {
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
      collectArguments({ ...pair, input, out }, ["--concurrency", "1", "--max-tokens", "6", ...extra]);
  });
  afterAll(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("writes the concatenated features of --layer 0,final and records the selection", async () => {
    const out = path.join(work, "layers");
    const run = await runCliCaptured(args(out, ["--layer", "0,final"]));
    expect(run.stderr).not.toMatch(/error/i);
    expect(run.code).toBe(0);
    const dataset = await loadDataset(out);
    expect(dataset.meta.dim).toBe(128);
    expect(dataset.meta.small.layer).toBe("0,final");
    expect(dataset.features?.length).toBe(4 * 128);
    const first = dataset.features?.subarray(0, 128) as Float32Array;
    // Token embedding then final state: two different vectors, neither all zeros.
    expect(cosine(first.subarray(0, 64), first.subarray(64))).toBeLessThan(0.99);
    expect(Math.max(...Array.from(first.subarray(0, 64), Math.abs))).toBeGreaterThan(0);
  });

  it("refuses --feature-engine llama for layer indices and bad engine names", async () => {
    const refused = await runCliCaptured(
      args(path.join(work, "never"), ["--layer", "0", "--feature-engine", "llama"]),
    );
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/reads only layer "final"/);
    const unknown = await runCliCaptured(args(path.join(work, "never"), ["--feature-engine", "vllm"]));
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/vllm/);
  });
});
