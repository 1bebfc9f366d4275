/**
 * The owner's side of the FFI engine: one worker thread per loaded model (`llama-ffi-worker.ts`) that
 * decodes with continuous batching, so the owner's event loop never waits on a decode. Requests are
 * messages; each resolves when the worker reports its result.
 *
 * Failure handling: a worker that dies (an uncaught error or an exit) rejects every request in flight
 * and every later one with an EngineCallError; disposing rejects requests in flight with a UsageError
 * saying so. Neither ever leaves a promise pending.
 *
 * The worker file sits next to this module: `.js` under `dist/`, `.ts` when running from source (tests,
 * `tsx`), where the worker first registers tsx's loader — Node 20 ignores `--import` in a worker's
 * `execArgv`, so the loader is registered programmatically by a small bootstrap.
 * @internal
 * @module
 */
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";
import { EngineCallError, RoutelmtError, UsageError } from "../errors/index.js";
import type { GenerationEnd } from "./decode-scheduler.js";
import type { FeatureView } from "./feature-views.js";
import {
  type EngineInfo,
  fromWireError,
  type WireEvent,
  type WorkerOpenOptions,
  type WorkerReply,
  type WorkerRequest,
} from "./llama-ffi-protocol.js";

const ENGINE_NAME = "llama-ffi";

/** Settings of one generation. */
export interface GenerationOptions {
  maxTokens: number;
  signal?: AbortSignal;
  /** Called with the tokens of each decode step as they come (in order). */
  onTokens?: (tokens: readonly number[]) => void;
  /** Whether to sum the generated tokens' log-probabilities (`logProbability`). Default false. */
  confidence?: boolean;
}

/** What a finished generation returns. */
export interface GenerationResult {
  tokens: number[];
  finishReason: GenerationEnd;
  /**
   * Σ log p under the model of `tokens` and, when generation stopped at an end-of-generation token,
   * of that token: each greedy token's log-softmax where it was chosen. Null unless asked for.
   */
  logProbability: number | null;
}

/** What a view-reading prefill returns. */
export interface WorkerPrefillResult {
  /** The views' vectors concatenated in request order. */
  features: Float32Array;
  entropy: number | null;
  firstToken: number;
}

interface PendingRequest {
  resolve: (event: WireEvent) => void;
  reject: (error: RoutelmtError) => void;
  onTokens?: (tokens: readonly number[]) => void;
}

/** An error thrown by a caller's callback, as the request's rejection. */
function asRoutelmtError(error: unknown): RoutelmtError {
  if (error instanceof RoutelmtError) return error;
  return new EngineCallError(
    ENGINE_NAME,
    `a token callback failed: ${(error as Error)?.message ?? String(error)}`,
    {
      isRetryable: false,
      cause: error,
    },
  );
}

/** Starts the worker from its compiled `.js`, or from source through tsx's loader. */
function startWorker(options: WorkerOpenOptions): Worker {
  const here = fileURLToPath(import.meta.url);
  const extension = path.extname(here);
  const entry = path.join(path.dirname(here), `llama-ffi-worker${extension}`);
  if (extension !== ".ts") return new Worker(entry, { workerData: options });
  const tsxApi = import.meta.resolve("tsx/esm/api");
  const bootstrap =
    `import(${JSON.stringify(tsxApi)})` +
    `.then(({ register }) => { register(); return import(${JSON.stringify(pathToFileURL(entry).href)}); })` +
    ".catch((error) => { process.nextTick(() => { throw error; }); });";
  return new Worker(bootstrap, { eval: true, workerData: options });
}

/** See the module comment. */
export class LlamaFfiWorkerEngine {
  readonly info: EngineInfo;
  readonly #worker: Worker;
  readonly #pending = new Map<number, PendingRequest>();
  #nextRequestId = 1;
  /** Set once the worker cannot take requests any more; later calls reject with it. */
  #closed: RoutelmtError | undefined;
  #disposing: Promise<void> | undefined;

  private constructor(worker: Worker, info: EngineInfo) {
    this.#worker = worker;
    this.info = info;
    worker.on("message", (reply: WorkerReply) => {
      if (reply.type === "events") for (const event of reply.events) this.#dispatch(event);
    });
    worker.on("error", (error) => {
      this.#shutDown(
        new EngineCallError(ENGINE_NAME, `the decoding worker failed: ${error.message}`, {
          isRetryable: false,
          cause: error,
        }),
      );
    });
    worker.on("exit", (code) => {
      this.#shutDown(
        new EngineCallError(ENGINE_NAME, `the decoding worker exited (code ${code})`, { isRetryable: false }),
      );
    });
  }

  /**
   * Starts a worker and loads the model in it.
   * @throws whatever the worker's engine threw while loading (InputError for an unreadable model,
   *   UnsupportedError for a platform without the pinned binaries, …).
   */
  static async open(options: WorkerOpenOptions): Promise<LlamaFfiWorkerEngine> {
    const worker = startWorker(options);
    let onMessage: (reply: WorkerReply) => void = () => {};
    let onError: (error: Error) => void = () => {};
    let onExit: (code: number) => void = () => {};
    try {
      const info = await new Promise<EngineInfo>((resolve, reject) => {
        onMessage = (reply) => {
          if (reply.type === "ready") resolve(reply.info);
          else if (reply.type === "open-failed") reject(fromWireError(reply.error, ENGINE_NAME));
        };
        onError = (error) =>
          reject(
            new EngineCallError(ENGINE_NAME, `the decoding worker failed to start: ${error.message}`, {
              cause: error,
              isRetryable: false,
            }),
          );
        onExit = (code) =>
          reject(
            new EngineCallError(ENGINE_NAME, `the decoding worker exited while loading (code ${code})`, {
              isRetryable: false,
            }),
          );
        worker.on("message", onMessage);
        worker.on("error", onError);
        worker.on("exit", onExit);
      });
      return new LlamaFfiWorkerEngine(worker, info);
    } catch (error) {
      await worker.terminate();
      throw error;
    } finally {
      // Only these three: after removeAllListeners() the worker delivers no more messages.
      worker.off("message", onMessage);
      worker.off("error", onError);
      worker.off("exit", onExit);
    }
  }

  /** Evaluates a prompt on an empty sequence, reading `views`; the sequence is then held. */
  async prefill(
    sequenceId: number,
    tokens: readonly number[],
    options: { views: readonly FeatureView[]; entropy: boolean },
  ): Promise<WorkerPrefillResult> {
    const event = await this.#request((requestId) => ({
      type: "prefill",
      requestId,
      sequenceId,
      tokens: [...tokens],
      views: options.views.map((view) => ({ ...view })),
      entropy: options.entropy,
    }));
    if (event.kind !== "prefilled") throw new EngineCallError(ENGINE_NAME, `unexpected ${event.kind} reply`);
    return { features: event.features, entropy: event.entropy, firstToken: event.firstToken };
  }

  /** Evaluates a plain prompt on an empty sequence (chunks alone), then generates greedily in shared steps. */
  translate(
    sequenceId: number,
    tokens: readonly number[],
    options: GenerationOptions,
  ): Promise<GenerationResult> {
    return this.#generate(options, (requestId, aborted) => ({
      type: "translate",
      requestId,
      sequenceId,
      tokens: [...tokens],
      maxTokens: options.maxTokens,
      stream: options.onTokens !== undefined,
      aborted,
      confidence: options.confidence === true,
    }));
  }

  /** Generates greedily from a held prefill. */
  continueFrom(sequenceId: number, options: GenerationOptions): Promise<GenerationResult> {
    return this.#generate(options, (requestId, aborted) => ({
      type: "continue",
      requestId,
      sequenceId,
      maxTokens: options.maxTokens,
      stream: options.onTokens !== undefined,
      aborted,
      confidence: options.confidence === true,
    }));
  }

  /** Frees a sequence's KV cache (taken before any later request on the same sequence). */
  release(sequenceId: number): void {
    if (this.#closed === undefined) this.#post({ type: "release", sequenceId });
  }

  /**
   * Fails requests in flight, frees the model and stops the worker. Later requests reject with a
   * UsageError. Idempotent.
   */
  dispose(): Promise<void> {
    this.#disposing ??= (async () => {
      if (this.#closed === undefined) {
        this.#closed = new UsageError("the llama FFI engine is disposed");
        // The worker answers requests in flight (failed) before it says it is done.
        const done = new Promise<void>((resolve) => {
          this.#worker.on("message", (reply: WorkerReply) => {
            if (reply.type === "disposed") resolve();
          });
          this.#worker.once("exit", () => resolve());
        });
        this.#post({ type: "dispose" });
        await done;
      }
      this.#shutDown(this.#closed);
      await this.#worker.terminate();
    })();
    return this.#disposing;
  }

  /** Makes the worker throw outside any request, as a crash would. For tests of the recovery. */
  simulateCrash(): void {
    this.#post({ type: "crash" });
  }

  #post(request: WorkerRequest): void {
    this.#worker.postMessage(request);
  }

  #request(
    build: (requestId: number) => WorkerRequest,
    onTokens?: PendingRequest["onTokens"],
  ): Promise<WireEvent> {
    if (this.#closed !== undefined) return Promise.reject(this.#closed);
    const requestId = this.#nextRequestId++;
    return new Promise<WireEvent>((resolve, reject) => {
      this.#pending.set(requestId, { resolve, reject, ...(onTokens ? { onTokens } : {}) });
      this.#post(build(requestId));
    });
  }

  async #generate(
    options: GenerationOptions,
    build: (requestId: number, aborted: boolean) => WorkerRequest,
  ): Promise<GenerationResult> {
    let requestId = 0;
    const onAbort = () => {
      if (this.#closed === undefined) this.#post({ type: "abort", requestId });
    };
    try {
      const event = await this.#request((id) => {
        requestId = id;
        options.signal?.addEventListener("abort", onAbort, { once: true });
        return build(id, options.signal?.aborted ?? false);
      }, options.onTokens);
      if (event.kind !== "finished") throw new EngineCallError(ENGINE_NAME, `unexpected ${event.kind} reply`);
      return { tokens: event.tokens, finishReason: event.finishReason, logProbability: event.logProbability };
    } finally {
      options.signal?.removeEventListener("abort", onAbort);
    }
  }

  #dispatch(event: WireEvent): void {
    const pending = this.#pending.get(event.requestId);
    if (pending === undefined) return;
    if (event.kind === "tokens") {
      try {
        pending.onTokens?.(event.tokens);
      } catch (error) {
        // The caller's callback failed: its request ends with that error, the others go on.
        this.#pending.delete(event.requestId);
        this.#post({ type: "abort", requestId: event.requestId });
        pending.reject(asRoutelmtError(error));
      }
      return;
    }
    this.#pending.delete(event.requestId);
    if (event.kind === "failed") pending.reject(fromWireError(event.error, ENGINE_NAME));
    else pending.resolve(event);
  }

  /** Rejects everything in flight with `error` and refuses later requests with it. */
  #shutDown(error: RoutelmtError): void {
    this.#closed ??= error;
    for (const pending of this.#pending.values()) pending.reject(this.#closed);
    this.#pending.clear();
  }
}
