/**
 * `POST /v1/translate`: `{text}` → one translation; `{texts}` → `{translations}` (batch allocation).
 * With `"stream": true` the answer is NDJSON, one event per line: `delta` events with the text of a
 * single translation as it decodes, then its `translation` event; for a batch, one `translation`
 * event per text as each is done (with its `index`). An `error` event ends a stream that failed
 * after its first event.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { RoutelmtServerState } from "../app.js";
import type { HybridTranslation, TranslationSource } from "../hybrid-router.js";
import {
  abortOnClientClose,
  noteTranslations,
  roundMs,
  StreamedBody,
  setTranslationHeaders,
} from "../reply-helpers.js";
import { parseTranslateBody, type TranslateInput } from "../request-validation.js";

/** The JSON object of one translation. */
export function translationJson(result: HybridTranslation) {
  return {
    translation: result.translation,
    model: result.model,
    predicted_gain: Number.isFinite(result.predictedGain) ? result.predictedGain : null,
    guarded: result.guarded,
    fallback: result.fallback,
    latency_ms: roundMs(result.latencyMs),
  };
}

function line(event: Record<string, unknown>): string {
  return `${JSON.stringify(event)}\n`;
}

async function streamTranslate(
  state: RoutelmtServerState,
  request: FastifyRequest,
  reply: FastifyReply,
  input: TranslateInput,
  signal: AbortSignal,
): Promise<FastifyReply> {
  const body = new StreamedBody(reply, "application/x-ndjson; charset=utf-8");
  const open = (sources: readonly TranslationSource[]) =>
    body.open(() => setTranslationHeaders(reply, sources, state.config.budget));
  try {
    if (input.batch) {
      // The headers give each text's decided model: they go out before the first text is done.
      let decided: readonly TranslationSource[] = [];
      const results = await state.hybrid.translateBatch(input.requests, undefined, {
        signal,
        onDecided: (sources) => {
          decided = sources;
        },
        onTranslation: (index, result) => {
          open(decided);
          body.write(line({ type: "translation", index, ...translationJson(result) }));
        },
      });
      noteTranslations(request, results);
    } else {
      const result = await state.hybrid.translate(input.requests[0]!, "text", {
        signal,
        onText: (delta, source) => {
          open([source]);
          body.write(line({ type: "delta", text: delta }));
        },
      });
      noteTranslations(request, [result]);
      open([result]);
      body.write(line({ type: "translation", ...translationJson(result) }));
    }
  } catch (error) {
    body.fail(error, request, (errorBody) => line({ type: "error", ...errorBody }));
    return reply;
  }
  body.end();
  return reply;
}

export function registerTranslateRoutes(app: FastifyInstance): void {
  app.post("/v1/translate", async (request, reply) => {
    const state = app.routelmt;
    const input = parseTranslateBody(request.body, state.limits);
    const signal = abortOnClientClose(reply, state.metrics);
    if (input.stream) return streamTranslate(state, request, reply, input, signal);
    const results = input.batch
      ? await state.hybrid.translateBatch(input.requests, undefined, { signal })
      : [await state.hybrid.translate(input.requests[0]!, "text", { signal })];
    noteTranslations(request, results);
    setTranslationHeaders(reply, results, state.config.budget);
    return input.batch ? { translations: results.map(translationJson) } : translationJson(results[0]!);
  });
}
