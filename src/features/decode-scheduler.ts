/**
 * Continuous batching for the FFI engine, as llama.cpp's own server does it: every step builds one
 * `llama_decode` batch from the next token of every generating sequence plus pending plain prompt
 * tokens, decodes it once and reads each sequence's output by its batch index.
 *
 * Policy, per {@link DecodeScheduler.step}:
 * 1. sequences whose request was aborted stop (finish reason `abort`) before anything is decoded;
 * 2. the oldest view-reading prefill, if any, runs alone (its own decodes: views are read in ubatch
 *    order, which is batch order only for a single sequence) — it is served first because routing
 *    waits for its features;
 * 3. one shared batch: a token for every generating sequence (ids ascending), then prompt tokens of
 *    plain translations, oldest first, up to the batch capacity (a long prompt continues in the next
 *    step). A prompt's last token is an output: its greedy next token starts that sequence's generation.
 * So a generating sequence advances at least every other decode, however many prefills arrive.
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
  | { kind: "finished"; requestId: number; tokens: number[]; finishReason: GenerationEnd }
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
    this.#stopAborted();
    this.#runSharedBatch();
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

  #runSharedBatch(): void {
    const capacity = this.#engine.batchCapacity;
    const steps = [...this.#generations.values()];
    let room = capacity - steps.length;
    const chunks: { prompt: PlainPrompt; count: number }[] = [];
    for (const prompt of this.#plainPrompts) {
      if (room <= 0) break;
      const count = Math.min(room, prompt.tokens.length - prompt.evaluated);
      chunks.push({ prompt, count });
      room -= count;
    }
    if (steps.length === 0 && chunks.length === 0) return;

    type Item = { sequenceId: number; entry: BatchEntry; onToken: (token: number | undefined) => void };
    const items: Item[] = steps.map((generation) => ({
      sequenceId: generation.request.sequenceId,
      entry: { sequenceId: generation.request.sequenceId, tokens: [generation.pending], outputLast: true },
      onToken: (token) => this.#accept(generation, token as number),
    }));
    for (const { prompt, count } of chunks) {
      const start = prompt.evaluated;
      const completes = start + count === prompt.tokens.length;
      items.push({
        sequenceId: prompt.request.sequenceId,
        entry: {
          sequenceId: prompt.request.sequenceId,
          tokens: prompt.tokens.slice(start, start + count),
          outputLast: completes,
        },
        onToken: (token) => {
          prompt.evaluated += count;
          if (!completes) return;
          this.#plainPrompts.splice(this.#plainPrompts.indexOf(prompt), 1);
          this.#startGeneration(prompt.request, token as number);
        },
      });
    }
    // Ascending sequence ids let llama.cpp's sequential split put more sequences in each ubatch.
    items.sort((left, right) => left.sequenceId - right.sequenceId);
    let tokens: (number | undefined)[];
    try {
      tokens = this.#engine.decodeBatch(items.map((item) => item.entry));
    } catch (error) {
      const failure =
        error instanceof Error
          ? error
          : new EngineCallError("llama-ffi", String(error), { isRetryable: false });
      for (const item of items) this.#dropSequence(item.sequenceId, failure);
      return;
    }
    items.forEach((item, index) => {
      item.onToken(tokens[index]);
    });
  }
}
