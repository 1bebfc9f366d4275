/**
 * Continuous batching for the FFI engine, as llama.cpp's own server does it: every step builds one
 * `llama_decode` batch from the next token of every generating sequence plus pending plain prompt
 * tokens, decodes it once and reads each sequence's output by its batch index.
 *
 * Policy, per {@link DecodeScheduler.step}:
 * 1. sequences whose request was aborted stop (finish reason `abort`) before anything is decoded;
 * 2. one prompt runs alone: the oldest view-reading prefill (served first because routing waits for
 *    its features; views are read in ubatch order, which is batch order only for one sequence), else
 *    the next chunk of the oldest plain prompt, cut at multiples of the batch capacity from its start.
 *    A plain prompt's last token is an output: its greedy next token starts that sequence's generation;
 * 3. one `llama_decode` with the next token of every generating sequence, in descending sequence id
 *    order, so that llama.cpp (whose `split_equal` groups only ascending consecutive ids) computes
 *    each in a one-row ubatch of its own.
 * Why one sequence per ubatch: llama.cpp's CPU kernels compute a one-row ubatch otherwise than a
 * longer one, and decoding alone every generated token is a one-row ubatch; a shared ubatch (or a
 * prompt cut into a one-token piece beside other sequences) changes the last bits and can flip a
 * near-tie greedy token (see `llama-internals.ts`). A generating sequence advances every step,
 * however many prompts arrive.
 *
 * Generation is greedy (the engine's argmax) and stops before an end-of-generation token (`stop`),
 * after `maxTokens` tokens or when the sequence's context is full (`length`), or on abort (`abort`).
 * The scheduler never frees a sequence by itself: its owner releases it once the result is read.
 * @internal
 * @module
 */
import { EngineCallError, UsageError } from "../errors/index.js";
import type { FeatureView } from "./feature-views.js";
import type { BatchEntry } from "./llama-ffi-engine.js";

/** Why a generation ended. */
export type GenerationEnd = "stop" | "length" | "abort";

/** What the scheduler needs of an engine (the FFI engine, or a fake in tests). */
export interface SchedulerEngine {
  /** Token cells per sequence. */
  readonly contextSize: number;
  /** Tokens per decode call. */
  readonly batchCapacity: number;
  isEndOfGeneration(token: number): boolean;
  positionOf(sequenceId: number): number;
  prefill(
    sequenceId: number,
    tokens: readonly number[],
    options: { views: readonly FeatureView[]; entropy: boolean },
  ): { features: Float32Array[]; firstToken: number; entropy: number | null };
  decodeBatch(entries: readonly BatchEntry[]): (number | undefined)[];
  /** Σ log p of the greedy tokens a sequence produced (see the FFI engine's method of that name). */
  generatedLogProbability(sequenceId: number): number;
  releaseSequence(sequenceId: number): void;
}

/** What a step reports, in order. */
export type SchedulerEvent =
  | {
      kind: "prefilled";
      requestId: number;
      features: Float32Array[];
      entropy: number | null;
      firstToken: number;
    }
  /** Tokens a streaming generation produced in this step. */
  | { kind: "tokens"; requestId: number; tokens: number[] }
  | {
      kind: "finished";
      requestId: number;
      tokens: number[];
      finishReason: GenerationEnd;
      /**
       * Σ log p of `tokens`, and of the end token when `finishReason` is `stop` (each greedy token's
       * log-softmax); null unless the request asked for `confidence`.
       */
      logProbability: number | null;
    }
  | { kind: "failed"; requestId: number; error: Error };

/** A generation's settings. */
export interface GenerationRequest {
  requestId: number;
  sequenceId: number;
  maxTokens: number;
  /** Whether to report tokens step by step (else only the finished list). */
  stream: boolean;
  /** Whether the request was aborted before it was submitted. */
  aborted?: boolean;
  /**
   * Whether to report the generation's log-probability (`finished.logProbability`): a pass over the
   * vocabulary per generated token, so only when asked.
   */
  confidence?: boolean;
}

interface ViewPrefill {
  requestId: number;
  sequenceId: number;
  tokens: readonly number[];
  views: readonly FeatureView[];
  entropy: boolean;
}

interface PlainPrompt {
  request: GenerationRequest;
  tokens: readonly number[];
  /** Prompt tokens already decoded. */
  evaluated: number;
}

interface Generation {
  request: GenerationRequest;
  output: number[];
  /** Token produced but not yet decoded. */
  pending: number;
}

/** See the module comment. */
export class DecodeScheduler {
  readonly #engine: SchedulerEngine;
  readonly #viewPrefills: ViewPrefill[] = [];
  readonly #plainPrompts: PlainPrompt[] = [];
  /** Generating sequences by sequence id. */
  readonly #generations = new Map<number, Generation>();
  /** First tokens of prefilled sequences that wait for `continueFrom`. */
  readonly #held = new Map<number, number>();
  readonly #aborted = new Set<number>();
  /** Sequence ids with a queued or running request. */
  readonly #busy = new Set<number>();
  #events: SchedulerEvent[] = [];

  constructor(engine: SchedulerEngine) {
    this.#engine = engine;
  }

  /** Whether a step would do anything. */
  hasWork(): boolean {
    return this.#viewPrefills.length > 0 || this.#plainPrompts.length > 0 || this.#generations.size > 0;
  }

  /** Queues a prompt evaluation that reads views; the sequence is then held for {@link continueFrom}. */
  prefill(
    requestId: number,
    sequenceId: number,
    tokens: readonly number[],
    options: { views: readonly FeatureView[]; entropy: boolean },
  ): void {
    this.#claim(sequenceId);
    this.#viewPrefills.push({ requestId, sequenceId, tokens, ...options });
  }

  /** Queues a plain translation: the prompt shares batches, then generation starts from its last token. */
  translate(request: GenerationRequest, tokens: readonly number[]): void {
    this.#claim(request.sequenceId);
    if (request.aborted) this.#aborted.add(request.requestId);
    this.#plainPrompts.push({ request, tokens, evaluated: 0 });
  }

  /**
   * Starts generating from a held prefill.
   * @throws UsageError when the sequence holds no prefill.
   */
  continueFrom(request: GenerationRequest): void {
    const firstToken = this.#held.get(request.sequenceId);
    if (firstToken === undefined) throw new UsageError(`sequence ${request.sequenceId} holds no prefill`);
    this.#claim(request.sequenceId);
    this.#held.delete(request.sequenceId);
    this.#startGeneration(
      { ...request, aborted: request.aborted || this.#aborted.has(request.requestId) },
      firstToken,
    );
  }

  /** Marks a request aborted: it stops before the next decode (a no-op once it has finished). */
  abort(requestId: number): void {
    const running =
      this.#plainPrompts.some((prompt) => prompt.request.requestId === requestId) ||
      [...this.#generations.values()].some((generation) => generation.request.requestId === requestId);
    if (running) this.#aborted.add(requestId);
  }

  /**
   * Frees a sequence's KV cache. A request still running on it fails (its owner gave it up).
   */
  release(sequenceId: number): void {
    const failure = new UsageError(`sequence ${sequenceId} was released while a request was running on it`);
    this.#dropSequence(sequenceId, failure);
    this.#held.delete(sequenceId);
    this.#engine.releaseSequence(sequenceId);
  }

  /** Fails every queued and running request with `error` (disposal). */
  failAll(error: Error): void {
    for (const sequenceId of [...this.#busy]) this.#dropSequence(sequenceId, error);
    this.#held.clear();
  }

  /** Events since the last call, in order. */
  takeEvents(): SchedulerEvent[] {
    const events = this.#events;
    this.#events = [];
    return events;
  }

  /** One scheduling step; see the module comment. */
  step(): void {
    this.#stopAborted();
    const prefill = this.#viewPrefills.shift();
    if (prefill !== undefined) this.#runViewPrefill(prefill);
    else this.#runPromptChunk();
    this.#stopAborted();
    this.#runGenerationSteps();
  }

  #claim(sequenceId: number): void {
    if (this.#busy.has(sequenceId))
      throw new UsageError(`sequence ${sequenceId} already has a request running`);
    this.#busy.add(sequenceId);
  }

  #emit(event: SchedulerEvent): void {
    this.#events.push(event);
    if (event.kind === "finished" || event.kind === "failed") this.#aborted.delete(event.requestId);
  }

  #finish(generation: Generation, finishReason: GenerationEnd): void {
    this.#generations.delete(generation.request.sequenceId);
    this.#busy.delete(generation.request.sequenceId);
    this.#emit({
      kind: "finished",
      requestId: generation.request.requestId,
      tokens: generation.output,
      finishReason,
      // A generation aborted before its first token has counted that token at the prefill, not output it.
      logProbability: !generation.request.confidence
        ? null
        : finishReason === "abort" && generation.output.length === 0
          ? 0
          : this.#engine.generatedLogProbability(generation.request.sequenceId),
    });
  }

  /** Removes whatever request runs on a sequence, failing it with `error`. */
  #dropSequence(sequenceId: number, error: Error): void {
    const failed: number[] = [];
    const prefillIndex = this.#viewPrefills.findIndex((prefill) => prefill.sequenceId === sequenceId);
    if (prefillIndex >= 0) failed.push(...this.#viewPrefills.splice(prefillIndex, 1).map((p) => p.requestId));
    const promptIndex = this.#plainPrompts.findIndex((prompt) => prompt.request.sequenceId === sequenceId);
    if (promptIndex >= 0) {
      failed.push(...this.#plainPrompts.splice(promptIndex, 1).map((prompt) => prompt.request.requestId));
    }
    const generation = this.#generations.get(sequenceId);
    if (generation !== undefined) {
      this.#generations.delete(sequenceId);
      failed.push(generation.request.requestId);
    }
    this.#busy.delete(sequenceId);
    for (const requestId of failed) this.#emit({ kind: "failed", requestId, error });
  }

  #stopAborted(): void {
    if (this.#aborted.size === 0) return;
    for (const generation of [...this.#generations.values()]) {
      if (this.#aborted.has(generation.request.requestId)) this.#finish(generation, "abort");
    }
    for (const prompt of [...this.#plainPrompts]) {
      if (!this.#aborted.has(prompt.request.requestId)) continue;
      this.#plainPrompts.splice(this.#plainPrompts.indexOf(prompt), 1);
      this.#busy.delete(prompt.request.sequenceId);
      this.#emit({
        kind: "finished",
        requestId: prompt.request.requestId,
        tokens: [],
        finishReason: "abort",
        logProbability: prompt.request.confidence ? 0 : null,
      });
    }
  }

  #runViewPrefill(prefill: ViewPrefill): void {
    try {
      const result = this.#engine.prefill(prefill.sequenceId, prefill.tokens, {
        views: prefill.views,
        entropy: prefill.entropy,
      });
      this.#held.set(prefill.sequenceId, result.firstToken);
      this.#busy.delete(prefill.sequenceId);
      this.#emit({ kind: "prefilled", requestId: prefill.requestId, ...result });
    } catch (error) {
      this.#busy.delete(prefill.sequenceId);
      this.#emit({ kind: "failed", requestId: prefill.requestId, error: error as Error });
    }
  }

  /** The first token of a generation is known (argmax after the prompt); it may already end it. */
  #startGeneration(request: GenerationRequest, firstToken: number): void {
    const generation: Generation = { request, output: [], pending: firstToken };
    this.#generations.set(request.sequenceId, generation);
    if (request.aborted) {
      this.#finish(generation, "abort");
      return;
    }
    this.#accept(generation, firstToken);
  }

  /** Takes a freshly produced token: ends the generation or makes it the next token to decode. */
  #accept(generation: Generation, token: number): void {
    if (this.#engine.isEndOfGeneration(token)) {
      this.#finish(generation, "stop");
      return;
    }
    generation.output.push(token);
    if (generation.request.stream) {
      this.#emit({ kind: "tokens", requestId: generation.request.requestId, tokens: [token] });
    }
    const contextFull = this.#engine.positionOf(generation.request.sequenceId) >= this.#engine.contextSize;
    if (generation.output.length >= generation.request.maxTokens || contextFull) {
      this.#finish(generation, "length");
      return;
    }
    generation.pending = token;
  }

  /** The next chunk of the oldest plain prompt, in a batch of its own. */
  #runPromptChunk(): void {
    const prompt = this.#plainPrompts[0];
    if (prompt === undefined) return;
    const start = prompt.evaluated;
    const count = Math.min(this.#engine.batchCapacity, prompt.tokens.length - start);
    const completes = start + count === prompt.tokens.length;
    const entry = {
      sequenceId: prompt.request.sequenceId,
      tokens: prompt.tokens.slice(start, start + count),
      outputLast: completes,
      ...(prompt.request.confidence ? { scoreOutput: true } : {}),
    };
    const tokens = this.#decode([entry]);
    if (tokens === undefined) return;
    prompt.evaluated += count;
    if (!completes) return;
    this.#plainPrompts.shift();
    this.#startGeneration(prompt.request, tokens[0] as number);
  }

  /** One decode step for every generating sequence, in one batch of one-row ubatches. */
  #runGenerationSteps(): void {
    const generations = [...this.#generations.values()].sort(
      // Descending ids: llama.cpp's sequential split then gives each sequence a one-row ubatch.
      (left, right) => right.request.sequenceId - left.request.sequenceId,
    );
    if (generations.length === 0) return;
    const capacity = this.#engine.batchCapacity;
    const batch = generations.slice(0, capacity);
    const tokens = this.#decode(
      batch.map((generation) => ({
        sequenceId: generation.request.sequenceId,
        tokens: [generation.pending],
        outputLast: true,
        ...(generation.request.confidence ? { scoreOutput: true } : {}),
      })),
    );
    if (tokens === undefined) return;
    batch.forEach((generation, index) => {
      this.#accept(generation, tokens[index] as number);
    });
  }

  /** Decodes one batch; on failure drops its sequences (their state is unknown) and returns undefined. */
  #decode(entries: readonly BatchEntry[]): (number | undefined)[] | undefined {
    try {
      return this.#engine.decodeBatch(entries);
    } catch (error) {
      const failure =
        error instanceof Error
          ? error
          : new EngineCallError("llama-ffi", String(error), { isRetryable: false });
      for (const entry of entries) this.#dropSequence(entry.sequenceId, failure);
      return undefined;
    }
  }
}
