import type { FastifyInstance } from "fastify";
import type { HybridTranslation } from "../hybrid-router.js";
import { noteTranslations, roundMs, setTranslationHeaders } from "../reply-helpers.js";
import { parseTranslateBody } from "../request-validation.js";

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

/** `POST /v1/translate`: `{text}` → one translation; `{texts}` → `{translations}` (batch allocation). */
export function registerTranslateRoutes(app: FastifyInstance): void {
  app.post("/v1/translate", async (request, reply) => {
    const state = app.routelmt;
    const input = parseTranslateBody(request.body, state.limits);
    const results = input.batch
      ? await state.hybrid.translateBatch(input.requests)
      : [await state.hybrid.translate(input.requests[0]!)];
    noteTranslations(request, results);
    setTranslationHeaders(reply, results, state.config.budget);
    return input.batch ? { translations: results.map(translationJson) } : translationJson(results[0]!);
  });
}
