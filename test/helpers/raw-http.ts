/**
 * HTTP/1.1 over a bare TCP socket, for requests no HTTP client would send: encoded or malformed
 * request lines, odd methods, oversized headers, bodies shorter than their Content-Length.
 */
import { connect } from "node:net";

/** The first response read from the socket, and what became of the connection. */
export interface RawResponse {
  /** 0 when the socket closed before a complete status line arrived. */
  status: number;
  /** Header names in lower case. */
  headers: Record<string, string>;
  body: string;
  /** Milliseconds from the first byte written until the server closed the connection (null: still open when we stopped). */
  closedAfterMs: number | null;
  /** Whether the connection ended with a reset rather than a clean close. */
  reset: boolean;
}

export interface RawRequestOptions {
  /** Give up waiting after this long (the socket is then destroyed). Defaults to 10 000 ms. */
  timeoutMs?: number;
  /** Resolve once a full response is read instead of waiting for the server to close. Defaults to false. */
  keepOpen?: boolean;
}

/** `host:port` of an `http://host:port` origin. */
function hostAndPort(origin: string): { host: string; port: number } {
  const url = new URL(origin);
  return { host: url.hostname, port: Number(url.port) };
}

/** Parses the head and as much of the body as Content-Length says (or everything, without one). */
function parseResponse(received: Buffer): {
  response: Omit<RawResponse, "closedAfterMs" | "reset">;
  complete: boolean;
} {
  const text = received.toString("latin1");
  const headEnd = text.indexOf("\r\n\r\n");
  if (headEnd < 0) return { response: { status: 0, headers: {}, body: "" }, complete: false };
  const [statusLine = "", ...headerLines] = text.slice(0, headEnd).split("\r\n");
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? 0);
  const headers: Record<string, string> = {};
  for (const line of headerLines) {
    const colon = line.indexOf(":");
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const bodyBytes = received.subarray(Buffer.byteLength(text.slice(0, headEnd + 4), "latin1"));
  const length = headers["content-length"] === undefined ? undefined : Number(headers["content-length"]);
  const complete = length !== undefined && bodyBytes.length >= length;
  const body = bodyBytes.subarray(0, length ?? bodyBytes.length).toString("utf8");
  return { response: { status, headers, body }, complete };
}

/**
 * Writes `chunks` to a new connection (a string chunk as latin1 bytes, so every byte value can be
 * sent; a number pauses that many milliseconds) and reads the first response.
 */
export function rawRequest(
  origin: string,
  chunks: ReadonlyArray<string | Uint8Array | number>,
  options: RawRequestOptions = {},
): Promise<RawResponse> {
  const { host, port } = hostAndPort(origin);
  const timeoutMs = options.timeoutMs ?? 10_000;
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const received: Buffer[] = [];
    let started = 0;
    let reset = false;
    let settled = false;
    const finish = (closedAfterMs: number | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      const { response } = parseResponse(Buffer.concat(received));
      resolve({ ...response, closedAfterMs, reset });
      socket.destroy();
    };
    const timer = setTimeout(() => finish(null), timeoutMs);
    socket.on("data", (chunk: Buffer) => {
      received.push(chunk);
      if (options.keepOpen && parseResponse(Buffer.concat(received)).complete) finish(null);
    });
    socket.on("error", (error: NodeJS.ErrnoException) => {
      if (error.code === "ECONNRESET" || error.code === "EPIPE") reset = true;
    });
    socket.on("close", () => finish(performance.now() - started));
    socket.on("connect", async () => {
      started = performance.now();
      for (const chunk of chunks) {
        if (socket.destroyed) return;
        if (typeof chunk === "number") await new Promise((wait) => setTimeout(wait, chunk));
        else socket.write(typeof chunk === "string" ? Buffer.from(chunk, "latin1") : chunk);
      }
    });
  });
}

/** A complete request with `Connection: close`: method, raw request-target, headers and an optional body. */
export function requestText(
  method: string,
  target: string,
  headers: Record<string, string> = {},
  body = "",
): string {
  const bodyBytes = Buffer.from(body, "utf8");
  const lines = [`${method} ${target} HTTP/1.1`, "Host: 127.0.0.1", "Connection: close"];
  for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);
  if (body !== "" || method === "POST") lines.push(`Content-Length: ${bodyBytes.length}`);
  return `${lines.join("\r\n")}\r\n\r\n${bodyBytes.toString("latin1")}`;
}
