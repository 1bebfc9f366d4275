/**
 * Feature views on every architecture the FFI engine reads them from, on generated random-weight
 * models: every view can be read, `last:final` is what node-llama-cpp's engine reads, and views and
 * translations do not depend on how many requests share the engine's batches.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NORM_STATISTICS_DIM } from "../src/features/pooling.js";
import { LlamaFfiTranslator } from "../src/translators/llama-ffi-translator.js";
import { LlamaTranslator } from "../src/translators/llama-translator.js";
import { parsePromptTemplate } from "../src/translators/prompt-template.js";
import type { Translation, TranslationRequest } from "../src/translators/types.js";
import { TINY_ARCHITECTURES, writeTinyLlamaGguf } from "./helpers/tiny-llama.js";
import { cosine, maxAbsDifference } from "./helpers/vector-compare.js";

const template = parsePromptTemplate("{src}: {text}\n{tgt}:", "inline");
const texts = [
  "the cat sat on the mat",
  "hello world",
  "a big red house",
  "the dog is in the house with a man",
  "the man and the cat",
  "it is red",
  "a dog sat on a big mat in the house",
  "hello cat",
];
const requests: TranslationRequest[] = texts.map((text, index) => ({
  id: String(index),
  text,
  srcLang: "en",
  tgtLang: "de",
}));
const LAYERS = 3;
const WIDTH = 64;
const maxTokens = 10;

let directory: string;
beforeAll(async () => {
  directory = await mkdtemp(path.join(tmpdir(), "routelmt-architectures-"));
});
afterAll(async () => {
  if (directory) await rm(directory, { recursive: true, force: true });
});

/** Prefills and continues every request, `inFlight` at a time at most (the translator's sequences). */
async function runAll(translator: LlamaFfiTranslator) {
  return await Promise.all(
    requests.map(async (request) => {
      const prefilled = await translator.prefill(request);
      return { features: prefilled.features, translation: await prefilled.continue() };
    }),
  );
}

describe.each(TINY_ARCHITECTURES)("feature views of a generated %s model", (architecture) => {
  let modelPath: string;
  let alone: LlamaFfiTranslator;
  let reference: LlamaTranslator;

  beforeAll(async () => {
    modelPath = path.join(directory, `${architecture}.gguf`);
    writeTinyLlamaGguf(modelPath, { architecture, nLayer: LAYERS, seed: 31 });
    alone = await LlamaFfiTranslator.create({
      modelPath,
      threads: 1,
      template,
      maxTokens,
      layer: "all",
      sequences: 1,
    });
    reference = await LlamaTranslator.create({ modelPath, threads: 1, template, maxTokens, sequences: 1 });
  });
  afterAll(async () => {
    await alone?.dispose();
    await reference?.dispose();
  });

  it("reads every view: last, mean and norms of each layer's input and of the final norm", async () => {
    expect(alone.featureIdentity.arch).toBe(architecture);
    expect(alone.featureIdentity.views.map((view) => view.name)).toEqual([
      "last:0",
      "last:1",
      "last:2",
      "last:final",
      "mean:0",
      "mean:1",
      "mean:2",
      "mean:final",
      "norms:0",
      "norms:1",
      "norms:2",
      "norms:final",
    ]);
    expect(alone.featureIdentity.dim).toBe(8 * WIDTH + 4 * NORM_STATISTICS_DIM);
    const prefilled = await alone.prefill(requests[3] as TranslationRequest);
    await prefilled.release();
    const view = (index: number) => {
      const span = alone.featureIdentity.views[index]!;
      return prefilled.features.subarray(span.offset, span.offset + span.dim);
    };
    expect(prefilled.features.every(Number.isFinite)).toBe(true);
    for (let index = 0; index < 12; index++) {
      expect(Math.max(...Array.from(view(index), Math.abs)), `view ${index}`).toBeGreaterThan(0);
    }
    // Each layer changes the residual stream, and a mean over the prompt is not its last token.
    for (const [left, right] of [
      [0, 1],
      [1, 2],
      [2, 3],
      [0, 4],
      [3, 7],
    ] as const) {
      expect(cosine(view(left), view(right)), `views ${left} and ${right}`).toBeLessThan(0.999);
    }
    // Norm statistics: the smallest norms ascend, the largest descend, and the mean lies between.
    for (let index = 8; index < 12; index++) {
      const [a, b, c, d, e, f, g, h, mean, spread] = Array.from(view(index));
      expect(a! <= b! && b! <= c! && c! <= d! && d! <= e!, `view ${index}`).toBe(true);
      expect(e! >= f! && f! >= g! && g! >= h!, `view ${index}`).toBe(true);
      expect(mean! >= a! && mean! <= e! && spread! >= 0, `view ${index}`).toBe(true);
    }
  });

  it("reads last:final as node-llama-cpp's engine does, and translates as it does", async () => {
    const final = await LlamaFfiTranslator.create({
      modelPath,
      threads: 1,
      template,
      maxTokens,
      sequences: 1,
    });
    try {
      for (const request of requests.slice(0, 4)) {
        const mine = await final.prefill(request);
        const theirs = await reference.prefill(request);
        await theirs.release();
        // node-llama-cpp outputs every prompt token when it reads states, so its last layer multiplies
        // whole matrices where this engine multiplies one row: float rounding, nothing more.
        expect(cosine(mine.features, theirs.features), request.text).toBeGreaterThan(0.99999);
        expect(maxAbsDifference(mine.features, theirs.features), request.text).toBeLessThan(1e-4);
        expect(mine.entropy).toBeCloseTo(theirs.entropy as number, 4);
        const [expected] = await reference.translate([request]);
        expect((await mine.continue()).text).toBe(expected?.text);
      }
    } finally {
      await final.dispose();
    }
  });

  it("gives the same views and translations with 1, 2, 4 and 8 requests in flight", async () => {
    const baseline = await runAll(alone);
    expect(baseline.some((result) => (result.translation.outputTokens ?? 0) > 1)).toBe(true);
    for (const level of [2, 4, 8]) {
      const translator = await LlamaFfiTranslator.create({
        modelPath,
        threads: 1,
        template,
        maxTokens,
        layer: "all",
        sequences: level,
      });
      try {
        const results = await runAll(translator);
        const differences = results.flatMap((result, index) => {
          const expected = baseline[index] as { features: Float32Array; translation: Translation };
          const gap = maxAbsDifference(result.features, expected.features);
          return gap <= 1e-5 && result.translation.text === expected.translation.text
            ? []
            : [{ index, gap, text: result.translation.text, expected: expected.translation.text }];
        });
        expect(differences, `${level} in flight`).toEqual([]);
      } finally {
        await translator.dispose();
      }
    }
  });
});
