import http from "node:http";
import https from "node:https";
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

/** Keep-alive connections shared by every call: engines are called again and again. */
const agents = {
  "http:": new http.Agent({ keepAlive: true }),
  "https:": new https.Agent({ keepAlive: true }),
};

/** Parsed engine URLs: a server calls the same few URLs for every request. */
const parsedUrls = new Map<string, URL>();
const PARSED_URL_LIMIT = 256;

function parsedUrl(text: string): URL {
  let url = parsedUrls.get(text);
  if (url === undefined) {
    url = new URL(text);
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw new TypeError(`unsupported protocol ${url.protocol}`);
    }
    if (parsedUrls.size >= PARSED_URL_LIMIT) parsedUrls.clear();
    parsedUrls.set(text, url);
  }
  return url;
}

/** An answer as received: status, body text, and a Retry-After in milliseconds if one was sent. */
interface RawAnswer {
  status: number;
  text: string;
  retryAfterMs: number | undefined;
}

/**
 * POSTs `body` as JSON and returns the parsed JSON answer. Failures become engine errors naming
 * `engine`: a timeout → {@link EngineTimeoutError}; a network failure (refused, reset, closed
 * socket) → retryable {@link EngineCallError} without status; a non-2xx answer → {@link EngineCallError}
 * with the status, a body snippet and Retry-After; a 2xx body that is not JSON → non-retryable
 * {@link EngineCallError}. An abort of the caller's `signal` rejects with the signal's reason.
 *
 * Built on `node:http` with keep-alive agents rather than `fetch`: on a server's hot path, where
 * every request makes two engine calls, fetch's streams cost several times the CPU of the call
 * itself (about 0.4 ms against 0.1 ms a call here); and `end(payload)` sends the head and the body
 * in one write.
 */
export async function postJson(request: PostJsonRequest): Promise<unknown> {
  const { status, text, retryAfterMs } = await send(request, JSON.stringify(request.body));
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

/** One POST: resolves with the whole answer, or rejects with a timeout, network or abort error. */
function send(request: PostJsonRequest, payload: string): Promise<RawAnswer> {
  const { signal } = request;
  return new Promise<RawAnswer>((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    let timedOut = false;
    let settled = false;
    let outgoing: http.ClientRequest | undefined;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const onAbort = () => {
      outgoing?.destroy();
      settle(signal!.reason);
    };
    const settle = (error: unknown, answer?: RawAnswer) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      if (error === null) resolve(answer!);
      else reject(error);
    };
    const networkFailure = (cause: unknown) => {
      if (signal?.aborted) return settle(signal.reason);
      if (timedOut) return settle(new EngineTimeoutError(request.engine, request.timeoutMs, { cause }));
      settle(
        new EngineCallError(request.engine, `POST ${request.url} failed: ${describeNetworkError(cause)}`, {
          cause,
        }),
      );
    };
    let url: URL;
    try {
      url = parsedUrl(request.url);
    } catch (error) {
      networkFailure(error);
      return;
    }
    outgoing = (url.protocol === "https:" ? https : http).request(
      url,
      {
        method: "POST",
        agent: agents[url.protocol as "http:" | "https:"],
        headers: {
          "content-type": "application/json",
          accept: "application/json",
          "content-length": Buffer.byteLength(payload),
          ...request.headers,
        },
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("end", () =>
          settle(null, {
            status: response.statusCode ?? 0,
            text: Buffer.concat(chunks).toString("utf8"),
            retryAfterMs: parseRetryAfterMs(response.headers["retry-after"]),
          }),
        );
        response.on("error", networkFailure);
        // A connection closed mid-body ends the answer without "end".
        response.on("close", () => {
          if (!response.complete) networkFailure(new Error("the connection closed before the whole answer"));
        });
      },
    );
    outgoing.on("error", networkFailure);
    // Covers connecting, the answer's head and its whole body, like the caller's deadline.
    timer = setTimeout(() => {
      timedOut = true;
      outgoing?.destroy(new Error(`no answer within ${request.timeoutMs} ms`));
    }, request.timeoutMs);
    signal?.addEventListener("abort", onAbort, { once: true });
    outgoing.end(payload);
  });
}

/** A network failure's message, with its system code when it has one (`ECONNREFUSED: connect …`). */
function describeNetworkError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const code = (error as Error & { code?: unknown }).code;
  return typeof code === "string" && !error.message.includes(code)
    ? `${code}: ${error.message}`
    : error.message;
}
