/**
 * BLEU (Papineni et al., 2002) with sacreBLEU 2.x semantics: same tokenizers, n-gram matching,
 * closest-reference length, smoothing methods, effective order, brevity penalty and signature.
 * Statistics come first: every segment yields a fixed-length row of counts, a corpus score sums the
 * rows and scores once, a sentence score scores one row.
 */
import { InputError, UsageError } from "../errors/index.js";
import { pythonRstrip, pythonSplit } from "../util/python-text.js";
import type { MetricItem, SegmentMetric } from "./segment-metric.js";
import { formatSignature } from "./signature.js";
import { getTokenizer, type Tokenizer, type TokenizerName } from "./tokenizers/index.js";

/** sacreBLEU's smoothing methods (Chen & Cherry, 2014): none, floor (method 1), add-k (method 2), exp (method 3, NIST). */
export const SMOOTH_METHODS = ["none", "floor", "add-k", "exp"] as const;

/** A smoothing method from {@link SMOOTH_METHODS}. */
export type SmoothMethod = (typeof SMOOTH_METHODS)[number];

/** Default smoothing value per method (Chen & Cherry, 2014); `undefined` where the method takes none. */
export const SMOOTH_DEFAULTS: Readonly<Record<SmoothMethod, number | undefined>> = {
  none: undefined,
  floor: 0.1,
  "add-k": 1,
  exp: undefined,
};

/** Default maximum n-gram order. */
export const DEFAULT_MAX_NGRAM_ORDER = 4;

/** BLEU settings; the names mirror sacreBLEU's `BLEU(...)` keyword arguments. */
export interface BleuOptions {
  /** Lowercase hypotheses and references before tokenising. Defaults to `false`. */
  lowercase?: boolean;
  /** Tokenizer applied to hypotheses and references. Defaults to `"13a"`. */
  tokenize?: TokenizerName;
  /** Smoothing method. Defaults to `"exp"`. */
  smoothMethod?: SmoothMethod;
  /** Value for `floor` and `add-k` smoothing. Defaults to 0.1 for `floor` and 1 for `add-k`; ignored otherwise. */
  smoothValue?: number;
  /** Highest n-gram order. Defaults to 4. */
  maxNgramOrder?: number;
  /**
   * Average only over the orders the hypothesis has n-grams for (sacreBLEU's `effective_order`),
   * so short segments are not scored 0. Defaults to `true` for sentence BLEU and to `false` for
   * corpus BLEU and {@link bleuFromStatistics}, as sacreBLEU recommends.
   */
  effectiveOrder?: boolean;
}

/** A BLEU score and its diagnostics, as computed from summed statistics. */
export interface BleuScoreDetails {
  /** BLEU on the 0–100 scale. */
  score: number;
  /**
   * Matched n-grams per order (index 0 = unigrams). As in sacreBLEU, `add-k` smoothing adds k to
   * the orders from 2 on that it visited, so these may be fractional.
   */
  counts: number[];
  /** Hypothesis n-grams per order, with the same `add-k` adjustment as `counts`. */
  totals: number[];
  /** Per-order precisions on the 0–100 scale, after smoothing; 0 for orders not used. */
  precisions: number[];
  /** Brevity penalty (0–1). */
  bp: number;
  /** Hypothesis length in tokens. */
  sysLen: number;
  /** Reference length in tokens (closest reference per segment, ties going to the shorter). */
  refLen: number;
}

/** A BLEU score with its sacreBLEU-style signature. */
export interface BleuScore extends BleuScoreDetails {
  /** e.g. `nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:routelmt-0.1.0`. */
  signature: string;
}

/**
 * One reference segment. `null`/`undefined` means "no reference here" (sacreBLEU's `None`), which
 * is how streams hold a variable number of references per segment. An empty string is a real,
 * empty reference, as in sacreBLEU 2.6.
 */
export type ReferenceSegment = string | null | undefined;

interface Preprocessing {
  lowercase: boolean;
  tokenizer: Tokenizer;
  maxNgramOrder: number;
}

interface Scoring {
  smoothMethod: SmoothMethod;
  smoothValue: number | undefined;
  effectiveOrder: boolean;
  maxNgramOrder: number;
}

function resolveMaxNgramOrder(options: BleuOptions): number {
  const order = options.maxNgramOrder ?? DEFAULT_MAX_NGRAM_ORDER;
  if (!Number.isInteger(order) || order < 1) {
    throw new UsageError(`BLEU maxNgramOrder must be a positive integer, got ${order}`);
  }
  return order;
}

function resolvePreprocessing(options: BleuOptions): Preprocessing {
  return {
    lowercase: options.lowercase ?? false,
    tokenizer: getTokenizer(options.tokenize ?? "13a"),
    maxNgramOrder: resolveMaxNgramOrder(options),
  };
}

function resolveScoring(options: BleuOptions, effectiveOrderDefault: boolean): Scoring {
  const smoothMethod = options.smoothMethod ?? "exp";
  if (!(SMOOTH_METHODS as readonly string[]).includes(smoothMethod)) {
    throw new UsageError(
      `unknown BLEU smoothMethod '${smoothMethod}'; expected one of ${SMOOTH_METHODS.join(", ")}`,
    );
  }
  if (options.smoothValue !== undefined && !Number.isFinite(options.smoothValue)) {
    throw new UsageError(`BLEU smoothValue must be a finite number, got ${options.smoothValue}`);
  }
  return {
    smoothMethod,
    smoothValue: options.smoothValue ?? SMOOTH_DEFAULTS[smoothMethod],
    effectiveOrder: options.effectiveOrder ?? effectiveOrderDefault,
    maxNgramOrder: resolveMaxNgramOrder(options),
  };
}

/** Lowercase (optionally), drop trailing whitespace, tokenise, split: sacreBLEU's `_preprocess_segment` plus its split. */
function toTokens(segment: string, preprocessing: Preprocessing): string[] {
  const cased = preprocessing.lowercase ? segment.toLowerCase() : segment;
  return pythonSplit(preprocessing.tokenizer.tokenize(pythonRstrip(cased)));
}

/**
 * Counts n-grams of orders 1..maxOrder; element n-1 maps an n-gram (tokens joined by a space,
 * unambiguous since tokens never contain one) to its count.
 */
function countNgrams(tokens: readonly string[], maxOrder: number): Map<string, number>[] {
  const counts: Map<string, number>[] = [];
  for (let order = 1; order <= maxOrder; order++) {
    const orderCounts = new Map<string, number>();
    for (let start = 0; start + order <= tokens.length; start++) {
      const ngram = tokens.slice(start, start + order).join(" ");
      orderCounts.set(ngram, (orderCounts.get(ngram) ?? 0) + 1);
    }
    counts.push(orderCounts);
  }
  return counts;
}

interface ReferenceInfo {
  /** Per order, the highest count of each n-gram over all references. */
  maxCounts: Map<string, number>[];
  lengths: number[];
}

function extractReferenceInfo(references: readonly string[][], maxOrder: number): ReferenceInfo {
  const maxCounts: Map<string, number>[] = Array.from({ length: maxOrder }, () => new Map<string, number>());
  const lengths: number[] = [];
  for (const tokens of references) {
    lengths.push(tokens.length);
    countNgrams(tokens, maxOrder).forEach((orderCounts, index) => {
      const merged = maxCounts[index]!;
      for (const [ngram, count] of orderCounts) merged.set(ngram, Math.max(merged.get(ngram) ?? 0, count));
    });
  }
  return { maxCounts, lengths };
}

/** The reference length closest to the hypothesis length; on a tie the shorter one (sacreBLEU's rule). */
export function closestReferenceLength(
  hypothesisLength: number,
  referenceLengths: readonly number[],
): number {
  let closestDifference = -1;
  let closestLength = -1;
  for (const length of referenceLengths) {
    const difference = Math.abs(hypothesisLength - length);
    if (closestDifference === -1 || difference < closestDifference) {
      closestDifference = difference;
      closestLength = length;
    } else if (difference === closestDifference && length < closestLength) {
      closestLength = length;
    }
  }
  return closestLength;
}

function segmentStatistics(
  hypothesis: readonly string[],
  references: ReferenceInfo,
  maxOrder: number,
): number[] {
  const correct = new Array<number>(maxOrder).fill(0);
  const total = new Array<number>(maxOrder).fill(0);
  countNgrams(hypothesis, maxOrder).forEach((orderCounts, index) => {
    const referenceCounts = references.maxCounts[index]!;
    for (const [ngram, count] of orderCounts) {
      total[index]! += count;
      correct[index]! += Math.min(count, referenceCounts.get(ngram) ?? 0);
    }
  });
  return [
    hypothesis.length,
    closestReferenceLength(hypothesis.length, references.lengths),
    ...correct,
    ...total,
  ];
}

function presentReferences(references: readonly ReferenceSegment[]): string[] {
  return references.filter((reference): reference is string => typeof reference === "string");
}

function statisticsWith(
  hypothesis: string,
  references: readonly string[],
  preprocessing: Preprocessing,
  segmentNumber?: number,
): number[] {
  if (references.length === 0) {
    const where = segmentNumber === undefined ? "" : `segment ${segmentNumber}: `;
    throw new InputError(`${where}BLEU needs at least one reference`, { line: segmentNumber });
  }
  const referenceInfo = extractReferenceInfo(
    references.map((reference) => toTokens(reference, preprocessing)),
    preprocessing.maxNgramOrder,
  );
  return segmentStatistics(toTokens(hypothesis, preprocessing), referenceInfo, preprocessing.maxNgramOrder);
}

/**
 * BLEU sufficient statistics of one segment, laid out as sacreBLEU does:
 * `[hypLen, refLen, matches_1..matches_N, totals_1..totals_N]` with N = `maxNgramOrder`
 * (length 2 + 2N). `refLen` is the closest reference length. Uses `lowercase`, `tokenize` and
 * `maxNgramOrder` from `options`.
 *
 * @throws InputError when no reference is present (all `null`/`undefined` or none given).
 */
export function bleuStatistics(
  hypothesis: string,
  references: readonly ReferenceSegment[],
  options: BleuOptions = {},
): number[] {
  return statisticsWith(hypothesis, presentReferences(references), resolvePreprocessing(options));
}

/** Element-wise sum of statistics rows (all of one length), as a corpus score needs. */
export function sumBleuStatistics(rows: readonly (readonly number[])[]): number[] {
  const first = rows[0];
  if (!first) throw new UsageError("cannot sum an empty list of BLEU statistics");
  const sum = new Array<number>(first.length).fill(0);
  for (const row of rows) {
    if (row.length !== first.length) throw new UsageError("BLEU statistics rows differ in length");
    row.forEach((value, index) => {
      sum[index]! += value;
    });
  }
  return sum;
}

/** sacreBLEU's `my_log`: log, with log(0) floored to a very low number instead of -Infinity. */
function flooredLog(value: number): number {
  return value === 0 ? -9999999999 : Math.log(value);
}

/** A faithful port of sacreBLEU's static `BLEU.compute_bleu`; `correct` and `total` are copied, not mutated. */
function computeBleu(
  correctIn: readonly number[],
  totalIn: readonly number[],
  sysLen: number,
  refLen: number,
  scoring: Scoring,
): BleuScoreDetails {
  const { smoothMethod, smoothValue, effectiveOrder, maxNgramOrder } = scoring;
  const correct = [...correctIn];
  const total = [...totalIn];
  let bp = 1.0;
  if (sysLen < refLen) bp = sysLen > 0 ? Math.exp(1 - refLen / sysLen) : 0.0;
  const precisions = new Array<number>(maxNgramOrder).fill(0);

  // no match at all: 0, whatever the smoothing (sacreBLEU #141)
  if (!correct.some((count) => count !== 0)) {
    return { score: 0.0, counts: correct, totals: total, precisions, bp, sysLen, refLen };
  }

  let mtevalFactor = 1;
  let order = maxNgramOrder;
  for (let n = 1; n <= maxNgramOrder; n++) {
    const index = n - 1;
    if (smoothMethod === "add-k" && n > 1) {
      correct[index]! += smoothValue!;
      total[index]! += smoothValue!;
    }
    if (total[index] === 0) break;
    if (effectiveOrder) order = n;
    if (correct[index] === 0) {
      if (smoothMethod === "exp") {
        mtevalFactor *= 2;
        precisions[index] = 100 / (mtevalFactor * total[index]!);
      } else if (smoothMethod === "floor") {
        precisions[index] = (100 * smoothValue!) / total[index]!;
      }
    } else {
      precisions[index] = (100 * correct[index]!) / total[index]!;
    }
  }

  let logSum = 0;
  for (const precision of precisions.slice(0, order)) logSum += flooredLog(precision);
  const score = bp * Math.exp(logSum / order);
  return { score, counts: correct, totals: total, precisions, bp, sysLen, refLen };
}

/**
 * Scores summed BLEU statistics (layout of {@link bleuStatistics}), like sacreBLEU's
 * `BLEU.compute_bleu`. Uses `smoothMethod` (default `exp`), `smoothValue`, `effectiveOrder`
 * (default `false`) and `maxNgramOrder` (default 4) from `options`.
 *
 * @throws UsageError when `statistics` does not have length 2 + 2 × `maxNgramOrder`.
 */
export function bleuFromStatistics(
  statistics: readonly number[],
  options: BleuOptions = {},
): BleuScoreDetails {
  return scoreStatistics(statistics, resolveScoring(options, false));
}

function scoreStatistics(statistics: readonly number[], scoring: Scoring): BleuScoreDetails {
  const order = scoring.maxNgramOrder;
  if (statistics.length !== 2 + 2 * order) {
    throw new UsageError(
      `BLEU statistics must have ${2 + 2 * order} values for maxNgramOrder ${order}, got ${statistics.length}`,
    );
  }
  return computeBleu(
    statistics.slice(2, 2 + order),
    statistics.slice(2 + order),
    Math.trunc(statistics[0]!),
    Math.trunc(statistics[1]!),
    scoring,
  );
}

/**
 * Python's `f"{value:.{digits}f}"`: like `toFixed`, except that exact ties round half to even
 * (Python prints 0.125 as `0.12`, `toFixed` as `0.13`).
 */
export function formatFixedLikePython(value: number, digits: number): string {
  const rounded = value.toFixed(digits);
  // toFixed(100) is the exact binary value; a tie has a 5 right after the kept digits and then only zeros
  const exact = Math.abs(value).toFixed(100);
  const fraction = exact.slice(exact.indexOf(".") + 1);
  const isTie = fraction[digits] === "5" && /^0*$/.test(fraction.slice(digits + 1));
  if (!isTie) return rounded;
  const lastDigit = Number(rounded.at(-1));
  if (lastDigit % 2 === 0) return rounded;
  // toFixed rounded the tie away from zero onto an odd digit: step back towards zero
  const step = 10 ** -digits;
  return (Math.sign(value) * (Math.abs(Number(rounded)) - step)).toFixed(digits);
}

/**
 * The sacreBLEU signature for these options: `nrefs`, `case`, `eff`, `tok`, `smooth`, `version`.
 * `referenceCount` is the number of references per segment, `"var"` when it varies, or
 * `undefined` when not known yet (then `nrefs` is left out). `level` picks the `effectiveOrder`
 * default. `floor` and `add-k` show their value, e.g. `smooth:floor[0.10]`, as sacreBLEU does.
 */
export function bleuSignature(
  options: BleuOptions,
  referenceCount: number | "var" | undefined,
  level: "sentence" | "corpus",
): string {
  const preprocessing = resolvePreprocessing(options);
  const scoring = resolveScoring(options, level === "sentence");
  const smooth =
    SMOOTH_DEFAULTS[scoring.smoothMethod] === undefined
      ? scoring.smoothMethod
      : `${scoring.smoothMethod}[${formatFixedLikePython(scoring.smoothValue!, 2)}]`;
  return formatSignature([
    ["nrefs", referenceCount],
    ["case", preprocessing.lowercase ? "lc" : "mixed"],
    ["eff", scoring.effectiveOrder],
    ["tok", preprocessing.tokenizer.name],
    ["smooth", smooth],
  ]);
}

function referenceCountLabel(counts: ReadonlySet<number>): number | "var" | undefined {
  if (counts.size === 0) return undefined;
  return counts.size === 1 ? [...counts][0] : "var";
}

/**
 * Corpus BLEU, like sacreBLEU's `BLEU().corpus_score(hypotheses, referenceStreams)`: statistics of
 * all segments are summed, then scored once. Each reference stream is parallel to `hypotheses`; a
 * `null`/`undefined` entry means that segment has one reference fewer (`nrefs:var` in the signature).
 * `effectiveOrder` defaults to `false`.
 *
 * @throws InputError when there are no hypotheses or streams, a stream's length differs from the
 *   hypotheses' (sacreBLEU would silently truncate), or a segment has no reference at all.
 */
export function corpusBleu(
  hypotheses: readonly string[],
  referenceStreams: readonly (readonly ReferenceSegment[])[],
  options: BleuOptions = {},
): BleuScore {
  if (hypotheses.length === 0) throw new InputError("corpus BLEU needs at least one hypothesis");
  if (referenceStreams.length === 0) throw new InputError("corpus BLEU needs at least one reference stream");
  referenceStreams.forEach((stream, index) => {
    if (stream.length !== hypotheses.length) {
      throw new InputError(
        `reference stream ${index + 1} has ${stream.length} segments but there are ${hypotheses.length} hypotheses`,
      );
    }
  });
  const preprocessing = resolvePreprocessing(options);
  const scoring = resolveScoring(options, false);
  const referenceCounts = new Set<number>();
  const rows = hypotheses.map((hypothesis, index) => {
    const references = presentReferences(referenceStreams.map((stream) => stream[index]));
    referenceCounts.add(references.length);
    return statisticsWith(hypothesis, references, preprocessing, index + 1);
  });
  return {
    ...scoreStatistics(sumBleuStatistics(rows), scoring),
    signature: bleuSignature(options, referenceCountLabel(referenceCounts), "corpus"),
  };
}

/**
 * Sentence BLEU, like sacreBLEU's `BLEU(effective_order=True).sentence_score(hypothesis, references)`.
 * `references` are alternatives for this one segment; `null`/`undefined` entries are ignored.
 * `effectiveOrder` defaults to `true`.
 *
 * @throws InputError when no reference is present.
 */
export function sentenceBleu(
  hypothesis: string,
  references: readonly ReferenceSegment[],
  options: BleuOptions = {},
): BleuScore {
  const present = presentReferences(references);
  const statistics = statisticsWith(hypothesis, present, resolvePreprocessing(options));
  return {
    ...scoreStatistics(statistics, resolveScoring(options, true)),
    signature: bleuSignature(options, present.length, "sentence"),
  };
}

/** Sentence-level BLEU as a {@link SegmentMetric}; see {@link createBleuMetric}. */
class BleuMetric implements SegmentMetric {
  readonly name = "bleu";
  readonly higherIsBetter = true;
  readonly needsReference = true;
  private readonly options: BleuOptions;
  private readonly preprocessing: Preprocessing;
  private readonly scoring: Scoring;
  private readonly referenceCounts = new Set<number>();

  constructor(options: BleuOptions) {
    this.options = { ...options };
    this.preprocessing = resolvePreprocessing(this.options);
    this.scoring = resolveScoring(this.options, true);
  }

  /** Sentence-level signature; `nrefs` reflects the items scored so far and is absent before the first. */
  get signature(): string {
    return bleuSignature(this.options, referenceCountLabel(this.referenceCounts), "sentence");
  }

  async scoreBatch(items: MetricItem[]): Promise<number[]> {
    const referenceLists = items.map((item, index) => {
      const references = item.refs ? presentReferences(item.refs) : [];
      if (references.length === 0) {
        throw new InputError(`item ${index + 1}: the bleu metric needs at least one reference (refs)`);
      }
      return references;
    });
    return items.map((item, index) => {
      const references = referenceLists[index]!;
      this.referenceCounts.add(references.length);
      return scoreStatistics(statisticsWith(item.hyp, references, this.preprocessing), this.scoring).score;
    });
  }
}

/**
 * A {@link SegmentMetric} scoring each item with sentence BLEU against `item.refs` (0–100, higher
 * is better). Options as in {@link BleuOptions}; `effectiveOrder` defaults to `true`. Invalid
 * options fail here, not at the first batch.
 *
 * @throws UsageError / UnsupportedError for invalid options; `scoreBatch` throws InputError for an item without references.
 */
export function createBleuMetric(options: BleuOptions = {}): SegmentMetric {
  return new BleuMetric(options);
}
