/**
 * chrF and chrF++ with sacreBLEU 2.x `CHRF` semantics, number for number.
 *
 * Every detail below follows sacreBLEU (mjpost/sacrebleu, `sacrebleu/metrics/chrf.py` and
 * `helpers.py`), re-implemented here rather than copied:
 * - character n-grams of orders 1..`charOrder` over the segment with all whitespace removed
 *   (Python `"".join(line.split())`), unless `whitespace` is set; n-grams are counted in Unicode
 *   code points, as Python strings index them, not in UTF-16 units;
 * - word n-grams of orders 1..`wordOrder` (chrF++ uses 2) over `str.split()` tokens where one
 *   ASCII punctuation mark is split off the end of a token, or else off its start;
 * - per order the statistics are [hypothesis n-grams, reference n-grams, matches], where the
 *   hypothesis count is 0 when the reference has no n-gram of that order;
 * - with several references, the reference whose statistics give the highest sentence score wins
 *   (the first one on ties) and only its statistics are kept;
 * - corpus score = the score of the summed statistics.
 *
 * Labels for tens of thousands of segments go through here, so n-grams are not materialised as
 * strings: each distinct n-gram of a hypothesis/references group gets a dense integer id (see
 * `addMatchStatistics`), which yields exactly the counts of sacreBLEU's `Counter` intersection.
 */
import { InputError, UsageError } from "../errors/index.js";
import { isPythonWhitespace, pythonSplit } from "../util/python-text.js";
import type { MetricItem, SegmentMetric } from "./segment-metric.js";
import { formatSignature } from "./signature.js";

// The package's public API has offered these from chrF; they now live with the other Python string semantics.
export { isPythonWhitespace, pythonSplit };

/** Settings of chrF, named like sacreBLEU's `CHRF(...)` keyword arguments in camelCase. */
export interface ChrfOptions {
  /** Highest character n-gram order. Default 6. */
  charOrder?: number;
  /** Highest word n-gram order: 0 is chrF, 2 is chrF++. Default 0. */
  wordOrder?: number;
  /** Weight of recall against precision in the F-score. Default 2. */
  beta?: number;
  /** Lowercase hypothesis and references first. Default false. */
  lowercase?: boolean;
  /** Keep whitespace inside character n-grams. Default false. */
  whitespace?: boolean;
  /**
   * Average per-order F-scores with eps = 1e-16 for empty orders (chrF++.py, Moses, NLTK) instead
   * of sacreBLEU's default: average precision and recall over the orders where both sides have
   * n-grams, then take one F-score. Default false.
   */
  epsSmoothing?: boolean;
}

/** `ChrfOptions` with every default filled in. */
export interface ResolvedChrfOptions {
  readonly charOrder: number;
  readonly wordOrder: number;
  readonly beta: number;
  readonly lowercase: boolean;
  readonly whitespace: boolean;
  readonly epsSmoothing: boolean;
}

/** A chrF score with what it was computed from. */
export interface ChrfResult {
  /** The score, 0–100. */
  score: number;
  /** sacreBLEU-style name: `chrF<beta>` followed by one `+` per word order (`chrF2++`). */
  name: string;
  /** sacreBLEU-style signature, e.g. `nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:routelmt-0.1.0`. */
  signature: string;
  /** Summed statistics: `[hyp, ref, match]` per character order, then per word order. */
  statistics: number[];
}

/** sacreBLEU's default character n-gram order. */
export const CHRF_DEFAULT_CHAR_ORDER = 6;
/** sacreBLEU's default word n-gram order (plain chrF). */
export const CHRF_DEFAULT_WORD_ORDER = 0;
/** Word n-gram order of chrF++. */
export const CHRF_PLUS_PLUS_WORD_ORDER = 2;
/** sacreBLEU's default beta. */
export const CHRF_DEFAULT_BETA = 2;

// sacreBLEU's smoothing constant for orders without n-grams (eps_smoothing=True).
const EPS = 1e-16;

// Python's string.punctuation, which sacreBLEU strips off word edges for chrF++.
const ASCII_PUNCTUATION = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
const IS_PUNCTUATION = new Uint8Array(128);
for (const mark of ASCII_PUNCTUATION) IS_PUNCTUATION[mark.charCodeAt(0)] = 1;

/** Fills in defaults and rejects settings sacreBLEU would compute nonsense with. */
export function resolveChrfOptions(options: ChrfOptions = {}): ResolvedChrfOptions {
  const resolved: ResolvedChrfOptions = {
    charOrder: options.charOrder ?? CHRF_DEFAULT_CHAR_ORDER,
    wordOrder: options.wordOrder ?? CHRF_DEFAULT_WORD_ORDER,
    beta: options.beta ?? CHRF_DEFAULT_BETA,
    lowercase: options.lowercase ?? false,
    whitespace: options.whitespace ?? false,
    epsSmoothing: options.epsSmoothing ?? false,
  };
  if (!Number.isInteger(resolved.charOrder) || resolved.charOrder < 0) {
    throw new UsageError(`chrF charOrder must be a whole number >= 0, got ${resolved.charOrder}`);
  }
  if (!Number.isInteger(resolved.wordOrder) || resolved.wordOrder < 0) {
    throw new UsageError(`chrF wordOrder must be a whole number >= 0, got ${resolved.wordOrder}`);
  }
  if (resolved.charOrder + resolved.wordOrder === 0) {
    throw new UsageError("chrF needs charOrder + wordOrder >= 1");
  }
  if (!Number.isFinite(resolved.beta) || resolved.beta < 0) {
    throw new UsageError(`chrF beta must be a finite number >= 0, got ${resolved.beta}`);
  }
  return resolved;
}

/** Length of the statistics array for these settings: 3 per character order and per word order. */
export function chrfStatisticsLength(options: ChrfOptions = {}): number {
  const resolved = resolveChrfOptions(options);
  return 3 * (resolved.charOrder + resolved.wordOrder);
}

/**
 * sacreBLEU's chrF++ tokenisation (`_remove_punctuation`): split on whitespace; a token longer
 * than one character that ends in ASCII punctuation loses that one mark as a separate token,
 * otherwise one that starts with it loses that one. So `(hi)` gives `(hi` and `)`.
 */
export function chrfWordTokens(sentence: string): string[] {
  const tokens: string[] = [];
  for (const word of pythonSplit(sentence)) {
    // A lone astral character is two UTF-16 units here but one character in Python; both edges
    // are surrogates then, which are never punctuation, so it is kept whole either way.
    if (word.length === 1) {
      tokens.push(word);
    } else if (isPunctuation(word.charCodeAt(word.length - 1))) {
      tokens.push(word.slice(0, -1), word.slice(-1));
    } else if (isPunctuation(word.charCodeAt(0))) {
      tokens.push(word.slice(0, 1), word.slice(1));
    } else {
      tokens.push(word);
    }
  }
  return tokens;
}

function isPunctuation(code: number): boolean {
  return code < 128 && IS_PUNCTUATION[code] === 1;
}

// ---- n-gram matching --------------------------------------------------------------------------
//
// Instead of a string and a map entry per n-gram, every distinct unit (character or word) of a
// hypothesis/references group gets a dense id, and so does every distinct n-gram, order by order:
// the id of an n-gram is the dense id of the pair (id of its first n-1 units, id of its last
// unit). Matches of one order are then the multiset intersection of two small integer arrays.

// Character ids of the current group: BMP code points through a table whose entries count only
// when stamped with the current group, so nothing needs clearing between groups.
const bmpIds = new Int32Array(0x10000);
const bmpStamps = new Int32Array(0x10000);
const astralIds = new Map<number, number>();
let characterGroup = 0;
let characterCount = 0;

function startCharacterGroup(): void {
  characterGroup++;
  if (characterGroup === 0x7fffffff) {
    bmpStamps.fill(0);
    characterGroup = 1;
  }
  astralIds.clear();
  characterCount = 0;
}

function characterId(codePoint: number): number {
  if (codePoint < 0x10000) {
    if (bmpStamps[codePoint] !== characterGroup) {
      bmpStamps[codePoint] = characterGroup;
      bmpIds[codePoint] = characterCount++;
    }
    return bmpIds[codePoint]!;
  }
  let id = astralIds.get(codePoint);
  if (id === undefined) {
    id = characterCount++;
    astralIds.set(codePoint, id);
  }
  return id;
}

/** Ids of the code points of `text` (Python indexes strings by code point), whitespace dropped unless kept. */
function characterIds(text: string, keepWhitespace: boolean): Int32Array {
  const ids = new Int32Array(text.length);
  let length = 0;
  for (let unit = 0; unit < text.length; unit++) {
    let codePoint = text.charCodeAt(unit);
    if (codePoint >= 0xd800 && codePoint <= 0xdbff && unit + 1 < text.length) {
      const next = text.charCodeAt(unit + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        codePoint = 0x10000 + ((codePoint - 0xd800) << 10) + (next - 0xdc00);
        unit++;
      }
    }
    if (!keepWhitespace && isPythonWhitespace(codePoint)) continue;
    ids[length++] = characterId(codePoint);
  }
  return ids.slice(0, length);
}

function wordIds(words: readonly string[], dictionary: Map<string, number>): Int32Array {
  const ids = new Int32Array(words.length);
  words.forEach((word, index) => {
    let id = dictionary.get(word);
    if (id === undefined) {
      id = dictionary.size;
      dictionary.set(word, id);
    }
    ids[index] = id;
  });
  return ids;
}

// Dense ids of (prefix id, last unit id) pairs. While prefixes × alphabet stays small (the usual
// case: a sentence has a few dozen characters and a few hundred distinct n-grams) the pair indexes
// a table directly; otherwise an open-addressing hash table is used. Entries count only when
// stamped with the current generation, so starting a new order needs no clearing.
const DIRECT_PAIRS = 1 << 17;
const directIds = new Int32Array(DIRECT_PAIRS);
const directStamps = new Int32Array(DIRECT_PAIRS);
let hashedPairs = new Int32Array(4 * 1024); // [stamp, prefix, last, id] per slot
let pairGeneration = 0;
let pairCount = 0;

function startPairs(hashedEntries: number): void {
  if (hashedEntries > 0 && hashedPairs.length < 8 * hashedEntries) {
    hashedPairs = new Int32Array(4 * 2 ** Math.ceil(Math.log2(2 * hashedEntries)));
  }
  pairGeneration++;
  if (pairGeneration === 0x7fffffff) {
    directStamps.fill(0);
    hashedPairs.fill(0);
    pairGeneration = 1;
  }
  pairCount = 0;
}

function directPairId(index: number): number {
  if (directStamps[index] !== pairGeneration) {
    directStamps[index] = pairGeneration;
    directIds[index] = pairCount++;
  }
  return directIds[index]!;
}

function hashedPairId(prefix: number, last: number): number {
  const mask = (hashedPairs.length >>> 2) - 1;
  let hash = Math.imul(prefix ^ Math.imul(last, 0x9e3779b1), 0x85ebca6b);
  hash ^= hash >>> 15;
  let slot = hash & mask;
  for (;;) {
    const base = slot << 2;
    if (hashedPairs[base] !== pairGeneration) {
      hashedPairs[base] = pairGeneration;
      hashedPairs[base + 1] = prefix;
      hashedPairs[base + 2] = last;
      hashedPairs[base + 3] = pairCount;
      return pairCount++;
    }
    if (hashedPairs[base + 1] === prefix && hashedPairs[base + 2] === last) return hashedPairs[base + 3]!;
    slot = (slot + 1) & mask;
  }
}

// Per-id reference counts; every entry is back to 0 after each use.
let remaining = new Int32Array(1024);

/**
 * Writes `[hyp, ref, match]` for orders 1..maxOrder of the hypothesis against each reference into
 * `outs[r]` at `at`. `units` are dense unit ids in [0, alphabet): index 0 the hypothesis, then the
 * references. Each hypothesis n-gram consumes one remaining reference occurrence, which sums
 * min(hyp, ref) over distinct n-grams, as sacreBLEU's counter intersection does.
 */
function addMatchStatistics(
  units: readonly Int32Array[],
  alphabet: number,
  maxOrder: number,
  outs: readonly number[][],
  at: number,
): void {
  const ngramIds = units.map((ids) => ids.slice());
  let distinct = alphabet;
  for (let order = 1; order <= maxOrder; order++) {
    if (order > 1) {
      const direct = distinct * alphabet <= DIRECT_PAIRS;
      let ngrams = 0;
      for (const ids of units) ngrams += Math.max(0, ids.length - order + 1);
      startPairs(direct ? 0 : ngrams);
      for (let segment = 0; segment < units.length; segment++) {
        const ids = units[segment]!;
        const current = ngramIds[segment]!;
        const count = ids.length - order + 1;
        // In place: the id at `start` only depends on the shorter n-gram's id at `start`.
        for (let start = 0; start < count; start++) {
          const last = ids[start + order - 1]!;
          current[start] = direct
            ? directPairId(current[start]! * alphabet + last)
            : hashedPairId(current[start]!, last);
        }
      }
      distinct = pairCount;
    }
    if (remaining.length < distinct) remaining = new Int32Array(2 ** Math.ceil(Math.log2(distinct)));
    const hypothesisIds = ngramIds[0]!;
    const hypothesisCount = Math.max(0, hypothesisIds.length - order + 1);
    for (let reference = 1; reference < units.length; reference++) {
      const referenceIds = ngramIds[reference]!;
      const referenceCount = Math.max(0, referenceIds.length - order + 1);
      let matches = 0;
      if (hypothesisCount > 0 && referenceCount > 0) {
        for (let start = 0; start < referenceCount; start++) remaining[referenceIds[start]!]!++;
        for (let start = 0; start < hypothesisCount; start++) {
          const id = hypothesisIds[start]!;
          if (remaining[id]! > 0) {
            matches++;
            remaining[id]!--;
          }
        }
        for (let start = 0; start < referenceCount; start++) remaining[referenceIds[start]!] = 0;
      }
      const out = outs[reference - 1]!;
      const slot = at + 3 * (order - 1);
      // sacreBLEU does not count hypothesis n-grams of an order the reference has none of.
      out[slot] = referenceCount > 0 ? hypothesisCount : 0;
      out[slot + 1] = referenceCount;
      out[slot + 2] = matches;
    }
  }
}

/** Statistics of `hypothesis` against the reference with the best sentence score (the first on ties). */
function bestStatistics(
  hypothesis: string,
  references: readonly string[],
  options: ResolvedChrfOptions,
): number[] {
  if (references.length === 0) throw new InputError("chrF needs at least one reference per segment");
  const segments = [hypothesis, ...references].map((segment) =>
    options.lowercase ? segment.toLowerCase() : segment,
  );
  const size = 3 * (options.charOrder + options.wordOrder);
  const candidates = references.map(() => new Array<number>(size).fill(0));
  if (options.charOrder > 0) {
    startCharacterGroup();
    const units = segments.map((segment) => characterIds(segment, options.whitespace));
    addMatchStatistics(units, characterCount, options.charOrder, candidates, 0);
  }
  if (options.wordOrder > 0) {
    const dictionary = new Map<string, number>();
    const units = segments.map((segment) => wordIds(chrfWordTokens(segment), dictionary));
    addMatchStatistics(units, dictionary.size, options.wordOrder, candidates, 3 * options.charOrder);
  }
  let best = candidates[0]!;
  let bestScore = -1;
  for (const statistics of candidates) {
    const score = fScore(statistics, options);
    // Strictly greater: on a tie the earlier reference stays, as in sacreBLEU.
    if (score > bestScore) {
      bestScore = score;
      best = statistics;
    }
  }
  return best;
}

/**
 * Sentence statistics of one hypothesis against its alternative references: the
 * `[hyp, ref, match]` triples (character orders first, then word orders) of the reference that
 * gives the best sentence score. Sum them over segments and pass the sum to
 * `chrfFromStatistics` for a corpus score. Throws InputError when `references` is empty.
 */
export function chrfStatistics(
  hypothesis: string,
  references: readonly string[],
  options: ChrfOptions = {},
): number[] {
  return bestStatistics(hypothesis, references, resolveChrfOptions(options));
}

/** Adds statistics arrays element by element (corpus aggregation). Throws InputError on length mismatch. */
export function sumChrfStatistics(statisticsList: readonly (readonly number[])[]): number[] {
  const first = statisticsList[0];
  if (first === undefined) throw new InputError("no chrF statistics to sum");
  const total = new Array<number>(first.length).fill(0);
  for (const statistics of statisticsList) {
    if (statistics.length !== first.length) {
      throw new InputError(
        `chrF statistics of length ${statistics.length} and ${first.length} cannot be summed`,
      );
    }
    for (let index = 0; index < statistics.length; index++) total[index]! += statistics[index]!;
  }
  return total;
}

/**
 * The chrF score (0–100) of statistics from `chrfStatistics`, summed or not. Throws InputError
 * when their length does not fit the options.
 */
export function chrfFromStatistics(statistics: readonly number[], options: ChrfOptions = {}): number {
  const resolved = resolveChrfOptions(options);
  const expected = 3 * (resolved.charOrder + resolved.wordOrder);
  if (statistics.length !== expected) {
    throw new InputError(`chrF statistics have ${statistics.length} numbers, these options need ${expected}`);
  }
  return fScore(statistics, resolved);
}

// Operation order follows sacreBLEU's `_compute_f_score` so results agree to the last bit.
function fScore(statistics: readonly number[], options: ResolvedChrfOptions): number {
  const orders = options.charOrder + options.wordOrder;
  const factor = options.beta ** 2;
  let epsScore = 0;
  let precisionSum = 0;
  let recallSum = 0;
  let effectiveOrder = 0;
  for (let order = 0; order < orders; order++) {
    const hypothesisCount = statistics[3 * order]!;
    const referenceCount = statistics[3 * order + 1]!;
    const matches = statistics[3 * order + 2]!;
    const precision = hypothesisCount > 0 ? matches / hypothesisCount : EPS;
    const recall = referenceCount > 0 ? matches / referenceCount : EPS;
    if (options.epsSmoothing) {
      const denominator = factor * precision + recall;
      epsScore += denominator > 0 ? ((1 + factor) * precision * recall) / denominator : EPS;
    } else if (hypothesisCount > 0 && referenceCount > 0) {
      precisionSum += precision;
      recallSum += recall;
      effectiveOrder++;
    }
  }
  if (options.epsSmoothing) return (100 * epsScore) / orders;
  if (effectiveOrder === 0) return 0;
  const precision = precisionSum / effectiveOrder;
  const recall = recallSum / effectiveOrder;
  if (precision + recall === 0) return 0;
  let score = (1 + factor) * precision * recall;
  score /= factor * precision + recall;
  return 100 * score;
}

/**
 * sacreBLEU's CHRFSignature in its key order: `nrefs` (omitted when undefined, `var` when the
 * count varies), `case`, `eff`, `nc`, `nw`, `space`, then `version:routelmt-<VERSION>`.
 */
export function chrfSignature(options: ChrfOptions = {}, referenceCount?: number | "var"): string {
  return signatureOf(resolveChrfOptions(options), referenceCount);
}

function signatureOf(resolved: ResolvedChrfOptions, referenceCount: number | "var" | undefined): string {
  return formatSignature([
    ["nrefs", referenceCount],
    ["case", resolved.lowercase ? "lc" : "mixed"],
    ["eff", resolved.epsSmoothing ? "no" : "yes"],
    ["nc", resolved.charOrder],
    ["nw", resolved.wordOrder],
    ["space", resolved.whitespace ? "yes" : "no"],
  ]);
}

function referenceCountLabel(counts: ReadonlySet<number>): number | "var" | undefined {
  if (counts.size === 0) return undefined;
  return counts.size === 1 ? [...counts][0] : "var";
}

/** References that are present: sacreBLEU drops `None` entries (a segment lacking one reference). */
function presentReferences(references: readonly (string | null | undefined)[]): string[] {
  return references.filter((reference): reference is string => typeof reference === "string");
}

function scoreName(options: ResolvedChrfOptions): string {
  return `chrF${options.beta}${"+".repeat(options.wordOrder)}`;
}

/**
 * Sentence-level chrF of one hypothesis against one or more alternative references (the best
 * one counts; null/undefined entries are skipped). Throws InputError when none is left.
 */
export function sentenceChrf(
  hypothesis: string,
  references: readonly (string | null | undefined)[],
  options: ChrfOptions = {},
): ChrfResult {
  const resolved = resolveChrfOptions(options);
  const present = presentReferences(references);
  const statistics = bestStatistics(hypothesis, present, resolved);
  return {
    score: fScore(statistics, resolved),
    name: scoreName(resolved),
    signature: signatureOf(resolved, present.length),
    statistics,
  };
}

/**
 * Corpus-level chrF: per-segment best-reference statistics summed, then scored once.
 * `referenceStreams` holds one stream per reference set, each parallel to `hypotheses`; a null
 * entry means that segment lacks that reference (the signature then says `nrefs:var` when the
 * count differs between segments). Throws InputError on an empty corpus, a stream of another
 * length, or a segment left with no reference.
 */
export function corpusChrf(
  hypotheses: readonly string[],
  referenceStreams: readonly (readonly (string | null | undefined)[])[],
  options: ChrfOptions = {},
): ChrfResult {
  const resolved = resolveChrfOptions(options);
  if (hypotheses.length === 0) throw new InputError("chrF needs at least one hypothesis");
  if (referenceStreams.length === 0) throw new InputError("chrF needs at least one reference stream");
  referenceStreams.forEach((stream, index) => {
    if (stream.length !== hypotheses.length) {
      throw new InputError(
        `reference stream ${index + 1} has ${stream.length} segments, the hypotheses have ${hypotheses.length}`,
      );
    }
  });
  const total = new Array<number>(3 * (resolved.charOrder + resolved.wordOrder)).fill(0);
  const referenceCounts = new Set<number>();
  hypotheses.forEach((hypothesis, segment) => {
    const references = presentReferences(referenceStreams.map((stream) => stream[segment]));
    if (references.length === 0) throw new InputError(`segment ${segment + 1} has no reference`);
    referenceCounts.add(references.length);
    const statistics = bestStatistics(hypothesis, references, resolved);
    for (let index = 0; index < total.length; index++) total[index]! += statistics[index]!;
  });
  return {
    score: fScore(total, resolved),
    name: scoreName(resolved),
    signature: signatureOf(resolved, referenceCountLabel(referenceCounts)),
    statistics: total,
  };
}

/** Sentence chrF as a {@link SegmentMetric}; see {@link createChrfMetric}. */
class ChrfMetric implements SegmentMetric {
  readonly name: string;
  readonly higherIsBetter = true;
  readonly needsReference = true;
  private readonly options: ResolvedChrfOptions;
  private readonly referenceCounts = new Set<number>();

  constructor(options: ResolvedChrfOptions) {
    this.options = options;
    this.name = `chrf${"+".repeat(options.wordOrder)}`;
  }

  /** Sentence-level signature; `nrefs` reflects the items scored so far and is absent before the first. */
  get signature(): string {
    return signatureOf(this.options, referenceCountLabel(this.referenceCounts));
  }

  async scoreBatch(items: MetricItem[]): Promise<number[]> {
    // Check every item first so a bad one fails the batch before any work or state change.
    const referenceLists = items.map((item, index) => {
      const references = item.refs ? presentReferences(item.refs) : [];
      if (references.length === 0) {
        throw new InputError(
          `item ${index + 1}: the ${this.name} metric needs at least one reference (refs)`,
        );
      }
      return references;
    });
    return items.map((item, index) => {
      const references = referenceLists[index]!;
      this.referenceCounts.add(references.length);
      return fScore(bestStatistics(item.hyp, references, this.options), this.options);
    });
  }
}

/**
 * A segment metric scoring each item with sentence chrF against `item.refs` (0–100, higher is
 * better): named `chrf`, or `chrf++` for word order 2 (one `+` per word order in general).
 * Invalid options fail here with UsageError; `scoreBatch` rejects with InputError when an item
 * has no reference.
 */
export function createChrfMetric(options: ChrfOptions = {}): SegmentMetric {
  return new ChrfMetric(resolveChrfOptions(options));
}
