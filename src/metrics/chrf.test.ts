import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { hasShared, sharedPath, sharedSkipReason } from "../../test/helpers/shared.js";
import { InputError, UsageError } from "../errors/index.js";
import { VERSION } from "../version.js";
import {
  type ChrfOptions,
  chrfFromStatistics,
  chrfSignature,
  chrfStatistics,
  chrfStatisticsLength,
  chrfWordTokens,
  corpusChrf,
  createChrfMetric,
  sentenceChrf,
  sumChrfStatistics,
} from "./chrf.js";
import { CHRF_VECTORS, type ChrfVector, type SacrebleuChrfParams } from "./test-vectors/chrf-vectors.js";

const VERSION_PAIR = `version:routelmt-${VERSION}`;

function toOptions(params: SacrebleuChrfParams): ChrfOptions {
  return {
    charOrder: params.char_order,
    wordOrder: params.word_order,
    beta: params.beta,
    epsSmoothing: params.eps_smoothing,
    whitespace: params.whitespace,
    lowercase: params.lowercase,
  };
}

function scoreVector(vector: ChrfVector): number {
  const options = toOptions(vector.params);
  return vector.function === "CHRF.sentence_score"
    ? sentenceChrf(vector.hyps, vector.refs, options).score
    : corpusChrf(vector.hyps, vector.refs, options).score;
}

// Upstream suite name plus the case's position within that suite.
const NAMED_VECTORS = CHRF_VECTORS.map((vector, index) => ({
  name: `${vector.suite} #${CHRF_VECTORS.slice(0, index).filter((other) => other.suite === vector.suite).length + 1}`,
  vector,
}));

describe("sacreBLEU test vectors", () => {
  it("has all 25 chrF vectors of the upstream suite", () => {
    expect(CHRF_VECTORS).toHaveLength(25);
  });

  it.each(NAMED_VECTORS)("$name", ({ vector }) => {
    const score = scoreVector(vector);
    expect(Math.abs(score - vector.expected)).toBeLessThanOrEqual(vector.tolerance);
    // The operation order follows sacreBLEU, so the 2.6.0 recomputation agrees far more tightly.
    expect(Math.abs(score - vector.sacrebleu_2_6_0)).toBeLessThanOrEqual(1e-12);
  });

  const sharedFile = ["sacrebleu", "unit_vectors.json"];
  it.skipIf(!hasShared(sharedFile))(
    hasShared(sharedFile)
      ? "in-repo vectors equal the chrF entries of ../shared/sacrebleu/unit_vectors.json"
      : sharedSkipReason("comparing the in-repo chrF vectors with sacrebleu/unit_vectors.json"),
    () => {
      const file = JSON.parse(readFileSync(sharedPath(...sharedFile), "utf8")) as {
        vectors: { source_file: string }[];
      };
      const fromFile = file.vectors.filter((vector) => vector.source_file === "test/test_chrf.py");
      expect(CHRF_VECTORS).toEqual(fromFile);
    },
  );
});

describe("hand-computed cases", () => {
  it("scores a German pair (chrF and chrF++) as derived by hand", () => {
    // Without whitespace, hyp = "DerBärbrüllt." (13 chars) and ref = "DerBärbrüllte." (14): the
    // ref is the hyp with an "e" inserted before the final ".". Every hyp n-gram inside the
    // shared prefix "DerBärbrüllt" matches; the unigram "." matches too, but for n >= 2 the last
    // hyp n-gram ends in "t." which the ref lacks. So for n = 1..6:
    //   hyp count 14-n, ref count 15-n, matches 13 (n = 1) and 13-n (n >= 2);
    //   P = 13/13, 11/12, 10/11, 9/10, 8/9, 7/8 and R = 13/14, 11/13, 10/12, 9/11, 8/10, 7/9.
    // All 6 orders are effective; chrF = 100 * (1 + 2²) P̄ R̄ / (2² P̄ + R̄) with P̄, R̄ the means.
    const precisions = [1, 11 / 12, 10 / 11, 9 / 10, 8 / 9, 7 / 8];
    const recalls = [13 / 14, 11 / 13, 10 / 12, 9 / 11, 8 / 10, 7 / 9];
    const fBeta2 = (precision: number, recall: number) =>
      (100 * (5 * precision * recall)) / (4 * precision + recall);
    const sum = (values: number[]) => values.reduce((total, value) => total + value, 0);
    const chrf = sentenceChrf("Der Bär brüllt.", ["Der Bär brüllte."]);
    expect(chrf.statistics).toEqual([13, 14, 13, 12, 13, 11, 11, 12, 10, 10, 11, 9, 9, 10, 8, 8, 9, 7]);
    expect(chrf.score).toBeCloseTo(fBeta2(sum(precisions) / 6, sum(recalls) / 6), 10);
    expect(chrf.score).toBeCloseTo(84.90244110859445, 10); // sacreBLEU 2.6.0

    // chrF++ words: hyp [Der, Bär, brüllt, .], ref [Der, Bär, brüllte, .] ("." split off the
    // end). Unigrams: 3 of 4 match (P = R = 3/4); bigrams: only "Der Bär" (P = R = 1/3).
    // The 8 orders are averaged together.
    const chrfPlusPlus = sentenceChrf("Der Bär brüllt.", ["Der Bär brüllte."], { wordOrder: 2 });
    expect(chrfPlusPlus.statistics.slice(18)).toEqual([4, 4, 3, 3, 3, 1]);
    expect(chrfPlusPlus.score).toBeCloseTo(
      fBeta2((sum(precisions) + 3 / 4 + 1 / 3) / 8, (sum(recalls) + 3 / 4 + 1 / 3) / 8),
      10,
    );
    expect(chrfPlusPlus.score).toBeCloseTo(77.23312974827556, 10); // sacreBLEU 2.6.0
    expect(chrfPlusPlus.name).toBe("chrF2++");
  });

  it("treats a BOM at line start as an ordinary character, as Python's str.split() does", () => {
    // hyp "\uFEFFabc" has 4 characters, ref "abc" 3. Orders 1–3: P = 3/4, 2/3, 1/2 and R = 1;
    // order 4 has no ref n-gram, so it does not count. P̄ = 23/36, R̄ = 1,
    // F = 5 P̄ / (4 P̄ + 1) = 115/128.
    const result = sentenceChrf("\uFEFFabc", ["abc"]);
    expect(result.statistics).toEqual([4, 3, 3, 3, 2, 2, 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    expect(result.score).toBeCloseTo((100 * 115) / 128, 10);
    // In chrF++ the BOM stays glued to the first word, so "\uFEFFabc" is not the word "abc".
    expect(chrfWordTokens("\uFEFFabc def")).toEqual(["\uFEFFabc", "def"]);
    expect(sentenceChrf("\uFEFFab cd", ["ab cd"], { charOrder: 0, wordOrder: 1 }).score).toBeCloseTo(50, 10);
  });

  it("scores an empty hypothesis 0, and eps-smoothed 100·3·eps/6", () => {
    // hyp "" vs ref "abc": orders 1–3 have ref n-grams but no matches (contributing 0 with eps
    // smoothing); orders 4–6 are empty on both sides and contribute eps each.
    const plain = sentenceChrf("", ["abc"]);
    expect(plain.statistics).toEqual([0, 3, 0, 0, 2, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    expect(plain.score).toBe(0);
    expect(sentenceChrf("", ["abc"], { epsSmoothing: true }).score).toBeCloseTo(5e-15, 25);
  });

  it("scores against an empty reference 0, counting no hypothesis n-grams", () => {
    // sacreBLEU zeroes the hypothesis count of every order the reference has no n-gram of.
    const plain = sentenceChrf("abc", [""]);
    expect(plain.statistics).toEqual(new Array(18).fill(0));
    expect(plain.score).toBe(0);
    // All six orders are empty on both sides: 100 * 6 * eps / 6.
    expect(sentenceChrf("abc", [""], { epsSmoothing: true }).score).toBeCloseTo(1e-14, 25);
    expect(sentenceChrf("", [""]).score).toBe(0);
  });

  it("skips absent (null) references like sacreBLEU's None", () => {
    const result = sentenceChrf("abc", [null, "abc", undefined]);
    expect(result.score).toBe(100);
    expect(result.signature).toBe(`nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|${VERSION_PAIR}`);
    expect(() => sentenceChrf("abc", [null])).toThrow(InputError);
  });

  it("uses the statistics of the best reference", () => {
    const result = sentenceChrf("abc", ["xyz", "abc", "abd"]);
    expect(result.score).toBe(100);
    expect(result.statistics).toEqual([3, 3, 3, 2, 2, 2, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    expect(result.signature).toBe(`nrefs:3|case:mixed|eff:yes|nc:6|nw:0|space:no|${VERSION_PAIR}`);
  });

  it("keeps the first reference on a tie even when the statistics differ", () => {
    // hyp "baba". Ref "bbc": orders 1–3 effective with P = 2/4, 0, 0 and R = 2/3, 0, 0, so
    // P̄ = 1/6, R̄ = 2/9 and F = 5·(1/6)(2/9) / (4/6 + 2/9) = 5/24. Ref "ccab": orders 1–4
    // effective with P = R = 1/2, 1/3, 0, 0, so P̄ = R̄ = 5/24 and F = P̄ = 5/24 as well.
    const first = [4, 3, 2, 3, 2, 0, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    const second = [4, 4, 2, 3, 3, 1, 2, 2, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0];
    expect(chrfStatistics("baba", ["bbc"])).toEqual(first);
    expect(chrfStatistics("baba", ["ccab"])).toEqual(second);
    expect(chrfFromStatistics(first)).toBe(chrfFromStatistics(second));
    expect(chrfFromStatistics(first)).toBeCloseTo((100 * 5) / 24, 10);
    expect(chrfStatistics("baba", ["bbc", "ccab"])).toEqual(first);
    expect(chrfStatistics("baba", ["ccab", "bbc"])).toEqual(second);
  });

  it("removes whitespace from character n-grams unless asked to keep it", () => {
    expect(sentenceChrf("a b", ["ab"]).score).toBe(100);
    // Kept: hyp "a b" vs "ab". Unigrams P = 2/3, R = 1; bigrams "a ", " b" vs "ab": P = R = 0;
    // the trigram has no ref counterpart. P̄ = 1/3, R̄ = 1/2, F = (5/6) / (4/3 + 1/2) = 5/11.
    const kept = sentenceChrf("a b", ["ab"], { whitespace: true });
    expect(kept.statistics.slice(0, 9)).toEqual([3, 2, 2, 2, 1, 0, 0, 0, 0]);
    expect(kept.score).toBeCloseTo((100 * 5) / 11, 10);
    expect(kept.signature).toBe(`nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:yes|${VERSION_PAIR}`);
    // Python whitespace beyond ASCII is removed too (ideographic space, NEL, U+001C)…
    expect(sentenceChrf("a\u3000b\u0085c\u001cd", ["abcd"]).score).toBe(100);
    // …but U+FEFF is not whitespace to Python: 3 characters against 2, as in the case above.
    expect(sentenceChrf("a\uFEFFb", ["ab"]).score).toBeCloseTo((100 * 5) / 11, 10);
  });

  it("splits one punctuation mark off a word's end, else off its start (chrF++)", () => {
    expect(chrfWordTokens("Hello, world!")).toEqual(["Hello", ",", "world", "!"]);
    expect(chrfWordTokens("(hi)")).toEqual(["(hi", ")"]);
    expect(chrfWordTokens("(hi")).toEqual(["(", "hi"]);
    expect(chrfWordTokens("... . ,a 'x'")).toEqual(["..", ".", ".", ",", "a", "'x", "'"]);
    expect(chrfWordTokens("😀 😀. «a»")).toEqual(["😀", "😀", ".", "«a»"]);
    // Words: hyp [Hello, ",", world, "!"], ref [Hello, world]. Unigrams P = 2/4, R = 2/2;
    // bigrams "Hello ,", ", world", "world !" vs "Hello world": P = R = 0.
    // P̄ = 1/4, R̄ = 1/2, F = 5·(1/8) / (1 + 1/2) = 5/12.
    const result = sentenceChrf("Hello, world!", ["Hello world"], { charOrder: 0, wordOrder: 2 });
    expect(result.statistics).toEqual([4, 2, 2, 3, 1, 0]);
    expect(result.score).toBeCloseTo((100 * 5) / 12, 10);
  });

  it("counts characters as code points, as Python does", () => {
    expect(chrfStatistics("😀", ["😀"]).slice(0, 6)).toEqual([1, 1, 1, 0, 0, 0]);
    expect(chrfStatistics("a😀b", ["a😀c"]).slice(0, 9)).toEqual([3, 3, 2, 2, 2, 1, 1, 1, 0]);
    // U+1F600 must not be confused with a BMP character sharing its low bits.
    expect(chrfStatistics("😀", ["\uF600"]).slice(0, 3)).toEqual([1, 1, 0]);
  });

  it("lowercases when asked", () => {
    expect(sentenceChrf("ÄPFEL", ["äpfel"]).score).toBe(0);
    const lowered = sentenceChrf("ÄPFEL", ["äpfel"], { lowercase: true });
    expect(lowered.score).toBe(100);
    expect(lowered.signature).toBe(`nrefs:1|case:lc|eff:yes|nc:6|nw:0|space:no|${VERSION_PAIR}`);
  });
});

describe("statistics-first API", () => {
  const hypotheses = ["Der Bär brüllt.", "Das ist gut", ""];
  const references = ["Der Bär brüllte.", "Das ist sehr gut", "leer"];

  it("scores a corpus from summed statistics, not averaged sentence scores", () => {
    for (const options of [{}, { wordOrder: 2 }, { epsSmoothing: true }] as ChrfOptions[]) {
      const statistics = hypotheses.map((hypothesis, index) =>
        chrfStatistics(hypothesis, [references[index]!], options),
      );
      const corpus = corpusChrf(hypotheses, [references], options);
      expect(corpus.statistics).toEqual(sumChrfStatistics(statistics));
      expect(corpus.score).toBe(chrfFromStatistics(sumChrfStatistics(statistics), options));
      const meanOfSentences =
        hypotheses
          .map((hypothesis, index) => sentenceChrf(hypothesis, [references[index]!], options).score)
          .reduce((total, score) => total + score, 0) / hypotheses.length;
      expect(corpus.score).not.toBeCloseTo(meanOfSentences, 3);
    }
  });

  it("gives statistics of the documented length", () => {
    expect(chrfStatistics("a", ["a"])).toHaveLength(chrfStatisticsLength());
    expect(chrfStatistics("a", ["a"], { wordOrder: 2 })).toHaveLength(24);
    expect(chrfStatisticsLength({ charOrder: 4, wordOrder: 1 })).toBe(15);
  });

  it("reports nrefs:var when a stream lacks some references", () => {
    const result = corpusChrf(
      ["a", "b"],
      [
        ["a", "b"],
        ["a", null],
      ],
    );
    expect(result.signature).toBe(`nrefs:var|case:mixed|eff:yes|nc:6|nw:0|space:no|${VERSION_PAIR}`);
    expect(result.score).toBe(100);
  });

  it("rejects bad input with InputError and bad settings with UsageError", () => {
    expect(() => sentenceChrf("a", [])).toThrow(InputError);
    expect(() => corpusChrf([], [[]])).toThrow(InputError);
    expect(() => corpusChrf(["a", "b"], [["a"]])).toThrow(InputError);
    expect(() => corpusChrf(["a"], [[null]])).toThrow(InputError);
    expect(() => corpusChrf(["a"], [])).toThrow(InputError);
    expect(() => chrfFromStatistics([1, 2, 3])).toThrow(InputError);
    expect(() =>
      sumChrfStatistics([
        [1, 2, 3],
        [1, 2],
      ]),
    ).toThrow(InputError);
    expect(() => sumChrfStatistics([])).toThrow(InputError);
    expect(() => chrfStatistics("a", ["a"], { charOrder: 1.5 })).toThrow(UsageError);
    expect(() => chrfStatistics("a", ["a"], { charOrder: 0, wordOrder: 0 })).toThrow(UsageError);
    expect(() => chrfStatistics("a", ["a"], { wordOrder: -1 })).toThrow(UsageError);
    expect(() => chrfStatistics("a", ["a"], { beta: Number.NaN })).toThrow(UsageError);
  });
});

describe("signatures", () => {
  it("follows sacreBLEU's CHRFSignature key order and values", () => {
    expect(sentenceChrf("a", ["a"]).signature).toBe(
      `nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|${VERSION_PAIR}`,
    );
    // sacreBLEU 2.6.0, CHRF(word_order=2, lowercase=True, eps_smoothing=True, whitespace=True)
    // with two references: nrefs:2|case:lc|eff:no|nc:6|nw:2|space:yes|version:2.6.0
    const options = { wordOrder: 2, lowercase: true, epsSmoothing: true, whitespace: true };
    expect(sentenceChrf("a", ["a", "b"], options).signature).toBe(
      `nrefs:2|case:lc|eff:no|nc:6|nw:2|space:yes|${VERSION_PAIR}`,
    );
    expect(chrfSignature({ charOrder: 4 })).toBe(`case:mixed|eff:yes|nc:4|nw:0|space:no|${VERSION_PAIR}`);
  });
});

describe("createChrfMetric", () => {
  const items = [
    { src: "", hyp: "Der Bär brüllt.", refs: ["Der Bär brüllte."] },
    { src: "", hyp: "abc", refs: ["xyz", "abc"] },
    { src: "", hyp: "", refs: ["leer"] },
  ];

  it("names chrF and chrF++ and scores each item at sentence level", async () => {
    const chrf = createChrfMetric();
    const chrfPlusPlus = createChrfMetric({ wordOrder: 2 });
    expect([chrf.name, chrfPlusPlus.name]).toEqual(["chrf", "chrf++"]);
    expect(chrf.higherIsBetter && chrf.needsReference).toBe(true);
    // No nrefs before anything was scored; then the reference counts seen so far.
    expect(chrfPlusPlus.signature).toBe(`case:mixed|eff:yes|nc:6|nw:2|space:no|${VERSION_PAIR}`);
    expect(await chrf.scoreBatch(items)).toEqual(
      items.map((item) => sentenceChrf(item.hyp, item.refs).score),
    );
    expect(chrf.signature).toBe(`nrefs:var|case:mixed|eff:yes|nc:6|nw:0|space:no|${VERSION_PAIR}`);
    const plusPlusScores = await chrfPlusPlus.scoreBatch(items);
    expect(plusPlusScores[0]).toBeCloseTo(77.23312974827556, 10);
    expect(plusPlusScores.slice(1)).toEqual([100, 0]);
    expect(await chrf.scoreBatch([])).toEqual([]);
    expect(chrfPlusPlus.signature).toBe(`nrefs:var|case:mixed|eff:yes|nc:6|nw:2|space:no|${VERSION_PAIR}`);
    const single = createChrfMetric();
    await single.scoreBatch([items[0]!]);
    expect(single.signature).toBe(`nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|${VERSION_PAIR}`);
  });

  it("rejects items without references", async () => {
    const metric = createChrfMetric();
    await expect(metric.scoreBatch([{ src: "", hyp: "a" }])).rejects.toBeInstanceOf(InputError);
    await expect(metric.scoreBatch([{ src: "", hyp: "a", refs: [] }])).rejects.toBeInstanceOf(InputError);
    // A bad item anywhere fails the whole batch before anything is counted.
    await expect(
      metric.scoreBatch([
        { src: "", hyp: "a", refs: ["a"] },
        { src: "", hyp: "a" },
      ]),
    ).rejects.toThrow(/item 2/);
    expect(metric.signature).not.toContain("nrefs");
  });
});

/**
 * A deliberately plain re-statement of sacreBLEU's counting: strings, code-point arrays and
 * maps, no ids. The fast path in chrf.ts must give exactly these statistics.
 */
function oracleStatistics(hypothesis: string, references: string[], options: ChrfOptions): number[] {
  const charOrder = options.charOrder ?? 6;
  const wordOrder = options.wordOrder ?? 0;
  const pythonSpaces = new Set(
    [
      0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x85, 0xa0, 0x1680, 0x2028, 0x2029, 0x202f,
      0x205f, 0x3000,
    ].concat(Array.from({ length: 11 }, (_, offset) => 0x2000 + offset)),
  );
  const isSpace = (character: string) => pythonSpaces.has(character.codePointAt(0)!);
  const split = (text: string) => {
    const words: string[] = [];
    let word = "";
    for (const character of text) {
      if (isSpace(character)) {
        if (word !== "") words.push(word);
        word = "";
      } else word += character;
    }
    if (word !== "") words.push(word);
    return words;
  };
  const punctuation = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
  const tokenize = (text: string) =>
    split(text).flatMap((word) => {
      const characters = Array.from(word);
      if (characters.length === 1) return [word];
      if (punctuation.includes(characters.at(-1)!))
        return [characters.slice(0, -1).join(""), characters.at(-1)!];
      if (punctuation.includes(characters[0]!)) return [characters[0]!, characters.slice(1).join("")];
      return [word];
    });
  const counter = (units: string[], order: number, separator: string) => {
    const counts = new Map<string, number>();
    for (let start = 0; start + order <= units.length; start++) {
      const ngram = units.slice(start, start + order).join(separator);
      counts.set(ngram, (counts.get(ngram) ?? 0) + 1);
    }
    return counts;
  };
  const triple = (hypothesisCounts: Map<string, number>, referenceCounts: Map<string, number>) => {
    let hypothesisTotal = 0;
    let matches = 0;
    for (const [ngram, count] of hypothesisCounts) {
      hypothesisTotal += count;
      matches += Math.min(count, referenceCounts.get(ngram) ?? 0);
    }
    let referenceTotal = 0;
    for (const count of referenceCounts.values()) referenceTotal += count;
    return [referenceCounts.size > 0 ? hypothesisTotal : 0, referenceTotal, matches];
  };
  const prepare = (text: string) => {
    const cased = options.lowercase ? text.toLowerCase() : text;
    const characters = Array.from(cased).filter((character) => options.whitespace || !isSpace(character));
    return { characters, words: tokenize(cased) };
  };
  const hypothesisSide = prepare(hypothesis);
  let best: number[] = [];
  let bestScore = -1;
  for (const reference of references) {
    const referenceSide = prepare(reference);
    const statistics: number[] = [];
    for (let order = 1; order <= charOrder; order++) {
      statistics.push(
        ...triple(
          counter(hypothesisSide.characters, order, ""),
          counter(referenceSide.characters, order, ""),
        ),
      );
    }
    for (let order = 1; order <= wordOrder; order++) {
      statistics.push(
        ...triple(counter(hypothesisSide.words, order, " "), counter(referenceSide.words, order, " ")),
      );
    }
    const score = chrfFromStatistics(statistics, options);
    if (score > bestScore) {
      bestScore = score;
      best = statistics;
    }
  }
  return best;
}

describe("fast n-gram matching agrees with plain counting", () => {
  // mulberry32, seeded: the same cases on every run.
  function createRandom(seed: number): () => number {
    let state = seed >>> 0;
    return () => {
      state = (state + 0x6d2b79f5) >>> 0;
      let mixed = Math.imul(state ^ (state >>> 15), 1 | state);
      mixed = (mixed + Math.imul(mixed ^ (mixed >>> 7), 61 | mixed)) ^ mixed;
      return ((mixed ^ (mixed >>> 14)) >>> 0) / 4_294_967_296;
    };
  }
  const pieces = [
    "der",
    "Die",
    "Haus",
    "haus",
    "(hi)",
    "hi.",
    "--",
    ".",
    ",a",
    "a,",
    "Über",
    "ÜBER",
    "straße",
    "\uFEFFbom",
    "\uFEFF",
    "😀",
    "😀.",
    "x😀y",
    "ΟΔΟΣ",
    "İstanbul",
    "a\u001cb",
    "c\u0085d",
    "e\u00a0f",
    "日本語",
    "の",
    "!",
    "?a?",
    "[x]",
    "e\u0301",
    "ab",
    "abc",
    "aaaa",
    "abab",
  ];
  const separators = [" ", " ", " ", "", "  ", "\t", "\u2003", "\uFEFF", "\u3000"];

  it("on 400 random groups with mixed settings and up to three references", () => {
    const random = createRandom(12_345);
    const pick = <T>(items: readonly T[]) => items[Math.floor(random() * items.length)]!;
    const sentence = () => {
      let text = "";
      const length = Math.floor(random() * 12);
      for (let index = 0; index < length; index++) text += pick(pieces) + pick(separators);
      return text;
    };
    for (let round = 0; round < 400; round++) {
      const options: ChrfOptions = {
        charOrder: pick([6, 6, 1, 3, 0, 8]),
        wordOrder: pick([0, 2, 2, 1, 3]),
        lowercase: random() < 0.3,
        whitespace: random() < 0.3,
        epsSmoothing: random() < 0.3,
      };
      if (options.charOrder === 0 && options.wordOrder === 0) options.charOrder = 6;
      const hypothesis = sentence();
      const references = Array.from({ length: 1 + Math.floor(random() * 3) }, sentence);
      expect(
        chrfStatistics(hypothesis, references, options),
        JSON.stringify({ hypothesis, references, options }),
      ).toEqual(oracleStatistics(hypothesis, references, options));
    }
  });

  it("on long segments with thousands of distinct characters (hashed n-gram ids)", () => {
    const random = createRandom(99);
    const randomCharacter = (first: number, count: number) =>
      String.fromCodePoint(first + Math.floor(random() * count));
    // A reference and a hypothesis sharing most of it, so every order has many real matches.
    const edit = (characters: string[], separator: string) =>
      characters
        .map((character) => (random() < 0.1 ? randomCharacter(0x4e00, 4_000) : character))
        .join(separator);
    const cjk = Array.from({ length: 6_000 }, () => randomCharacter(0x4e00, 4_000));
    const astral = Array.from({ length: 500 }, () => randomCharacter(0x1f300, 40));
    const pairs = [
      [edit(cjk, ""), cjk.join("")],
      [edit(astral, " "), astral.join(" ")],
    ] as const;
    for (const [hypothesis, reference] of pairs) {
      const options = { wordOrder: 2 };
      const statistics = chrfStatistics(hypothesis, [reference], options);
      expect(statistics[3 * 5 + 2]).toBeGreaterThan(10); // 6-gram matches: the case is not trivial
      expect(statistics).toEqual(oracleStatistics(hypothesis, [reference], options));
    }
  });
});
