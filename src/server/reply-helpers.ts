/** Helpers shared by the translation routes and the request log line. */
import { PassThrough } from "node:stream";
import type { FastifyReply, FastifyRequest } from "fastify";
import { ClientClosedError, type ServerError, toServerError } from "./errors.js";
import type { HybridTranslation, TranslationSource } from "./hybrid-router.js";
import type { ServerMetrics } from "./metrics.js";

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
  sources: readonly Pick<TranslationSource, "model" | "predictedGain" | "fallbackReason">[],
  budget: number,
): void {
  let models = "";
  let gains = "";
  let fallbacks = "";
  for (const [index, source] of sources.entries()) {
    const separator = index === 0 ? "" : ",";
    models += separator + source.model;
    gains += separator + (Number.isFinite(source.predictedGain) ? source.predictedGain.toFixed(4) : "nan");
    fallbacks += separator + (source.fallbackReason ?? "none");
  }
  reply.header("x-routelmt-model", models);
  reply.header("x-routelmt-predicted-gain", gains);
  reply.header("x-routelmt-budget", String(budget));
  reply.header("x-routelmt-fallback", fallbacks);
}

/** Rounds milliseconds for JSON and logs. */
export function roundMs(milliseconds: number | undefined): number | undefined {
  return milliseconds === undefined ? undefined : Math.round(milliseconds * 100) / 100;
}

/**
 * A signal that aborts the request's engine calls when its client closes the connection before the
 * answer is complete (counted in `routelmt_client_disconnects_total`).
 */
export function abortOnClientClose(reply: FastifyReply, metrics: ServerMetrics): AbortSignal {
  const controller = new AbortController();
  reply.raw.once("close", () => {
    if (reply.raw.writableFinished) return;
    metrics.clientDisconnects.inc();
    controller.abort(new ClientClosedError());
  });
  return controller.signal;
}

/**
 * The body of a streamed answer, whose status line and headers go out with its first event: until
 * then an error is still answered as an ordinary JSON error, with its own status.
 */
export class StreamedBody {
  readonly #reply: FastifyReply;
  readonly #contentType: string;
  #body: PassThrough | undefined;

  constructor(reply: FastifyReply, contentType: string) {
    this.#reply = reply;
    this.#contentType = contentType;
  }

  /**
   * Sends the status and headers (set by `setHeaders`, called only now) with `first`, the stream's
   * opening event, if any; does nothing once open.
   */
  open(setHeaders: () => void, first?: string): void {
    if (this.#body !== undefined) return;
    setHeaders();
    this.#reply.header("content-type", this.#contentType);
    this.#reply.header("cache-control", "no-cache");
    this.#body = new PassThrough();
    this.#reply.send(this.#body);
    if (first !== undefined) this.#body.write(first);
  }

  /** Writes an event; a client that went away has already stopped the engine calls, so it is dropped. */
  write(event: string): void {
    if (this.#body?.writable) this.#body.write(event);
  }

  /** Writes the last event (if any) and ends the body. */
  end(last = ""): void {
    if (this.#body?.writable) this.#body.end(last);
  }

  /**
   * Ends an opened stream with `formatError(error body)` as its last event, logging why; before
   * the stream opened, rethrows for the ordinary error answer.
   */
  fail(
    error: unknown,
    request: FastifyRequest,
    formatError: (body: ReturnType<ServerError["toBody"]>) => string,
  ): void {
    if (this.#body === undefined) throw error;
    if (error instanceof ClientClosedError) return;
    const answer = toServerError(error);
    request.log.warn({ err: error }, "streamed answer ended by an error");
    this.end(formatError(answer.toBody()));
  }
}
