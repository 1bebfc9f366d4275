/**
 * Errors the HTTP server answers with. Every error body is `{"error":{"code","message","field"}}`;
 * `field` names the offending request field (dot path, e.g. `texts.3`) or is null.
 */
import type { FastifyError } from "fastify";
import { z } from "zod";
import { RoutelmtError } from "../errors/index.js";

/** Error codes of the HTTP API with their HTTP statuses. */
export const SERVER_ERROR_STATUS = {
  /** Not valid HTTP: malformed request line or header, unknown method, CONNECT, undecodable path. */
  RLMT_ERR_MALFORMED_REQUEST: 400,
  /** The body is not JSON. */
  RLMT_ERR_MALFORMED_JSON: 400,
  /** The body is not valid UTF-8, or a string holds a lone surrogate. */
  RLMT_ERR_INVALID_UTF8: 400,
  /** A field is missing, has the wrong type, or an invalid value (empty text, unknown language, text too long). */
  RLMT_ERR_INVALID_REQUEST: 400,
  /** `Authorization: Bearer <key>` missing or not one of the configured keys. */
  RLMT_ERR_UNAUTHORIZED: 401,
  /** No such route, or a chat completion asked for a model other than `routelmt`. */
  RLMT_ERR_NOT_FOUND: 404,
  /** The path exists but not with this method (GET on a POST route); the `Allow` header lists the methods. */
  RLMT_ERR_METHOD_NOT_ALLOWED: 405,
  /** The request (headers and body) did not arrive within the request timeout; the connection is closed. */
  RLMT_ERR_REQUEST_TIMEOUT: 408,
  /** The whole body exceeds the server's body limit (checked before parsing). */
  RLMT_ERR_BODY_TOO_LARGE: 413,
  /** The body is not `application/json`, or not in UTF-8. */
  RLMT_ERR_UNSUPPORTED_MEDIA_TYPE: 415,
  /** The request headers exceed Node's header size limit; the connection is closed. */
  RLMT_ERR_HEADERS_TOO_LARGE: 431,
  /** The small engine's queue (in flight + waiting) is full; retry after `Retry-After` seconds. */
  RLMT_ERR_OVERLOADED: 429,
  /** The small engine failed: nothing can be translated without it. */
  RLMT_ERR_SMALL_ENGINE_UNAVAILABLE: 503,
  /** The server is shutting down: a new request while it drains, or one still running at the deadline. */
  RLMT_ERR_SHUTTING_DOWN: 503,
  /**
   * Only as the last event of a streamed answer: an engine failed after text was sent (the answer's
   * status, 200, had gone out with the first text).
   */
  RLMT_ERR_ENGINE_STREAM_FAILED: 502,
  /** A bug: the log line of the request has the details. */
  RLMT_ERR_INTERNAL: 500,
} as const;

export type ServerErrorCode = keyof typeof SERVER_ERROR_STATUS;

/** Every error body the server sends, as docs/http-api.md describes it. */
export const serverErrorBodySchema = z.strictObject({
  error: z.strictObject({
    code: z.enum(Object.keys(SERVER_ERROR_STATUS) as [ServerErrorCode, ...ServerErrorCode[]]),
    message: z.string().min(1),
    field: z.string().min(1).nullable(),
  }),
});

/** An error answered to the client as JSON with the status of its code. */
export class ServerError extends RoutelmtError {
  readonly status: number;
  readonly field: string | null;
  /** Seconds for a `Retry-After` header (429 and 503 answers). */
  readonly retryAfterSeconds: number | undefined;

  constructor(
    code: ServerErrorCode,
    message: string,
    details: { field?: string | null; retryAfterSeconds?: number; cause?: unknown } = {},
  ) {
    super(code, message, { cause: details.cause });
    this.status = SERVER_ERROR_STATUS[code];
    this.field = details.field ?? null;
    this.retryAfterSeconds = details.retryAfterSeconds;
  }

  /** The JSON body sent to the client. */
  toBody(): { error: { code: string; message: string; field: string | null } } {
    return { error: { code: this.code, message: this.message, field: this.field } };
  }
}

/**
 * The abort reason of a request whose client closed its connection: its engine calls stop, and
 * there is no one to answer.
 */
export class ClientClosedError extends RoutelmtError {
  constructor() {
    super("RLMT_ERR_CLIENT_CLOSED", "the client closed the connection before the answer was complete");
  }
}

/** A 400 about one request field. */
export function invalidField(field: string, message: string): ServerError {
  return new ServerError("RLMT_ERR_INVALID_REQUEST", `${field}: ${message}`, { field });
}

/** Maps anything thrown in a route or by fastify itself to the JSON error answered. */
export function toServerError(error: unknown): ServerError {
  if (error instanceof ServerError) return error;
  const code = (error as FastifyError | undefined)?.code;
  switch (code) {
    case "FST_ERR_CTP_BODY_TOO_LARGE":
      return new ServerError("RLMT_ERR_BODY_TOO_LARGE", "the request body is over the server's body limit");
    case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
    case "FST_ERR_CTP_INVALID_TYPE":
      return new ServerError(
        "RLMT_ERR_UNSUPPORTED_MEDIA_TYPE",
        "send the body as Content-Type: application/json",
        {
          field: "content-type",
        },
      );
    case "FST_ERR_CTP_EMPTY_JSON_BODY":
      return new ServerError("RLMT_ERR_MALFORMED_JSON", "the body is empty: send a JSON object");
    case "FST_ERR_CTP_INVALID_CONTENT_LENGTH":
      return new ServerError("RLMT_ERR_INVALID_REQUEST", "Content-Length does not match the body");
  }
  const status = (error as FastifyError).statusCode;
  if (status !== undefined && status >= 400 && status < 500) {
    return new ServerError("RLMT_ERR_INVALID_REQUEST", (error as Error).message);
  }
  return new ServerError("RLMT_ERR_INTERNAL", "internal error (see the server log)", { cause: error });
}
