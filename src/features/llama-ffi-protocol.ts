/**
 * Messages between the FFI engine's worker thread (`llama-ffi-worker.ts`) and the thread that owns
 * it (`llama-ffi-worker-engine.ts`). Only token ids, settings and finished feature vectors cross:
 * never vocabulary-sized arrays.
 * @internal
 * @module
 */
import {
  EngineCallError,
  InputError,
  type RoutelmtError,
  UnsupportedError,
  UsageError,
} from "../errors/index.js";
import type { SchedulerEvent } from "./decode-scheduler.js";
import type { FeatureView } from "./feature-views.js";

/** What the worker is started with (`workerData`). */
export interface WorkerOpenOptions {
  modelPath: string;
  threads: number;
  contextSize: number;
  sequences: number;
  batchSize?: number;
}

/** The loaded model as the worker reports it. */
export interface EngineInfo {
  architecture: string;
  layerCount: number;
  embeddingSize: number;
  outputEmbeddingSize: number;
  vocabularySize: number;
  contextSize: number;
  sequences: number;
  batchCapacity: number;
}

/** An error as it crosses the thread boundary. */
export interface WireError {
  name: string;
  message: string;
  isRetryable?: boolean;
}

/** Owner → worker. */
export type WorkerRequest =
  | {
      type: "prefill";
      requestId: number;
      sequenceId: number;
      tokens: number[];
      views: FeatureView[];
      entropy: boolean;
    }
  | {
      type: "translate";
      requestId: number;
      sequenceId: number;
      tokens: number[];
      maxTokens: number;
      stream: boolean;
      aborted: boolean;
      confidence: boolean;
    }
  | {
      type: "continue";
      requestId: number;
      sequenceId: number;
      maxTokens: number;
      stream: boolean;
      aborted: boolean;
      confidence: boolean;
    }
  | { type: "abort"; requestId: number }
  | { type: "release"; sequenceId: number }
  | { type: "dispose" }
  /** Makes the worker throw outside any request, as a crash would (tests of the owner's recovery). */
  | { type: "crash" };

/** One scheduler event as it crosses the thread boundary. */
export type WireEvent =
  | {
      kind: "prefilled";
      requestId: number;
      /** The views' vectors concatenated in request order. */
      features: Float32Array;
      entropy: number | null;
      firstToken: number;
    }
  // Token and finished events cross as the scheduler emits them.
  | Extract<SchedulerEvent, { kind: "tokens" | "finished" }>
  | { kind: "failed"; requestId: number; error: WireError };

/** Worker → owner. */
export type WorkerReply =
  | { type: "ready"; info: EngineInfo }
  | { type: "open-failed"; error: WireError }
  | { type: "events"; events: WireEvent[] }
  | { type: "disposed" };

/** An error in a form that survives `postMessage` (class name, message, retryability). */
export function toWireError(error: unknown): WireError {
  if (error instanceof EngineCallError) {
    // The engine name is already in the message.
    return { name: error.name, message: error.message, isRetryable: error.isRetryable };
  }
  if (error instanceof Error) return { name: error.name, message: error.message };
  return { name: "Error", message: String(error) };
}

/** The routelmt error class a wire error came from (anything unexpected becomes an EngineCallError). */
export function fromWireError(error: WireError, engineName: string): RoutelmtError {
  switch (error.name) {
    case "UsageError":
      return new UsageError(error.message);
    case "InputError":
      return new InputError(error.message);
    case "UnsupportedError":
      return new UnsupportedError(error.message);
    case "EngineCallError":
      return new EngineCallError(engineName, error.message.replace(`${engineName}: `, ""), {
        isRetryable: error.isRetryable ?? false,
      });
    default:
      return new EngineCallError(engineName, `${error.name}: ${error.message}`, { isRetryable: false });
  }
}
