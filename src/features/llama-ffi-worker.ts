/**
 * The FFI engine's worker thread: it loads the model, runs the {@link DecodeScheduler} one step per
 * turn of its own event loop (so abort, release and new requests are taken between two decodes) and
 * posts each step's events to its owner. All llama.cpp calls, and the eval callback, run on this thread.
 * @internal
 * @module
 */
import { parentPort, workerData } from "node:worker_threads";
import { UsageError } from "../errors/index.js";
import { DecodeScheduler, type SchedulerEvent } from "./decode-scheduler.js";
import { LlamaFfiEngine } from "./llama-ffi-engine.js";
import {
  type EngineInfo,
  toWireError,
  type WireEvent,
  type WorkerOpenOptions,
  type WorkerReply,
  type WorkerRequest,
} from "./llama-ffi-protocol.js";

function concatenate(parts: readonly Float32Array[]): Float32Array {
  const joined = new Float32Array(parts.reduce((total, part) => total + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    joined.set(part, offset);
    offset += part.length;
  }
  return joined;
}

function toWireEvent(event: SchedulerEvent): WireEvent {
  switch (event.kind) {
    case "prefilled":
      return { ...event, features: concatenate(event.features) };
    case "failed":
      return { kind: "failed", requestId: event.requestId, error: toWireError(event.error) };
    default:
      return event;
  }
}

async function main(): Promise<void> {
  const port = parentPort;
  if (port === null) throw new Error("llama-ffi-worker must run in a worker thread");
  const post = (reply: WorkerReply, transfer: ArrayBuffer[] = []) => port.postMessage(reply, transfer);
  const options = workerData as WorkerOpenOptions;

  let engine: LlamaFfiEngine;
  try {
    engine = await LlamaFfiEngine.open(options);
  } catch (error) {
    post({ type: "open-failed", error: toWireError(error) });
    return;
  }
  const scheduler = new DecodeScheduler(engine);
  let disposed = false;
  let stepQueued = false;

  const flush = () => {
    const events = scheduler.takeEvents().map(toWireEvent);
    if (events.length === 0) return;
    const transfer = events.flatMap((event) =>
      event.kind === "prefilled" ? [event.features.buffer as ArrayBuffer] : [],
    );
    post({ type: "events", events }, transfer);
  };
  // One step per event-loop turn: messages that arrived during a decode are handled before the next one.
  const pump = () => {
    if (stepQueued || disposed || !scheduler.hasWork()) return;
    stepQueued = true;
    setImmediate(() => {
      stepQueued = false;
      if (disposed) return;
      scheduler.step();
      flush();
      pump();
    });
  };

  port.on("message", (request: WorkerRequest) => {
    if (disposed) return;
    try {
      switch (request.type) {
        case "prefill":
          scheduler.prefill(request.requestId, request.sequenceId, request.tokens, {
            views: request.views,
            entropy: request.entropy,
          });
          break;
        case "translate":
          scheduler.translate(request, request.tokens);
          break;
        case "continue":
          scheduler.continueFrom(request);
          break;
        case "abort":
          scheduler.abort(request.requestId);
          break;
        case "release":
          scheduler.release(request.sequenceId);
          break;
        case "dispose":
          disposed = true;
          scheduler.failAll(
            new UsageError("the llama FFI engine was disposed while this request was in flight"),
          );
          flush();
          engine.dispose();
          post({ type: "disposed" });
          port.close();
          return;
        case "crash":
          setImmediate(() => {
            throw new Error("llama-ffi worker: crash requested");
          });
          return;
      }
    } catch (error) {
      const requestId = "requestId" in request ? request.requestId : undefined;
      if (requestId === undefined) throw error;
      post({ type: "events", events: [{ kind: "failed", requestId, error: toWireError(error) }] });
    }
    flush();
    pump();
  });

  const info: EngineInfo = {
    architecture: engine.architecture,
    layerCount: engine.layerCount,
    embeddingSize: engine.embeddingSize,
    outputEmbeddingSize: engine.outputEmbeddingSize,
    vocabularySize: engine.vocabularySize,
    contextSize: engine.contextSize,
    sequences: engine.sequences,
    batchCapacity: engine.batchCapacity,
  };
  post({ type: "ready", info });
}

await main();
