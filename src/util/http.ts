import { EngineCallError, EngineTimeoutError } from "../errors/index.js";

/** How much of an error body we quote in messages: enough to read a server's reason, not a whole page. */
const BODY_SNIPPET_CHARS = 300;

/**
 * Milliseconds to wait from a Retry-After header: either delay-seconds (`120`; a decimal such as
 * `0.5` is accepted too, as some servers send one) or an HTTP-date, counted from `nowMs`. A date in
 * the past gives 0. Returns undefined when the header is absent or unreadable.
 */
export function parseRetryAfterMs(
  header: string | null | undefined,
  nowMs: number = Date.now(),
): number | undefined {
  if (header === null || header === undefined) return undefined;
  const value = header.trim();
  if (value === "") return undefined;
  if (/^\d+(\.\d+)?$/.test(value)) return Math.round(Number(value) * 1000);
  // Date.parse is lenient (it reads "-5" as a year), so only a value naming a day or month counts as a date.
  if (!/[A-Za-z]/.test(value)) return undefined;
  const dateMs = Date.parse(value);
  if (Number.isNaN(dateMs)) return undefined;
  return Math.max(0, dateMs - nowMs);
}

/** Shortens a body for an error message. */
export function bodySnippet(body: string): string {
  const oneLine = body.replace(/\s+/g, " ").trim();
  return oneLine.length > BODY_SNIPPET_CHARS ? `${oneLine.slice(0, BODY_SNIPPET_CHARS)}…` : oneLine;
}

export interface PostJsonRequest {
  /** Names the engine or service in every error (e.g. `openai:http://host/v1#model`). */
  engine: string;
  url: string;
  body: unknown;
  headers?: Record<string, string>;
  /** Per-request timeout covering connect, headers and body. */
  timeoutMs: number;
  /** The caller's cancellation; its abort is rethrown as its own reason, not as an engine error. */
  signal?: AbortSignal;
}

/**
 * POSTs `body` as JSON and returns the parsed JSON answer. Failures become engine errors naming
 * `engine`: a timeout → {@link EngineTimeoutError}; a network failure (refused, reset, closed
 * socket) → retryable {@link EngineCallError} without status; a non-2xx answer → {@link EngineCallError}
 * with the status, a body snippet and Retry-After; a 2xx body that is not JSON → non-retryable
 * {@link EngineCallError}. An abort of the caller's `signal` rejects with the signal's reason.
 */
export async function postJson(request: PostJsonRequest): Promise<unknown> {
  const timeoutSignal = AbortSignal.timeout(request.timeoutMs);
  const signal = request.signal ? AbortSignal.any([request.signal, timeoutSignal]) : timeoutSignal;
  let status: number;
  let text: string;
  let retryAfterMs: number | undefined;
  try {
    const response = await fetch(request.url, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json", ...request.headers },
      body: JSON.stringify(request.body),
      signal,
    });
    status = response.status;
    retryAfterMs = parseRetryAfterMs(response.headers.get("retry-after"));
    // Reading the body stays under the same signal, so a server that stalls mid-body also times out.
    text = await response.text();
  } catch (error) {
    if (request.signal?.aborted) throw request.signal.reason;
    if (timeoutSignal.aborted)
      throw new EngineTimeoutError(request.engine, request.timeoutMs, { cause: error });
    throw new EngineCallError(request.engine, `POST ${request.url} failed: ${describeNetworkError(error)}`, {
      cause: error,
    });
  }
  if (status < 200 || status > 299) {
    const snippet = bodySnippet(text);
    throw new EngineCallError(
      request.engine,
      `HTTP ${status} from POST ${request.url}${snippet ? `: ${snippet}` : ""}`,
      { status, retryAfterMs },
    );
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new EngineCallError(
      request.engine,
      `malformed JSON from POST ${request.url} (HTTP ${status}): ${bodySnippet(text) || "(empty body)"}`,
      { status, isRetryable: false, cause: error },
    );
  }
}

/** fetch reports every network failure as `TypeError: fetch failed`; the useful part is in `cause`. */
function describeNetworkError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause;
  if (cause instanceof Error) {
    const code = (cause as Error & { code?: unknown }).code;
    return `${error.message} (${typeof code === "string" ? `${code}: ` : ""}${cause.message})`;
  }
  return error.message;
}
