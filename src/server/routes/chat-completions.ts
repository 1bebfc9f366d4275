/**
 * OpenAI-compatible `POST /v1/chat/completions`: the last user message is the text to translate.
 * With `stream: true` the answer is `chat.completion.chunk` server-sent events ending in
 * `data: [DONE]`, the text streamed as the producing engine decodes it. The status line and the
 * routing headers go out with the first text, once it is known which model produces it (a large
 * call that fails before its first text falls back to the small model, and the headers say so).
 */
import { randomUUID } from "node:crypto";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { RoutelmtServerState } from "../app.js";
import type { HybridTranslation, TranslationSource } from "../hybrid-router.js";
import {
  abortOnClientClose,
  noteTranslations,
  roundMs,
  StreamedBody,
  setTranslationHeaders,
} from "../reply-helpers.js";
import { type ChatInput, parseChatBody, SERVED_MODEL } from "../request-validation.js";

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function finishReason(result: HybridTranslation): "stop" | "length" {
  return result.finishReason === "length" ? "length" : "stop";
}

function usage(result: HybridTranslation) {
  const prompt = result.promptTokens ?? 0;
  const completion = result.outputTokens ?? 0;
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

/** What routelmt adds to an OpenAI answer (clients ignore unknown fields). */
function routingExtension(result: HybridTranslation) {
  return {
    model: result.model,
    predicted_gain: Number.isFinite(result.predictedGain) ? result.predictedGain : null,
    guarded: result.guarded,
    fallback: result.fallback,
    latency_ms: roundMs(result.latencyMs),
  };
}

/** The server-sent events of one streamed chat completion. */
class ChatChunks {
  readonly #prefix: string;
  readonly #suffix: string;

  constructor(id: string, created: number) {
    // Every chunk shares its head: only the choices (and extras) are serialized per event.
    this.#prefix = `data: {"id":${JSON.stringify(id)},"object":"chat.completion.chunk","created":${created},"model":"${SERVED_MODEL}","choices":`;
    this.#suffix = "}\n\n";
  }

  role(): string {
    return `${this.#prefix}[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]${this.#suffix}`;
  }

  content(text: string): string {
    return `${this.#prefix}[{"index":0,"delta":{"content":${JSON.stringify(text)}},"logprobs":null,"finish_reason":null}]${this.#suffix}`;
  }

  /** The finish chunk (with the routing facts), the usage chunk if asked for, and `[DONE]`. */
  end(result: HybridTranslation, includeUsage: boolean): string {
    const finish = `${this.#prefix}[{"index":0,"delta":{},"logprobs":null,"finish_reason":"${finishReason(result)}"}],"routelmt":${JSON.stringify(routingExtension(result))}${this.#suffix}`;
    const usageChunk = includeUsage
      ? `${this.#prefix}[],"usage":${JSON.stringify(usage(result))}${this.#suffix}`
      : "";
    return `${finish}${usageChunk}data: [DONE]\n\n`;
  }
}

/** An error as the last event of a stream: OpenAI clients raise it (`data.error`), in our error format. */
function errorEvent(body: unknown): string {
  return `data: ${JSON.stringify(body)}\n\n`;
}

async function streamChat(
  state: RoutelmtServerState,
  request: FastifyRequest,
  reply: FastifyReply,
  input: ChatInput,
  signal: AbortSignal,
): Promise<FastifyReply> {
  const chunks = new ChatChunks(`chatcmpl-${randomUUID()}`, Math.floor(Date.now() / 1000));
  const body = new StreamedBody(reply, "text/event-stream; charset=utf-8");
  const open = (source: TranslationSource) =>
    body.open(() => setTranslationHeaders(reply, [source], state.config.budget), chunks.role());
  let result: HybridTranslation;
  try {
    result = await state.hybrid.translate(input.request, input.field, {
      signal,
      onText: (delta, source) => {
        open(source);
        body.write(chunks.content(delta));
      },
    });
  } catch (error) {
    body.fail(error, request, errorEvent);
    return reply;
  }
  noteTranslations(request, [result]);
  open(result);
  body.end(chunks.end(result, input.includeUsage));
  return reply;
}

export function registerChatRoutes(app: FastifyInstance): void {
  app.post("/v1/chat/completions", async (request, reply) => {
    const state = app.routelmt;
    const input = parseChatBody(
      request.body,
      {
        sourceLang: headerValue(request.headers["x-routelmt-source-lang"]),
        targetLang: headerValue(request.headers["x-routelmt-target-lang"]),
      },
      state.limits,
    );
    const signal = abortOnClientClose(reply, state.metrics);
    if (input.stream) return streamChat(state, request, reply, input, signal);
    const result = await state.hybrid.translate(input.request, input.field, { signal });
    noteTranslations(request, [result]);
    setTranslationHeaders(reply, [result], state.config.budget);
    return {
      id: `chatcmpl-${randomUUID()}`,
      object: "chat.completion",
      created: Math.floor(Date.now() / 1000),
      model: SERVED_MODEL,
      choices: [
        {
          index: 0,
          message: { role: "assistant", content: result.translation, refusal: null },
          logprobs: null,
          finish_reason: finishReason(result),
        },
      ],
      usage: usage(result),
      routelmt: routingExtension(result),
    };
  });
}
