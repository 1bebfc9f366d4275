import { describe, expect, it } from "vitest";
import { InputError, UnsupportedError, UsageError } from "../errors/index.js";
import { VERSION } from "../version.js";
import {
  type BleuOptions,
  bleuFromStatistics,
  bleuSignature,
  bleuStatistics,
  closestReferenceLength,
  corpusBleu,
  createBleuMetric,
  formatFixedLikePython,
  SMOOTH_DEFAULTS,
  sentenceBleu,
  sumBleuStatistics,
} from "./bleu.js";
import type { TokenizerName } from "./tokenizers/index.js";

const version = `version:routelmt-${VERSION}`;

/** Geometric mean of precisions given as fractions, on the 0–100 scale. */
function geometricMean(...fractions: number[]): number {
  return 100 * fractions.reduce((product, fraction) => product * fraction, 1) ** (1 / fractions.length);
}

describe("bleuStatistics", () => {
  it("lays out [hypLen, refLen, matches..., totals...] like sacreBLEU", () => {
    // "the cat sat" against "the cat sat on the mat": 3/3 unigrams, 2/2 bigrams, 1/1 trigram, no 4-gram
    expect(bleuStatistics("the cat sat", ["the cat sat on the mat"], { tokenize: "none" })).toEqual([
      3, 6, 3, 2, 1, 0, 3, 2, 1, 0,
    ]);
    expect(bleuStatistics("a b", ["a b"], { maxNgramOrder: 2 })).toHaveLength(2 + 2 * 2);
  });

  it("clips each n-gram by its highest count in any one reference", () => {
    // "the" occurs 4 times; at most twice in one reference, so 2 unigram matches
    const [, , unigramMatches, , , , unigramTotal] = bleuStatistics("the the the the", [
      "the cat",
      "the the mat",
    ]);
    expect(unigramMatches).toBe(2);
    expect(unigramTotal).toBe(4);
  });

  it("takes the closest reference length, the shorter one on a tie", () => {
    expect(closestReferenceLength(4, [3, 5])).toBe(3);
    expect(closestReferenceLength(4, [5, 3])).toBe(3);
    expect(closestReferenceLength(4, [6, 5, 9])).toBe(5);
    expect(bleuStatistics("a b c d", ["a b c d e", "a b c"])[1]).toBe(3);
    expect(bleuStatistics("a b c d", ["a b c d e f", "a b"])[1]).toBe(2); // 2 away either way
    expect(bleuStatistics("a b c d", ["a b c d e f", "a"])[1]).toBe(6);
  });

  it("ignores null/undefined references and needs at least one", () => {
    expect(bleuStatistics("a b", [null, "a b", undefined])).toEqual(bleuStatistics("a b", ["a b"]));
    expect(() => bleuStatistics("a b", [])).toThrow(InputError);
    expect(() => bleuStatistics("a b", [null])).toThrow(InputError);
  });

  it("drops trailing whitespace and lowercases before tokenising when asked", () => {
    expect(bleuStatistics("The Cat  \n", ["the cat"], { lowercase: true }).slice(2, 4)).toEqual([2, 1]);
    expect(bleuStatistics("The Cat", ["the cat"]).slice(2, 4)).toEqual([0, 0]);
  });
});

describe("bleuFromStatistics", () => {
  it("applies the brevity penalty exp(1 - r/c) when the hypothesis is shorter", () => {
    const result = bleuFromStatistics([2, 4, 2, 1, 0, 0, 2, 1, 0, 0], { effectiveOrder: true });
    expect(result.bp).toBeCloseTo(Math.exp(1 - 4 / 2), 15);
    expect(result.score).toBeCloseTo(100 * Math.exp(-1), 12);
  });

  it("gives exactly 0 for an empty hypothesis or no matches, whatever the smoothing", () => {
    const noMatch = bleuFromStatistics([0, 3, 0, 0, 0, 0, 0, 0, 0, 0], { smoothMethod: "floor" });
    expect(noMatch).toMatchObject({ score: 0, bp: 0, sysLen: 0, refLen: 3, precisions: [0, 0, 0, 0] });
  });

  it("does not modify the statistics it is given", () => {
    const statistics = [4, 4, 3, 1, 0, 0, 4, 3, 2, 1];
    bleuFromStatistics(statistics, { smoothMethod: "add-k" });
    expect(statistics).toEqual([4, 4, 3, 1, 0, 0, 4, 3, 2, 1]);
  });

  it("rejects statistics of the wrong length and invalid options", () => {
    expect(() => bleuFromStatistics([1, 1, 1, 1], {})).toThrow(UsageError);
    expect(() => bleuFromStatistics([1, 1, 1, 1], { maxNgramOrder: 1 })).not.toThrow();
    expect(() => bleuFromStatistics([1, 1, 1, 1], { maxNgramOrder: 0 })).toThrow(UsageError);
    expect(() => bleuFromStatistics([1, 1, 1, 1], { maxNgramOrder: 1, smoothValue: Number.NaN })).toThrow(
      UsageError,
    );
    expect(() =>
      bleuFromStatistics([1, 1, 1, 1], { maxNgramOrder: 1, smoothMethod: "bogus" as "exp" }),
    ).toThrow(UsageError);
  });
});

describe("smoothing (hand-computed)", () => {
  // "a b c d" against "a b x d": unigrams 3/4, bigrams 1/3 ("a b"), trigrams 0/2, 4-grams 0/1
  const hypothesis = "a b c d";
  const references = ["a b x d"];

  it("exp halves the unmatched-order precision each time: 100/(2·2), 100/(4·1)", () => {
    const result = sentenceBleu(hypothesis, references, { smoothMethod: "exp" });
    expect(result.precisions).toEqual([75, 100 / 3, 25, 25]);
    expect(result.score).toBeCloseTo(geometricMean(0.75, 1 / 3, 0.25, 0.25), 12);
  });

  it("floor uses smoothValue/total (default 0.1)", () => {
    const result = sentenceBleu(hypothesis, references, { smoothMethod: "floor" });
    expect(result.precisions).toEqual([75, 100 / 3, 5, 10]);
    expect(result.score).toBeCloseTo(geometricMean(0.75, 1 / 3, 0.05, 0.1), 12);
    expect(SMOOTH_DEFAULTS.floor).toBe(0.1);
  });

  it("add-k adds k (default 1) to matches and totals from order 2 on, and reports them that way", () => {
    const result = sentenceBleu(hypothesis, references, { smoothMethod: "add-k" });
    expect(result.counts).toEqual([3, 2, 1, 1]);
    expect(result.totals).toEqual([4, 4, 3, 2]);
    expect(result.score).toBeCloseTo(geometricMean(0.75, 0.5, 1 / 3, 0.5), 12);
    const twice = sentenceBleu(hypothesis, references, { smoothMethod: "add-k", smoothValue: 2 });
    expect(twice.score).toBeCloseTo(geometricMean(0.75, 3 / 5, 2 / 4, 2 / 3), 12);
  });

  it("none leaves a zero precision, which floors the score to 0", () => {
    expect(sentenceBleu(hypothesis, references, { smoothMethod: "none" }).score).toBe(0);
  });
});

describe("effective order", () => {
  it("is on by default for sentence BLEU and off for corpus BLEU", () => {
    // two tokens: no 3- or 4-grams at all
    expect(sentenceBleu("a b", ["a b"]).score).toBeCloseTo(100, 10);
    expect(corpusBleu(["a b"], [["a b"]]).score).toBe(0);
    expect(corpusBleu(["a b"], [["a b"]], { effectiveOrder: true }).score).toBeCloseTo(100, 10);
  });
});

describe("sentenceBleu edge cases (as sacreBLEU 2.6.0)", () => {
  it("keeps a U+FEFF byte-order mark glued to the first word", () => {
    // unigrams 1/2 ("b"), bigrams 0/1 smoothed to 100/2: geometric mean 50
    const result = sentenceBleu("\ufeffa b", ["a b"]);
    expect(result.counts.slice(0, 2)).toEqual([1, 0]);
    expect(result.score).toBeCloseTo(50, 10);
  });

  it("scores an empty hypothesis 0 with a zero brevity penalty", () => {
    expect(sentenceBleu("", ["a b"])).toMatchObject({ score: 0, bp: 0, sysLen: 0, refLen: 2 });
  });

  it("treats an empty reference as a real reference of length 0", () => {
    const result = sentenceBleu("a b", [""]);
    expect(result).toMatchObject({ score: 0, bp: 1, sysLen: 2, refLen: 0 });
    expect(result.signature).toBe(`nrefs:1|case:mixed|eff:yes|tok:13a|smooth:exp|${version}`);
    // alongside a real one it only competes for the closest length
    expect(sentenceBleu("a b", ["", "a b"]).score).toBeCloseTo(100, 10);
    expect(sentenceBleu("a", ["", "a b c"]).refLen).toBe(0);
  });

  it("uses the best match of multiple references of different lengths", () => {
    // hyp 5 tokens; refs of 4 and 7 tokens: closest is 4 (diff 1) so no brevity penalty
    const result = sentenceBleu("the cat is on mat", ["the cat sat there", "a cat is on the mat today"], {
      tokenize: "none",
    });
    // unigrams: the, cat, is, on, mat all occur in some reference (5/5); bigrams: "the cat",
    // "cat is", "is on" (3/4); trigrams: "cat is on" (1/3); 4-grams: none (0/2, exp-smoothed to 100/(2·2))
    expect(result.refLen).toBe(4);
    expect(result.counts).toEqual([5, 3, 1, 0]);
    expect(result.score).toBeCloseTo(geometricMean(1, 3 / 4, 1 / 3, 1 / 4), 12);
  });
});

describe("Chinese with tok:zh (hand-computed)", () => {
  // 我喜欢北京。 -> 我 喜 欢 北 京 。 (6 tokens), 我爱北京。 -> 我 爱 北 京 。 (5 tokens).
  // Unigrams 我 北 京 。 match: 4/6. Bigrams 北京, 京。: 2/5. Trigram 北京。: 1/4. 4-grams: 0/3,
  // exp-smoothed to 100/(2·3). Hypothesis longer than reference: BP 1. (sacreBLEU 2.6.0 prints 32.47.)
  it("scores a sentence character by character", () => {
    const result = sentenceBleu("我喜欢北京。", ["我爱北京。"], { tokenize: "zh" });
    expect(result.counts).toEqual([4, 2, 1, 0]);
    expect(result.totals).toEqual([6, 5, 4, 3]);
    expect(result.score).toBeCloseTo(geometricMean(4 / 6, 2 / 5, 1 / 4, 1 / 6), 12);
    expect(result.signature).toBe(`nrefs:1|case:mixed|eff:yes|tok:zh|smooth:exp|${version}`);
  });

  it("sums statistics over a corpus", () => {
    // second pair identical (6 chars): 6/6, 5/5, 4/4, 3/3. Sums: 10/12, 7/10, 5/8, 3/6; lengths 12 vs 11.
    const result = corpusBleu(["我喜欢北京。", "他在上海工作"], [["我爱北京。", "他在上海工作"]], {
      tokenize: "zh",
    });
    expect(result).toMatchObject({ sysLen: 12, refLen: 11, counts: [10, 7, 5, 3], totals: [12, 10, 8, 6] });
    expect(result.score).toBeCloseTo(geometricMean(10 / 12, 7 / 10, 5 / 8, 3 / 6), 12);
  });

  it("does not split Chinese without the zh tokenizer", () => {
    expect(sentenceBleu("我喜欢北京。", ["我爱北京。"], { tokenize: "13a" }).totals[0]).toBe(1);
  });
});

describe("corpusBleu", () => {
  const hypotheses = ["The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."];
  const streams = [
    ["The dog bit the man.", "It was not unexpected.", "The man bit him first."],
    ["The dog had bit the man.", "No one was surprised.", "The man had bitten the dog."],
  ];

  it("equals scoring the summed per-segment statistics once", () => {
    const rows = hypotheses.map((hypothesis, index) =>
      bleuStatistics(
        hypothesis,
        streams.map((stream) => stream[index]),
      ),
    );
    const { signature, ...details } = corpusBleu(hypotheses, streams);
    expect(details).toEqual(bleuFromStatistics(sumBleuStatistics(rows)));
    expect(signature).toBe(`nrefs:2|case:mixed|eff:no|tok:13a|smooth:exp|${version}`);
  });

  it("reports nrefs:var when a stream misses a segment (null), like sacreBLEU's None", () => {
    const variable = [[null, ...streams[0]!.slice(1)], streams[1]!];
    const result = corpusBleu(hypotheses, variable);
    expect(result.signature).toBe(`nrefs:var|case:mixed|eff:no|tok:13a|smooth:exp|${version}`);
    // sacreBLEU 2.6.0 README example: BLEU = 29.44, hyp_len 17, ref_len 19
    expect(result.score).toBeCloseTo(29.44, 2);
    expect(result).toMatchObject({ sysLen: 17, refLen: 19 });
  });

  it("rejects empty input, mismatched stream lengths and segments without any reference", () => {
    expect(() => corpusBleu([], [[]])).toThrow(InputError);
    expect(() => corpusBleu(["a"], [])).toThrow(InputError);
    expect(() => corpusBleu(["a", "b"], [["a"]])).toThrow(InputError);
    expect(() => corpusBleu(["a", "b"], [["a", null]])).toThrow(/segment 2/);
  });
});

describe("signatures", () => {
  it.each<[BleuOptions, "sentence" | "corpus", string]>([
    [{}, "corpus", `nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|${version}`],
    [{}, "sentence", `nrefs:1|case:mixed|eff:yes|tok:13a|smooth:exp|${version}`],
    [
      { lowercase: true, tokenize: "intl" },
      "corpus",
      `nrefs:1|case:lc|eff:no|tok:intl|smooth:exp|${version}`,
    ],
    [{ smoothMethod: "floor" }, "corpus", `nrefs:1|case:mixed|eff:no|tok:13a|smooth:floor[0.10]|${version}`],
    [
      { smoothMethod: "floor", smoothValue: 0.01 },
      "corpus",
      `nrefs:1|case:mixed|eff:no|tok:13a|smooth:floor[0.01]|${version}`,
    ],
    [{ smoothMethod: "add-k" }, "corpus", `nrefs:1|case:mixed|eff:no|tok:13a|smooth:add-k[1.00]|${version}`],
    [
      { smoothMethod: "add-k", smoothValue: 2 },
      "sentence",
      `nrefs:1|case:mixed|eff:yes|tok:13a|smooth:add-k[2.00]|${version}`,
    ],
    [
      { smoothMethod: "none", effectiveOrder: true, tokenize: "char" },
      "corpus",
      `nrefs:1|case:mixed|eff:yes|tok:char|smooth:none|${version}`,
    ],
  ])("%j at %s level", (options, level, expected) => {
    expect(bleuSignature(options, 1, level)).toBe(expected);
  });

  it("leaves nrefs out while unknown", () => {
    expect(bleuSignature({}, undefined, "sentence")).toBe(`case:mixed|eff:yes|tok:13a|smooth:exp|${version}`);
  });

  it("formats smoothing values like Python's :.2f (ties to even)", () => {
    expect(formatFixedLikePython(0.125, 2)).toBe("0.12");
    expect(formatFixedLikePython(0.375, 2)).toBe("0.38");
    expect(formatFixedLikePython(-0.125, 2)).toBe("-0.12");
    expect(formatFixedLikePython(0.015, 2)).toBe("0.01"); // binary value lies below the tie
    expect(formatFixedLikePython(2.675, 2)).toBe("2.67");
    expect(formatFixedLikePython(1, 2)).toBe("1.00");
  });

  it("rejects unknown and model-based tokenizers", () => {
    expect(() => sentenceBleu("a", ["a"], { tokenize: "v14" as TokenizerName })).toThrow(UsageError);
    expect(() => sentenceBleu("a", ["a"], { tokenize: "ja-mecab" as TokenizerName })).toThrow(
      UnsupportedError,
    );
  });
});

describe("createBleuMetric", () => {
  it("describes itself as a reference-based, higher-is-better metric", () => {
    const metric = createBleuMetric();
    expect(metric).toMatchObject({ name: "bleu", higherIsBetter: true, needsReference: true });
  });

  it("scores each item with sentence BLEU and its own references", async () => {
    const metric = createBleuMetric({ tokenize: "zh" });
    const items = [
      { src: "x", hyp: "我喜欢北京。", refs: ["我爱北京。"] },
      { src: "y", hyp: "他在上海工作", refs: ["他在北京工作", "他在上海工作"] },
    ];
    const scores = await metric.scoreBatch(items);
    expect(scores).toHaveLength(2);
    expect(scores[0]).toBe(sentenceBleu(items[0]!.hyp, items[0]!.refs, { tokenize: "zh" }).score);
    expect(scores[1]).toBeCloseTo(100, 10);
  });

  it("builds its sentence-level signature from the references it has seen", async () => {
    const metric = createBleuMetric({ smoothMethod: "floor" });
    expect(metric.signature).toBe(`case:mixed|eff:yes|tok:13a|smooth:floor[0.10]|${version}`);
    await metric.scoreBatch([{ src: "", hyp: "a", refs: ["a"] }]);
    expect(metric.signature).toBe(`nrefs:1|case:mixed|eff:yes|tok:13a|smooth:floor[0.10]|${version}`);
    await metric.scoreBatch([{ src: "", hyp: "a", refs: ["a", "b"] }]);
    expect(metric.signature).toBe(`nrefs:var|case:mixed|eff:yes|tok:13a|smooth:floor[0.10]|${version}`);
  });

  it("rejects items without references before scoring any", async () => {
    const metric = createBleuMetric();
    await expect(
      metric.scoreBatch([
        { src: "", hyp: "a", refs: ["a"] },
        { src: "", hyp: "b" },
      ]),
    ).rejects.toThrow(InputError);
    await expect(metric.scoreBatch([{ src: "", hyp: "a", refs: [] }])).rejects.toThrow(/item 1/);
    expect(metric.signature).not.toContain("nrefs");
  });

  it("fails fast on invalid options", () => {
    expect(() => createBleuMetric({ maxNgramOrder: 1.5 })).toThrow(UsageError);
  });
});
