import { createHash } from "node:crypto";
import { setMaxListeners } from "node:events";
import {
  type DatasetMeta,
  type DatasetRecord,
  DatasetWriter,
  featureBlocksOf,
  loadDataset,
  type SkippedTooLong,
  type SystemScores,
} from "../dataset/index.js";
import type { MetricItem, SegmentMetric } from "../metrics/segment-metric.js";
import { parseModelSpec } from "../translators/model-spec.js";
import {
  errorAtOrigin,
  findTooLongPrompts,
  type RequestOrigin,
  tooLongPromptsError,
  uncheckedModelsNote,
} from "../translators/prompt-fit.js";
import type { ProbedTranslator, Translation, TranslationRequest, Translator } from "../translators/types.js";
import { VERSION } from "../version.js";
import type { CollectSegment } from "./collect-input.js";
import { orientedGain } from "./gain.js";
import { refuseDuplicateScoreNames } from "./score-names.js";

export interface CollectOptions {
  segments: CollectSegment[];
  /** Input file the segments were read from (named in messages and meta.json). */
  input: string;
  /**
   * sha256 (hex) of the bytes the segments were parsed from (`readCollectInput` returns it),
   * part of the run's identity. Not read from `input` here: the file may have changed since it was
   * parsed, and the identity must describe the segments this run writes.
   */
  inputSha256: string;
  out: string;
  small: ProbedTranslator;
  smallSpec: string;
  large: Translator;
  largeSpec: string;
  /** Identifies the large model file when it is local (null for remote engines). */
  largeFingerprint: string | null;
  metric: SegmentMetric;
  extraMetrics?: SegmentMetric[];
  /** Maximum new tokens per translation. */
  maxTokens: number;
  /** Segments per durable chunk: what a kill can lose is at most one chunk of work. Defaults to 16. */
  chunkSize?: number;
  /**
   * Requests each engine can work on at once (`--concurrency`): segments are started ahead of the
   * chunk being scored and written — max(chunk size, 2 × concurrency) of them — so every engine
   * keeps that many in flight across chunk boundaries. Results are written in input order whatever
   * order they finish in. Defaults to 1.
   */
  concurrency?: number;
  /**
   * Record the large model's likelihood of each small translation (`large_logprob_of_small`) where
   * the large engine can score a given text. Defaults to true.
   */
  largeLikelihood?: boolean;
  /** Called after each chunk with (done, total). */
  onProgress?: (done: number, total: number, chunk: number) => void;
  /**
   * What to do with segments whose prompt plus `maxTokens` does not fit a model's context:
   * `refuse` the run before anything is decoded (an InputError listing every one), or `skip` them
   * (recorded in meta.json and the checkpoint). Defaults to `refuse`.
   */
  tooLong?: "refuse" | "skip";
  /** Called with remarks the user should see before the run starts (e.g. what cannot be checked). */
  onNote?: (note: string) => void;
}

export interface CollectSummary {
  n: number;
  /** Segments finished by this run (the rest were already there from an interrupted one). */
  fresh: number;
  alreadyComplete: boolean;
  meanSmall: number | null;
  meanLarge: number | null;
  meanGain: number | null;
  fractionPositive: number;
  fractionZero: number;
  fractionNegative: number;
  seconds: number;
  /** Segments left out because they do not fit a model's context (only with `tooLong: "skip"`). */
  skipped: SkippedTooLong[];
}

/** How to tell two metrics of a collection apart: only an http metric's name is the user's. */
export const METRIC_RENAME =
  "give each metric once, and each http metric its own name after # (http:<URL>#<name>)";

/** Decoding settings every collected translation uses; recorded in meta.json. */
export function decodingSettings(maxTokens: number): Record<string, unknown> {
  return { strategy: "greedy", temperature: 0, repeat_penalty: "none", max_tokens: maxTokens };
}

/**
 * Translates every segment with both models, scores both outputs and writes the dataset directory.
 * The small model runs once per segment — one prefill yields the features and entropy, decoding
 * continues from it — and the large model once. Work is written chunk by chunk, so a killed run
 * resumes where it stopped.
 */
export async function collectDataset(options: CollectOptions): Promise<CollectSummary> {
  const started = performance.now();
  const { small, large, metric } = options;
  const extraMetrics = options.extraMetrics ?? [];
  const chunkSize = options.chunkSize ?? 16;
  // The command line refuses this naming its flags; a caller of the library gets it here.
  refuseDuplicateScoreNames(
    [
      { name: metric.name, source: "the label metric" },
      ...extraMetrics.map((extra, index) => ({ name: extra.name, source: `extra metric ${index + 1}` })),
    ],
    METRIC_RENAME,
  );
  const { segments, skipped } = segmentsThatFit(options);
  const identity = {
    input: { sha256: options.inputSha256, segments: options.segments.length },
    small: { spec: specIdentity(options.smallSpec), engine: small.engine, ...small.featureIdentity },
    large: {
      spec: specIdentity(options.largeSpec),
      fingerprint: options.largeFingerprint,
      model: large.modelId,
    },
    metric: { name: metric.name, signature: metric.signature },
    extra_metrics: extraMetrics.map((extra) => ({ name: extra.name, signature: extra.signature })),
    // The pair a line gets can come from the flags rather than the line: the input's hash misses it.
    languages: languagesIdentity(options.segments),
    decoding: decodingSettings(options.maxTokens),
    // Left out at its default, so directories from before it was recorded still resume.
    ...(readsLargeLikelihood(options) || large.scoreTranslation === undefined
      ? {}
      : { large_likelihood: false }),
    // Which segments the chunks skip is part of what `done` counts, so a resumed run must skip the
    // same ones. Left out when none are, so directories from before skipping existed still resume.
    ...(skipped.length > 0 ? { skipped_too_long: skipped.map(({ id, line }) => ({ id, line })) } : {}),
  };
  const dim = small.featureIdentity.dim;
  // Checked before any work: a feature vector whose views do not tile it could not be read back.
  const featureBlocks = featureBlocksOf(small.featureIdentity);
  const { writer, done, complete } = await DatasetWriter.open(options.out, identity, dim, {
    readStoredIdentity: withResolvedSpecs,
  });
  let fresh = 0;
  let pipeline: TranslationPipeline | undefined;
  try {
    if (!complete) {
      const lookahead = Math.max(chunkSize, 2 * (options.concurrency ?? 1));
      pipeline = new TranslationPipeline(segments, options);
      for (let start = done; start < segments.length; start += chunkSize) {
        const end = Math.min(start + chunkSize, segments.length);
        // Started before this chunk is awaited, scored and written: the engines never run dry.
        pipeline.startUpTo(end + lookahead, start);
        const translated = await pipeline.results(start, end);
        const chunk = segments.slice(start, end);
        const { records, features } = await scoreChunk(chunk, translated, options, extraMetrics, dim);
        await writer.append(records, features);
        fresh += chunk.length;
        options.onProgress?.(end, segments.length, chunk.length);
      }
      await pipeline.close();
      const metricSignatures: Record<string, string> = { [metric.name]: metric.signature };
      for (const extra of extraMetrics) metricSignatures[extra.name] = extra.signature;
      const pairs = new Set(segments.map((segment) => `${segment.srcLang}\u0000${segment.tgtLang}`));
      const [srcLang, tgtLang] = pairs.size === 1 ? ([...pairs][0] as string).split("\u0000") : [null, null];
      const meta: DatasetMeta = {
        n: segments.length,
        dim,
        feature_blocks: featureBlocks,
        label_metric: metric.name,
        label_higher_is_better: metric.higherIsBetter,
        metric_signatures: metricSignatures,
        small: {
          spec: options.smallSpec,
          fingerprint: small.featureIdentity.fingerprint,
          arch: small.featureIdentity.arch,
          layer: small.featureIdentity.layer,
        },
        large: { spec: options.largeSpec },
        template: small.featureIdentity.template,
        src_lang: srcLang ?? null,
        tgt_lang: tgtLang ?? null,
        created: new Date().toISOString(),
        routelmt_version: VERSION,
        source: {
          kind: "collect",
          input: options.input,
          decoding: decodingSettings(options.maxTokens),
          skipped_too_long: skipped,
        },
      };
      await writer.finish(meta);
    }
  } finally {
    // A failure while scoring or writing must not leave translations running behind it.
    await pipeline?.close();
    await writer.close();
  }
  const dataset = await loadDataset(options.out);
  return {
    ...summarizeGains(dataset.records),
    n: dataset.records.length,
    fresh,
    alreadyComplete: complete,
    seconds: (performance.now() - started) / 1000,
    skipped,
  };
}

/**
 * A model spec as the run's identity records it: a local file by its absolute path, so the same
 * file named from another directory (or relative rather than absolute) is the same model. Which
 * model it is, is checked by its fingerprint; the path only has to name the same place.
 */
function specIdentity(spec: string): string {
  try {
    const parsed = parseModelSpec(spec);
    return parsed.kind === "gguf" ? parsed.path : spec;
  } catch {
    // Not a spec the command line would take (a library caller's label): kept as given.
    return spec;
  }
}

/**
 * A stored identity with its model specs in {@link specIdentity}'s form. Identities written before
 * it hold local paths as typed; resolving them against today's working directory is the best
 * reading left (right when the rerun starts where the first run did).
 */
function withResolvedSpecs(stored: Record<string, unknown>): Record<string, unknown> {
  const resolved = (model: unknown) =>
    typeof model === "object" && model !== null && "spec" in model && typeof model.spec === "string"
      ? { ...model, spec: specIdentity(model.spec) }
      : model;
  return { ...stored, small: resolved(stored.small), large: resolved(stored.large) };
}

/** Whether each record gets the large model's likelihood of its small translation. */
function readsLargeLikelihood(options: CollectOptions): boolean {
  return options.large.scoreTranslation !== undefined && options.largeLikelihood !== false;
}

/** The language pairs of a run: which ones, and a hash of which segment has which. */
function languagesIdentity(segments: readonly CollectSegment[]): { pairs: string[]; sha256: string } {
  const hash = createHash("sha256");
  const pairs = new Set<string>();
  for (const segment of segments) {
    const pair = `${segment.srcLang}-${segment.tgtLang}`;
    pairs.add(pair);
    hash.update(`${pair}\n`);
  }
  return { pairs: [...pairs].sort(), sha256: hash.digest("hex") };
}

function originOf(input: string, segment: CollectSegment): RequestOrigin {
  return { file: input, line: segment.line, id: segment.id };
}

/**
 * Tokenizes every prompt with both loaded models before anything is decoded; segments that do
 * not fit a model's context refuse the run, all listed, or with `tooLong: "skip"` are left out.
 * The decision depends only on the input, the models, the template and `maxTokens`, all part of
 * the run's identity, so a resumed run makes the same one.
 */
function segmentsThatFit(options: CollectOptions): { segments: CollectSegment[]; skipped: SkippedTooLong[] } {
  const all = options.segments;
  const locate = (index: number) => originOf(options.input, all[index] as CollectSegment);
  const { tooLong, unchecked } = findTooLongPrompts(
    [
      { name: "small", translator: options.small },
      // Scoring the small translation holds its prompt, the answer (at most maxTokens tokens) and
      // one more distribution, for the end token.
      { name: "large", translator: options.large, extraTokens: readsLargeLikelihood(options) ? 1 : 0 },
    ],
    all.map(translationRequest),
    options.maxTokens,
    locate,
  );
  const skip = options.tooLong === "skip";
  if (skip && unchecked.length > 0) options.onNote?.(uncheckedModelsNote(unchecked));
  if (tooLong.length === 0) return { segments: all, skipped: [] };
  if (!skip) throw tooLongPromptsError(tooLong, all.length, options.maxTokens, locate, "--skip-too-long");
  const skippedIndices = new Set(tooLong.map((prompt) => prompt.index));
  return {
    segments: all.filter((_, index) => !skippedIndices.has(index)),
    skipped: tooLong.map(({ index, overflows }) => {
      const segment = all[index] as CollectSegment;
      return {
        id: segment.id,
        line: segment.line,
        too_long_for: overflows.map((overflow) => ({
          model: overflow.model,
          prompt_tokens: overflow.promptTokens,
          max_prompt_tokens: overflow.maxPromptTokens,
          context_size: overflow.contextSize,
        })),
      };
    }),
  };
}

function translationRequest(segment: CollectSegment): TranslationRequest {
  return { id: segment.id, text: segment.src, srcLang: segment.srcLang, tgtLang: segment.tgtLang };
}

/** What both models made of one segment. */
interface TranslatedSegment {
  small: {
    features: Float32Array;
    entropy: number | null;
    promptTokens: number | null;
    translation: Translation;
    /** The large model's mean log-probability of the small translation; undefined where it cannot score. */
    scoredByLarge: number | undefined;
  };
  large: Translation;
}

/**
 * Translates segments with both models, started in input order and awaited chunk by chunk. Each
 * engine bounds its own work in flight (llama.cpp sequences, HTTP requests); the pipeline only
 * decides how far ahead segments are handed to them. The first failure aborts the rest; it is
 * thrown, naming its line, once everything started has stopped.
 */
class TranslationPipeline {
  private readonly started = new Map<number, Promise<TranslatedSegment>>();
  private next = 0;
  private readonly abort = new AbortController();
  private firstFailure: Error | undefined;

  constructor(
    private readonly segments: readonly CollectSegment[],
    private readonly options: CollectOptions,
  ) {
    // Every request in flight listens to the one abort signal; there can be many.
    setMaxListeners(0, this.abort.signal);
  }

  /** Starts every segment before `end` not started yet, from `from` on. */
  startUpTo(end: number, from: number): void {
    this.next = Math.max(this.next, from);
    for (; this.next < Math.min(end, this.segments.length); this.next++) this.start(this.next);
  }

  /** The results of segments [start, end), in order. */
  async results(start: number, end: number): Promise<TranslatedSegment[]> {
    const settled = await Promise.allSettled(
      Array.from({ length: end - start }, (_, offset) => this.started.get(start + offset)!),
    );
    if (settled.some((outcome) => outcome.status === "rejected")) {
      await Promise.allSettled(this.started.values());
      throw this.firstFailure;
    }
    for (let index = start; index < end; index++) this.started.delete(index);
    return settled.map((outcome) => (outcome as PromiseFulfilledResult<TranslatedSegment>).value);
  }

  /** Aborts whatever is still running and waits for it to stop. */
  async close(): Promise<void> {
    this.abort.abort();
    await Promise.allSettled(this.started.values());
  }

  private start(index: number): void {
    const segment = this.segments[index] as CollectSegment;
    const request = translationRequest(segment);
    const { signal } = this.abort;
    const decode = { maxTokens: this.options.maxTokens, signal };
    const small = (async () => {
      const prefilled = await this.options.small.prefill(request, { signal });
      // The small model's confidence in its translation goes into the record (for the post-hoc guard).
      const translation = await prefilled.continue({ ...decode, confidence: true });
      // And the large model's likelihood of it, where the large engine can score a given text.
      const scoredByLarge = readsLargeLikelihood(this.options)
        ? await this.options.large.scoreTranslation!(request, translation.text)
        : undefined;
      return {
        features: prefilled.features,
        entropy: prefilled.entropy,
        promptTokens: prefilled.promptTokens,
        translation,
        scoredByLarge,
      };
    })();
    const large = this.options.large.translate([request], decode).then(([translation]) => {
      if (!translation) throw new Error(`${this.options.large.engine} returned no translation`);
      return translation;
    });
    const both = Promise.all([small, large]).then(
      ([smallResult, largeResult]) => ({ small: smallResult, large: largeResult }),
      (error: unknown) => {
        // Later failures are mostly the abort itself; the first one is the cause.
        this.firstFailure ??= errorAtOrigin(error, originOf(this.options.input, segment));
        this.abort.abort();
        throw this.firstFailure;
      },
    );
    // Awaited in `results`; until then a failure must not count as unhandled.
    both.catch(() => undefined);
    this.started.set(index, both);
  }
}

async function scoreChunk(
  chunk: CollectSegment[],
  translated: readonly TranslatedSegment[],
  options: CollectOptions,
  extraMetrics: SegmentMetric[],
  dim: number,
): Promise<{ records: DatasetRecord[]; features: Float32Array }> {
  const smallResults = translated.map((result) => result.small);
  const largeResults = translated.map((result) => result.large);
  const smallItems = chunk.map((segment, index) => metricItem(segment, smallResults[index]!.translation));
  const largeItems = chunk.map((segment, index) => metricItem(segment, largeResults[index]!));
  const scoresByMetric = new Map<string, { small: number[]; large: number[] }>();
  for (const scorer of [options.metric, ...extraMetrics]) {
    const [smallScores, largeScores] = await Promise.all([
      scorer.scoreBatch(smallItems),
      scorer.scoreBatch(largeItems),
    ]);
    scoresByMetric.set(scorer.name, { small: smallScores, large: largeScores });
  }
  const label = scoresByMetric.get(options.metric.name) as { small: number[]; large: number[] };
  const features = new Float32Array(chunk.length * dim);
  const records = chunk.map((segment, index): DatasetRecord => {
    const smallResult = smallResults[index]!;
    features.set(smallResult.features, index * dim);
    const scores: Record<string, SystemScores> = {};
    for (const [name, values] of scoresByMetric)
      scores[name] = { small: values.small[index] ?? null, large: values.large[index] ?? null };
    const qSmall = label.small[index] as number;
    const qLarge = label.large[index] as number;
    return {
      id: segment.id,
      src: segment.src,
      ref: segment.ref,
      src_lang: segment.srcLang,
      tgt_lang: segment.tgtLang,
      small: smallResult.translation.text,
      large: largeResults[index]!.text,
      scores,
      q_small: qSmall,
      q_large: qLarge,
      gain: orientedGain(qSmall, qLarge, options.metric.higherIsBetter),
      src_chars: [...segment.src].length,
      prompt_tokens: smallResult.promptTokens,
      entropy: smallResult.entropy,
      large_prompt_tokens: largeResults[index]!.promptTokens,
      large_output_tokens: largeResults[index]!.outputTokens,
      ...(smallResult.translation.meanLogProbability === undefined
        ? {}
        : { small_mean_logprob: smallResult.translation.meanLogProbability }),
      ...(smallResult.scoredByLarge === undefined
        ? {}
        : { large_logprob_of_small: smallResult.scoredByLarge }),
    };
  });
  return { records, features };
}

function metricItem(segment: CollectSegment, translation: Translation): MetricItem {
  return { src: segment.src, hyp: translation.text, refs: segment.ref === null ? undefined : [segment.ref] };
}

/** Means of q_small, q_large and gain, and the shares of positive, zero and negative gains. */
export function summarizeGains(
  records: readonly Pick<DatasetRecord, "q_small" | "q_large" | "gain">[],
): Omit<CollectSummary, "n" | "fresh" | "alreadyComplete" | "seconds" | "skipped"> {
  const mean = (values: (number | null)[]) => {
    const known = values.filter((value): value is number => value !== null);
    return known.length === 0 ? null : known.reduce((sum, value) => sum + value, 0) / known.length;
  };
  const gains = records.map((record) => record.gain).filter((gain): gain is number => gain !== null);
  const share = (test: (gain: number) => boolean) =>
    gains.length === 0 ? 0 : gains.filter(test).length / gains.length;
  return {
    meanSmall: mean(records.map((record) => record.q_small)),
    meanLarge: mean(records.map((record) => record.q_large)),
    meanGain: mean(gains),
    fractionPositive: share((gain) => gain > 0),
    fractionZero: share((gain) => gain === 0),
    fractionNegative: share((gain) => gain < 0),
  };
}
