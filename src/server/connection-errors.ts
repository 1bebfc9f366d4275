/**
 * Answers to what never reaches a route: requests Node's HTTP parser rejects (malformed request
 * line, unknown method, oversized headers), requests not received within the request timeout,
 * CONNECT (which Node hands to no route), and URLs the router cannot decode. Each gets the
 * documented JSON error with `Connection: close`, so a keep-alive client knows not to reuse the
 * connection, and the connection is closed gently: a close with unread input would be a TCP reset,
 * which can make the client lose the answer it has not read yet.
 */
import { STATUS_CODES } from "node:http";
import type { Socket } from "node:net";
import type { FastifyBaseLogger } from "fastify";
import { ServerError } from "./errors.js";

/** How long a closing connection keeps reading (and dropping) what the client still sends. */
const LINGER_MS = 1000;

/** Connections already answered: a parser in error reports every further chunk again. */
const answered = new WeakSet<Socket>();

/** The answer to a connection-level error, by Node's error code. */
export function connectionErrorAnswer(code: string | undefined): ServerError {
  switch (code) {
    case "ERR_HTTP_REQUEST_TIMEOUT":
      return new ServerError(
        "RLMT_ERR_REQUEST_TIMEOUT",
        "the request (headers and body) did not arrive within the server's request timeout",
      );
    case "HPE_HEADER_OVERFLOW":
      return new ServerError("RLMT_ERR_HEADERS_TOO_LARGE", "the request headers are over the server's limit");
    case "HPE_CHUNK_EXTENSIONS_OVERFLOW":
      return new ServerError(
        "RLMT_ERR_BODY_TOO_LARGE",
        "the chunk extensions of the body are over the limit",
      );
    case "HPE_INVALID_METHOD":
      return new ServerError("RLMT_ERR_MALFORMED_REQUEST", "unknown HTTP method");
    default:
      return new ServerError(
        "RLMT_ERR_MALFORMED_REQUEST",
        "the request is not valid HTTP/1.1 (request line, header or body framing)",
      );
  }
}

/** The raw HTTP/1.1 response of an error, closing the connection. */
export function rawErrorResponse(answer: ServerError): string {
  const body = JSON.stringify(answer.toBody());
  return [
    `HTTP/1.1 ${answer.status} ${STATUS_CODES[answer.status] ?? ""}`,
    "Content-Type: application/json; charset=utf-8",
    `Content-Length: ${Buffer.byteLength(body)}`,
    "Connection: close",
    "",
    body,
  ].join("\r\n");
}

/**
 * Writes the answer unless a response already started on this connection (bytes of another answer
 * must not be corrupted), ends the connection, and drops input until the client closes or
 * LINGER_MS passes.
 */
export function answerAndClose(socket: Socket, answer: ServerError): void {
  if (answered.has(socket)) return;
  answered.add(socket);
  const inFlight = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (!socket.writable || inFlight?.headersSent === true) {
    socket.destroy();
    return;
  }
  socket.end(rawErrorResponse(answer));
  socket.resume();
  const linger = setTimeout(() => socket.destroy(), LINGER_MS);
  linger.unref();
  socket.once("close", () => clearTimeout(linger));
}

/**
 * fastify's `clientErrorHandler`: answers Node's parser errors and request timeouts. Logs the code
 * only: Node's error carries the raw bytes of the request, `Authorization` header included.
 */
export function handleClientError(
  log: FastifyBaseLogger,
  error: Error & { code?: string },
  socket: Socket,
): void {
  // A reset connection is gone, and an answered one only reports its own close: nothing to answer.
  if (error.code === "ECONNRESET" || socket.destroyed || answered.has(socket)) return;
  const answer = connectionErrorAnswer(error.code);
  log.debug({ code: error.code, status: answer.status }, "connection error");
  answerAndClose(socket, answer);
}
