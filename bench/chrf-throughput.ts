/**
 * Throughput of sentence-level chrF and chrF++ (the gain-label path) over synthetic segment
 * pairs. Prints one JSON object. Run: `npx tsx bench/chrf-throughput.ts [segments]`.
 *
 * `ratio_vs_statistics_only` divides the sentence-scoring time by the time of a corpus pass that
 * only collects and sums statistics over the same pairs, measured in the same run, so it shows
 * what per-segment scoring costs on top of n-gram counting on this machine.
 */
import { type ChrfOptions, chrfStatistics, createChrfMetric } from "../src/metrics/chrf.js";
import type { MetricItem } from "../src/metrics/segment-metric.js";
import { isMainModule, printJsonResult } from "./run-if-main.js";

const DEFAULT_SEGMENTS = 100_000;
const SEED = 20_240_611;

// Frequent words with some accents and capitals, so sentences look like detokenised MT output.
const WORDS = (
  "the of and to in a is that for it as was with be by on not he this are or his from at which " +
  "but have an they you were her she there been one all we their has would when if so no will " +
  "more about can out other into than only its time new some could these two may first then do " +
  "any like my now over such our man me even most made after also did many before must through " +
  "years where much your way well down should because each just those people how too little state " +
  "good very make world still own see men work long get here between both life being under never " +
  "day same another know while last might us great old year off come since against go came right " +
  "used take three Government Minister Parliament Europe Commission Obama Netanyahu München Zürich " +
  "café naïve résumé coöperation Straße déjà vu"
).split(" ");
const PUNCTUATION = [",", ".", ";", ":", "?", "!"];

/** mulberry32: small, fast, deterministic; quality is ample for generating text. */
function createRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let mixed = Math.imul(state ^ (state >>> 15), 1 | state);
    mixed = (mixed + Math.imul(mixed ^ (mixed >>> 7), 61 | mixed)) ^ mixed;
    return ((mixed ^ (mixed >>> 14)) >>> 0) / 4_294_967_296;
  };
}

function pick<T>(random: () => number, items: readonly T[]): T {
  return items[Math.floor(random() * items.length)]!;
}

function makeReferenceWords(random: () => number): string[] {
  const length = 6 + Math.floor(random() * 25);
  const words: string[] = [];
  for (let index = 0; index < length; index++) {
    let word = pick(random, WORDS);
    if (index === 0) word = word.charAt(0).toUpperCase() + word.slice(1);
    if (index > 0 && index < length - 1 && random() < 0.08) word += pick(random, PUNCTUATION.slice(0, 2));
    words.push(word);
  }
  words[length - 1] += pick(random, [".", ".", ".", "?", "!"]);
  return words;
}

/** A hypothesis close to the reference: some words replaced, dropped or inserted. */
function perturb(random: () => number, reference: readonly string[]): string[] {
  const hypothesis: string[] = [];
  for (const word of reference) {
    const roll = random();
    if (roll < 0.12) hypothesis.push(pick(random, WORDS));
    else if (roll < 0.18) continue;
    else hypothesis.push(word);
    if (random() < 0.05) hypothesis.push(pick(random, WORDS));
  }
  return hypothesis;
}

/** Deterministic segment pairs; one reference each, as in the labelling data. */
export function makeSegmentPairs(count: number, seed = SEED): MetricItem[] {
  const random = createRandom(seed);
  const items: MetricItem[] = [];
  for (let index = 0; index < count; index++) {
    const reference = makeReferenceWords(random);
    items.push({ src: "", hyp: perturb(random, reference).join(" "), refs: [reference.join(" ")] });
  }
  return items;
}

/** Wall and CPU seconds of one pass; CPU time tells how much of the wall time other processes took. */
interface Timing {
  seconds: number;
  cpuSeconds: number;
}

async function timed(pass: () => Promise<void> | void): Promise<Timing> {
  const cpuStart = process.cpuUsage();
  const started = performance.now();
  await pass();
  const cpu = process.cpuUsage(cpuStart);
  return { seconds: (performance.now() - started) / 1000, cpuSeconds: (cpu.user + cpu.system) / 1e6 };
}

async function sentenceScores(items: MetricItem[], options: ChrfOptions): Promise<void> {
  const scores = await createChrfMetric(options).scoreBatch(items);
  if (scores.length !== items.length) throw new Error("chrF benchmark: score count mismatch");
}

function statisticsOnly(items: MetricItem[], options: ChrfOptions): void {
  let total: number[] | undefined;
  for (const item of items) {
    const statistics = chrfStatistics(item.hyp, item.refs!, options);
    if (total === undefined) total = statistics;
    else for (let index = 0; index < total.length; index++) total[index]! += statistics[index]!;
  }
}

async function measure(items: MetricItem[], options: ChrfOptions): Promise<Record<string, number>> {
  // Warm up the JIT on a slice so the timed passes measure steady-state code.
  const warmup = items.slice(0, Math.min(items.length, 5_000));
  await sentenceScores(warmup, options);
  statisticsOnly(warmup, options);
  const sentence = await timed(() => sentenceScores(items, options));
  const statistics = await timed(() => statisticsOnly(items, options));
  return {
    seconds: round(sentence.seconds, 3),
    segments_per_second: Math.round(items.length / sentence.seconds),
    cpu_seconds: round(sentence.cpuSeconds, 3),
    statistics_only_seconds: round(statistics.seconds, 3),
    ratio_vs_statistics_only: round(sentence.seconds / statistics.seconds, 3),
  };
}

function round(value: number, digits: number): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

/** Runs both measurements and returns the JSON-ready result (chrF at top level, chrF++ nested). */
export async function run(segments = DEFAULT_SEGMENTS): Promise<Record<string, unknown>> {
  const items = makeSegmentPairs(segments);
  const chrf = await measure(items, { wordOrder: 0 });
  const chrfPlusPlus = await measure(items, { wordOrder: 2 });
  return {
    bench: "chrf-throughput",
    segments,
    ...chrf,
    chrf_plus_plus: { bench: "chrf++-throughput", segments, ...chrfPlusPlus },
    node: process.version,
  };
}

if (isMainModule(import.meta.url)) {
  const requested = process.argv[2] === undefined ? DEFAULT_SEGMENTS : Number(process.argv[2]);
  if (!Number.isInteger(requested) || requested < 1) {
    process.stderr.write("usage: npx tsx bench/chrf-throughput.ts [segments]\n");
    process.exitCode = 2;
  } else {
    printJsonResult(run(requested));
  }
}
