import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { hasShared, sharedPath, sharedSkipReason } from "../../test/helpers/shared.js";
import {
  type BleuOptions,
  type BleuScoreDetails,
  bleuFromStatistics,
  corpusBleu,
  type SmoothMethod,
  sentenceBleu,
} from "./bleu.js";
import { BLEU_VECTORS, type BleuVector } from "./test-vectors/bleu-vectors.js";
import type { TokenizerName } from "./tokenizers/index.js";

type Params = BleuVector["params"];

function numberParam(params: Params, key: string): number | undefined {
  const value = params[key];
  return typeof value === "number" ? value : undefined;
}

function numbersParam(params: Params, key: string): number[] {
  const value = params[key];
  if (!Array.isArray(value)) throw new Error(`vector param ${key} is not a list`);
  return value;
}

/**
 * Maps sacreBLEU keyword arguments onto our options with sacreBLEU's own defaults made explicit:
 * `BLEU(...)` defaults to effective_order=False and smooth_method='exp'; the static
 * `compute_bleu` defaults to smooth_method='none'. `force` only silences a warning.
 */
function toOptions(vector: BleuVector): BleuOptions {
  const params = vector.params;
  const isStatic = vector.function === "BLEU.compute_bleu";
  return {
    lowercase: params.lowercase === true,
    tokenize: (params.tokenize ?? "13a") as TokenizerName,
    smoothMethod: (params.smooth_method ?? (isStatic ? "none" : "exp")) as SmoothMethod,
    smoothValue: numberParam(params, "smooth_value"),
    maxNgramOrder: numberParam(params, "max_ngram_order") ?? 4,
    effectiveOrder: params.effective_order === true,
  };
}

function run(vector: BleuVector): BleuScoreDetails {
  const options = toOptions(vector);
  switch (vector.function) {
    case "BLEU.compute_bleu": {
      const params = vector.params;
      const statistics = [
        numberParam(params, "sys_len")!,
        numberParam(params, "ref_len")!,
        ...numbersParam(params, "correct"),
        ...numbersParam(params, "total"),
      ];
      return bleuFromStatistics(statistics, options);
    }
    case "BLEU.sentence_score":
      return sentenceBleu(vector.hyps as string, vector.refs as string[], options);
    case "BLEU.corpus_score":
      return corpusBleu(vector.hyps as string[], vector.refs as string[][], options);
  }
}

describe("sacreBLEU's own BLEU test vectors", () => {
  it.each(
    BLEU_VECTORS.map(
      (vector, index) => [`${index + 1} ${vector.suite} ${JSON.stringify(vector.params)}`, vector] as const,
    ),
  )("%s", (_name, vector) => {
    const result = run(vector);
    if (typeof vector.expected === "number") {
      expect(Math.abs(result.score - vector.expected)).toBeLessThanOrEqual(vector.tolerance);
      // much tighter than the upstream tolerance: the value sacreBLEU 2.6.0 itself printed
      expect(Math.abs(result.score - (vector.sacrebleu_2_6_0 as number))).toBeLessThanOrEqual(1e-9);
    } else {
      expect(result.counts).toEqual(vector.expected.counts);
      expect(result.totals).toEqual(vector.expected.totals);
    }
  });

  it("covers every upstream BLEU function", () => {
    expect(BLEU_VECTORS).toHaveLength(46);
    expect(new Set(BLEU_VECTORS.map((vector) => vector.function))).toEqual(
      new Set(["BLEU.corpus_score", "BLEU.sentence_score", "BLEU.compute_bleu"]),
    );
  });

  const sharedFile = ["sacrebleu", "unit_vectors.json"];
  it.skipIf(!hasShared(sharedFile))(
    hasShared(sharedFile)
      ? "equals the BLEU entries of ../shared/sacrebleu/unit_vectors.json"
      : sharedSkipReason("comparing the in-repo BLEU vectors with ../shared/sacrebleu/unit_vectors.json"),
    () => {
      const shared = JSON.parse(readFileSync(sharedPath(...sharedFile), "utf8")) as { vectors: BleuVector[] };
      expect(BLEU_VECTORS).toEqual(shared.vectors.filter((vector) => vector.function.includes("BLEU")));
    },
  );
});
