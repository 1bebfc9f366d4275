/**
 * A real HTTP server on 127.0.0.1 (random port) that speaks enough of the OpenAI API for tests of
 * remote translators, metrics and our own server:
 *
 * - `POST /v1/chat/completions` (plain JSON, or SSE chunks when `stream: true`: one per word),
 * - `POST /v1/completions` (plain JSON, or SSE when `stream: true`),
 * - `POST /v1/embeddings` (one deterministic vector per input; base64 float32 with
 *   `encoding_format: "base64"`),
 * - `GET /v1/models`,
 * - `POST /score`: a COMET-style metric service, `{"items":[{src,mt,ref}]}` → `{"scores":[...]}`.
 *
 * What each request gets is scripted with a {@link FakeBehaviour}; every request is recorded.
 * Successful answers are deterministic functions of the input (see {@link fakeTranslate}), so tests
 * can assert exact outputs.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** What the server does with one request. */
export type FakeAction =
  /**
   * Answer normally, after `delayMs` (default 0); a completion then takes `tokenDelayMs` (default 0)
   * per word more — streamed, before each word's chunk; plain, before the whole answer.
   */
  | { kind: "succeed"; delayMs?: number; tokenDelayMs?: number }
  /**
   * A streamed completion that breaks after `afterTokens` word chunks (each after `tokenDelayMs`):
   * the socket is destroyed (`close-socket`, the default) or an OpenAI error event ends the stream
   * (`error-event`). A plain request gets a 500.
   */
  | { kind: "stream-fail"; afterTokens: number; tokenDelayMs?: number; how?: "close-socket" | "error-event" }
  /** Answer with an error status, e.g. 429 with `retryAfter: "1"` or 500. */
  | { kind: "fail"; status: number; retryAfter?: string; body?: string }
  /** Never answer (the socket stays open until the client gives up or the server closes). */
  | { kind: "hang" }
  /** Answer 200 with a body that is not JSON. */
  | { kind: "malformed" }
  /** Answer with this JSON body (use it for wrong shapes), status 200 unless given. */
  | { kind: "json"; body: unknown; status?: number }
  /** Destroy the socket without answering. */
  | { kind: "close-socket" };

/**
 * A single action for every request; a script consumed one action per request (the last one repeats);
 * or a function of the request.
 */
export type FakeBehaviour = FakeAction | FakeAction[] | ((request: FakeRequest) => FakeAction);

/** A request as the server received it. */
export interface FakeRequest {
  method: string;
  /** Path without query, e.g. `/v1/chat/completions`. */
  path: string;
  headers: Record<string, string | string[] | undefined>;
  /** Parsed JSON body, or the raw text when it was not JSON, or undefined when empty. */
  body: unknown;
  /** 0-based arrival index. */
  index: number;
}

export interface FakeOpenAIServerOptions {
  /** Defaults to `{ kind: "succeed" }`. */
  behaviour?: FakeBehaviour;
  /** Tag put in front of translations: `[<label>] <text>`. Defaults to `large`. */
  label?: string;
  /** Length of embedding vectors. Defaults to 8. */
  embeddingDim?: number;
  /** Model ids listed by `/v1/models`. Defaults to `["large"]`. */
  models?: string[];
  /** Whether answers carry `usage`. Defaults to true. */
  includeUsage?: boolean;
  /** Score of one `/score` item. Defaults to the length of `mt` in characters. */
  score?: (item: { src?: string; mt?: string; ref?: string }) => number;
  /**
   * Whitespace around every completion, as models emit it (a leading space token, a trailing
   * newline), streamed as chunks of their own. Defaults to none.
   */
  padding?: { leading: string; trailing: string };
}

export interface FakeOpenAIServer {
  /** Base URL including `/v1`, e.g. `http://127.0.0.1:41234/v1`. */
  url: string;
  /** Origin without path, e.g. `http://127.0.0.1:41234` (for `/score`). */
  origin: string;
  /** Every request received so far, in arrival order (a live array). */
  requests: FakeRequest[];
  /** Requests being handled right now. */
  readonly inFlight: number;
  /** The largest `inFlight` seen since start or the last `setBehaviour`. */
  readonly maxInFlight: number;
  /** Replaces the behaviour, restarts its script and the in-flight maximum, and clears `requests`. */
  setBehaviour(behaviour: FakeBehaviour): void;
  /** Stops listening and drops every open connection (hanging requests included). */
  close(): Promise<void>;
}

/** Text after the last blank line: where the default prompt puts the source text. */
export function lastParagraph(text: string): string {
  const parts = text.split(/\n\s*\n/);
  return (parts[parts.length - 1] ?? "").trim();
}

/** The fake's translation of a prompt: `[<label>] <last paragraph of the prompt>`. */
export function fakeTranslate(prompt: string, label = "large"): string {
  return `[${label}] ${lastParagraph(prompt)}`;
}

/** The fake's embedding of a text: a deterministic vector in [-0.5, 0.5) of length `dim`. */
export function fakeEmbedding(text: string, dim: number): number[] {
  let hash = 2166136261;
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 16777619) >>> 0;
  return Array.from(
    { length: dim },
    (_, i) => (((hash + Math.imul(i + 1, 2654435761)) >>> 0) % 1000) / 1000 - 0.5,
  );
}

/** Whitespace-separated words, the fake's notion of tokens. */
function words(text: string): string[] {
  return text.split(/\s+/).filter((word) => word !== "");
}

/** Starts the fake server; always `close()` it (e.g. in `afterAll`). */
export async function startFakeOpenAIServer(
  options: FakeOpenAIServerOptions = {},
): Promise<FakeOpenAIServer> {
  const label = options.label ?? "large";
  const embeddingDim = options.embeddingDim ?? 8;
  const models = options.models ?? ["large"];
  const includeUsage = options.includeUsage ?? true;
  const score = options.score ?? ((item: { mt?: string }) => (item.mt ?? "").length);
  const padding = options.padding ?? { leading: "", trailing: "" };
  let behaviour: FakeBehaviour = options.behaviour ?? { kind: "succeed" };
  let scriptPosition = 0;
  let inFlight = 0;
  let maxInFlight = 0;
  const requests: FakeRequest[] = [];

  const nextAction = (request: FakeRequest): FakeAction => {
    if (typeof behaviour === "function") return behaviour(request);
    if (!Array.isArray(behaviour)) return behaviour;
    const action = behaviour[Math.min(scriptPosition, behaviour.length - 1)];
    scriptPosition++;
    return action ?? { kind: "succeed" };
  };

  const server = createServer((incoming, response) => {
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    let finished = false;
    const done = () => {
      if (finished) return;
      finished = true;
      inFlight--;
    };
    response.on("close", done);
    void handle(incoming, response).catch((error: unknown) => {
      if (!response.headersSent) sendJson(response, 500, { error: { message: String(error) } });
    });
  });

  const handle = async (incoming: IncomingMessage, response: ServerResponse): Promise<void> => {
    const raw = await readBody(incoming);
    let body: unknown;
    if (raw !== "") {
      try {
        body = JSON.parse(raw);
      } catch {
        body = raw;
      }
    }
    const request: FakeRequest = {
      method: incoming.method ?? "GET",
      path: (incoming.url ?? "/").split("?")[0] ?? "/",
      headers: incoming.headers,
      body,
      index: requests.length,
    };
    requests.push(request);
    const action = nextAction(request);
    switch (action.kind) {
      case "hang":
        return;
      case "close-socket":
        incoming.socket.destroy();
        return;
      case "malformed":
        response.writeHead(200, { "content-type": "application/json" });
        response.end('{"choices": [ {"message": ');
        return;
      case "json":
        sendJson(response, action.status ?? 200, action.body);
        return;
      case "fail": {
        const headers: Record<string, string> = { "content-type": "application/json" };
        if (action.retryAfter !== undefined) headers["retry-after"] = action.retryAfter;
        response.writeHead(action.status, headers);
        response.end(
          action.body ?? JSON.stringify({ error: { message: `scripted failure ${action.status}` } }),
        );
        return;
      }
      case "succeed":
      case "stream-fail":
        if (action.kind === "succeed" && action.delayMs) await sleep(action.delayMs);
        if (response.destroyed) return;
        await answer(request, response, action);
        return;
    }
  };

  const answer = async (
    request: FakeRequest,
    response: ServerResponse,
    action: Extract<FakeAction, { kind: "succeed" | "stream-fail" }>,
  ): Promise<void> => {
    const body = (typeof request.body === "object" && request.body !== null ? request.body : {}) as Record<
      string,
      unknown
    >;
    const model = typeof body.model === "string" ? body.model : (models[0] ?? "large");
    const maxTokens = typeof body.max_tokens === "number" ? body.max_tokens : Number.POSITIVE_INFINITY;
    const route = `${request.method} ${request.path}`;
    if (route === "GET /v1/models") {
      sendJson(response, 200, {
        object: "list",
        data: models.map((id) => ({ id, object: "model", created: 0, owned_by: "fake" })),
      });
      return;
    }
    if (route === "POST /v1/chat/completions" || route === "POST /v1/completions") {
      const chat = route === "POST /v1/chat/completions";
      const prompt = chat
        ? lastUserMessage(body.messages)
        : typeof body.prompt === "string"
          ? body.prompt
          : "";
      const full = words(fakeTranslate(prompt, label));
      const kept = full.slice(0, Math.min(full.length, maxTokens));
      const text = `${padding.leading}${kept.join(" ")}${padding.trailing}`;
      const finishReason = kept.length < full.length ? "length" : "stop";
      const usage = { prompt_tokens: words(prompt).length, completion_tokens: kept.length };
      const id = `fake-${request.index}`;
      const tokenDelayMs = action.tokenDelayMs ?? 0;
      if (body.stream === true) {
        // Like OpenAI, streamed answers carry usage only when `stream_options.include_usage` asks for it.
        const streamOptions = body.stream_options as { include_usage?: unknown } | undefined;
        const wantsUsage = includeUsage && streamOptions?.include_usage === true;
        const pieces = kept.map((word, position) => (position === 0 ? word : ` ${word}`));
        if (padding.leading) pieces.unshift(padding.leading);
        if (padding.trailing) pieces.push(padding.trailing);
        await sendStream(response, {
          id,
          model,
          chat,
          pieces,
          finishReason,
          usage: wantsUsage ? usage : undefined,
          tokenDelayMs,
          failAfter: action.kind === "stream-fail" ? action : undefined,
        });
        return;
      }
      if (action.kind === "stream-fail") {
        sendJson(response, 500, { error: { message: "scripted stream failure" } });
        return;
      }
      if (tokenDelayMs > 0) await sleep(tokenDelayMs * kept.length);
      if (response.destroyed) return;
      const choice = chat
        ? { index: 0, message: { role: "assistant", content: text }, finish_reason: finishReason }
        : { index: 0, text, finish_reason: finishReason };
      sendJson(response, 200, {
        id,
        object: chat ? "chat.completion" : "text_completion",
        created: 0,
        model,
        choices: [choice],
        ...(includeUsage
          ? { usage: { ...usage, total_tokens: usage.prompt_tokens + usage.completion_tokens } }
          : {}),
      });
      return;
    }
    if (route === "POST /v1/embeddings") {
      const inputs = Array.isArray(body.input) ? body.input.map(String) : [String(body.input ?? "")];
      const promptTokens = inputs.reduce((sum, input) => sum + words(input).length, 0);
      sendJson(response, 200, {
        object: "list",
        model,
        data: inputs.map((input, index) => ({
          object: "embedding",
          index,
          embedding:
            body.encoding_format === "base64"
              ? Buffer.from(Float32Array.from(fakeEmbedding(input, embeddingDim)).buffer).toString("base64")
              : fakeEmbedding(input, embeddingDim),
        })),
        ...(includeUsage ? { usage: { prompt_tokens: promptTokens, total_tokens: promptTokens } } : {}),
      });
      return;
    }
    if (route === "POST /score") {
      const items = Array.isArray(body.items)
        ? (body.items as Array<{ src?: string; mt?: string; ref?: string }>)
        : [];
      sendJson(response, 200, { scores: items.map((item) => score(item)) });
      return;
    }
    sendJson(response, 404, { error: { message: `no route ${route}` } });
  };

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const origin = `http://127.0.0.1:${port}`;

  return {
    url: `${origin}/v1`,
    origin,
    requests,
    get inFlight() {
      return inFlight;
    },
    get maxInFlight() {
      return maxInFlight;
    },
    setBehaviour(next: FakeBehaviour) {
      behaviour = next;
      scriptPosition = 0;
      maxInFlight = inFlight;
      requests.length = 0;
    },
    close() {
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

function lastUserMessage(messages: unknown): string {
  if (!Array.isArray(messages)) return "";
  for (let i = messages.length - 1; i >= 0; i--) {
    const message = messages[i] as { role?: unknown; content?: unknown } | undefined;
    if (message?.role === "user" && typeof message.content === "string") return message.content;
  }
  return "";
}

function readBody(incoming: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    incoming.on("data", (chunk: Buffer) => chunks.push(chunk));
    incoming.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    incoming.on("error", reject);
  });
}

function sendJson(response: ServerResponse, status: number, body: unknown): void {
  response.writeHead(status, { "content-type": "application/json" });
  response.end(JSON.stringify(body));
}

function sleep(milliseconds: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, milliseconds));
}

/** What {@link sendStream} streams. */
interface StreamPlan {
  id: string;
  model: string;
  chat: boolean;
  /** Text chunks in order; they concatenate to the answer. */
  pieces: string[];
  finishReason: string;
  usage: { prompt_tokens: number; completion_tokens: number } | undefined;
  tokenDelayMs: number;
  failAfter: { afterTokens: number; how?: "close-socket" | "error-event" } | undefined;
}

/**
 * OpenAI-style SSE: a role chunk (chat), one chunk per piece (each after `tokenDelayMs`), a finish
 * chunk, a usage chunk, `[DONE]` — or, with `failAfter`, a break after that many pieces.
 */
async function sendStream(response: ServerResponse, plan: StreamPlan): Promise<void> {
  const { id, model, chat } = plan;
  response.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
  const object = chat ? "chat.completion.chunk" : "text_completion";
  const send = (choices: unknown[], extra: Record<string, unknown> = {}) =>
    response.write(`data: ${JSON.stringify({ id, object, created: 0, model, choices, ...extra })}\n\n`);
  if (chat) send([{ index: 0, delta: { role: "assistant", content: "" }, finish_reason: null }]);
  for (const [position, piece] of plan.pieces.entries()) {
    if (plan.failAfter && position >= plan.failAfter.afterTokens) break;
    if (plan.tokenDelayMs > 0) await sleep(plan.tokenDelayMs);
    // The client went away: stop "decoding", as a real server frees the sequence.
    if (response.destroyed) return;
    send([
      chat
        ? { index: 0, delta: { content: piece }, finish_reason: null }
        : { index: 0, text: piece, finish_reason: null },
    ]);
  }
  if (plan.failAfter) {
    if (plan.failAfter.how === "error-event") {
      response.end(
        `data: ${JSON.stringify({ error: { message: "scripted failure mid-stream", type: "server_error" } })}\n\n`,
      );
    } else {
      // A moment first, so the client reads the chunks already sent before the connection breaks
      // (an errored fetch body drops what it had not handed out yet).
      await sleep(20);
      response.socket?.destroy();
    }
    return;
  }
  send([
    chat
      ? { index: 0, delta: {}, finish_reason: plan.finishReason }
      : { index: 0, text: "", finish_reason: plan.finishReason },
  ]);
  if (plan.usage) {
    send([], {
      usage: { ...plan.usage, total_tokens: plan.usage.prompt_tokens + plan.usage.completion_tokens },
    });
  }
  response.end("data: [DONE]\n\n");
}
