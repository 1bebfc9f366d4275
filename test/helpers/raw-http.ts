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

/**
 * Parses the response at the start of `received`: its head and as much of the body as Content-Length
 * says (or everything, without one), and how many bytes it took when complete.
 */
function parseResponse(received: Buffer): {
  response: Omit<RawResponse, "closedAfterMs" | "reset">;
  complete: boolean;
  size: number;
} {
  const headEnd = received.indexOf("\r\n\r\n");
  if (headEnd < 0) return { response: { status: 0, headers: {}, body: "" }, complete: false, size: 0 };
  const [statusLine = "", ...headerLines] = received.subarray(0, headEnd).toString("latin1").split("\r\n");
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? 0);
  const headers: Record<string, string> = {};
  for (const line of headerLines) {
    const colon = line.indexOf(":");
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const bodyBytes = received.subarray(headEnd + 4);
  const length = headers["content-length"] === undefined ? undefined : Number(headers["content-length"]);
  const complete = length !== undefined && bodyBytes.length >= length;
  const body = bodyBytes.subarray(0, length ?? bodyBytes.length).toString("utf8");
  return { response: { status, headers, body }, complete, size: headEnd + 4 + (length ?? bodyBytes.length) };
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

/** A kept-alive connection: write requests (pipelined if you like) and read their responses in order. */
export interface RawConnection {
  /** Writes a request (latin1 bytes). */
  write(request: string): void;
  /** The next response (status 0 if the connection closes before it is complete). */
  next(): Promise<Omit<RawResponse, "closedAfterMs" | "reset">>;
  close(): void;
}

export async function openConnection(origin: string): Promise<RawConnection> {
  const socket = connect(hostAndPort(origin));
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  let received = Buffer.alloc(0);
  let closed = false;
  let wake: (() => void) | undefined;
  socket.on("data", (chunk: Buffer) => {
    received = Buffer.concat([received, chunk]);
    wake?.();
  });
  socket.on("close", () => {
    closed = true;
    wake?.();
  });
  socket.on("error", () => {});
  return {
    write(request) {
      socket.write(Buffer.from(request, "latin1"));
    },
    next() {
      return new Promise((resolve) => {
        const check = () => {
          const { response, complete, size } = parseResponse(received);
          if (complete) received = received.subarray(size);
          if (complete || closed) {
            wake = undefined;
            resolve(complete ? response : { status: 0, headers: {}, body: "" });
          }
        };
        wake = check;
        check();
      });
    },
    close() {
      socket.destroy();
    },
  };
}
