/** Helpers shared by the translation routes and the request log line. */
import type { FastifyReply, FastifyRequest } from "fastify";
import type { HybridTranslation } from "./hybrid-router.js";

/** Per-request routing facts for the request's log line. */
export const routingFacts = new WeakMap<FastifyRequest, HybridTranslation[]>();

/** Remembers what the request's translations were, for its log line. */
export function noteTranslations(request: FastifyRequest, results: HybridTranslation[]): void {
  routingFacts.set(request, results);
}

/**
 * The x-routelmt-* headers of a translation answer (comma lists for a batch, in item order), set
 * before the body so a streamed answer carries them too.
 */
export function setTranslationHeaders(
  reply: FastifyReply,
  results: HybridTranslation[],
  budget: number,
): void {
  reply.header("x-routelmt-model", results.map((result) => result.model).join(","));
  reply.header(
    "x-routelmt-predicted-gain",
    results
      .map((result) => (Number.isFinite(result.predictedGain) ? result.predictedGain.toFixed(4) : "nan"))
      .join(","),
  );
  reply.header("x-routelmt-budget", String(budget));
  reply.header("x-routelmt-fallback", results.map((result) => result.fallbackReason ?? "none").join(","));
}

/** Rounds milliseconds for JSON and logs. */
export function roundMs(milliseconds: number | undefined): number | undefined {
  return milliseconds === undefined ? undefined : Math.round(milliseconds * 100) / 100;
}
