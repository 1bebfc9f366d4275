/**
 * OpenAI-compatible `POST /v1/chat/completions`: the last user message is the text to translate.
 * With `stream: true` the answer is sent as `chat.completion.chunk` server-sent events ending in
 * `data: [DONE]`. The hybrid decision needs the small model's prefill and the translation comes
 * whole from either engine, so the content arrives in one chunk once it is complete.
 */
import { randomUUID } from "node:crypto";
import type { FastifyInstance } from "fastify";
import type { HybridTranslation } from "../hybrid-router.js";
import { noteTranslations, roundMs, setTranslationHeaders } from "../reply-helpers.js";
import { parseChatBody, SERVED_MODEL } from "../request-validation.js";

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

/** The SSE body of a streamed answer: role chunk, content chunk, finish chunk, optional usage chunk, [DONE]. */
export function chatStreamBody(
  id: string,
  created: number,
  result: HybridTranslation,
  includeUsage: boolean,
): string {
  const chunk = (choices: unknown[], extra: Record<string, unknown> = {}) =>
    `data: ${JSON.stringify({ id, object: "chat.completion.chunk", created, model: SERVED_MODEL, choices, ...extra })}\n\n`;
  const events = [
    chunk([{ index: 0, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null }]),
    chunk([{ index: 0, delta: { content: result.translation }, logprobs: null, finish_reason: null }]),
    chunk([{ index: 0, delta: {}, logprobs: null, finish_reason: finishReason(result) }], {
      routelmt: routingExtension(result),
    }),
  ];
  if (includeUsage) events.push(chunk([], { usage: usage(result) }));
  events.push("data: [DONE]\n\n");
  return events.join("");
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
    const result = await state.hybrid.translate(input.request, input.field);
    noteTranslations(request, [result]);
    setTranslationHeaders(reply, [result], state.config.budget);
    const id = `chatcmpl-${randomUUID()}`;
    const created = Math.floor(Date.now() / 1000);
    if (input.stream) {
      reply.header("content-type", "text/event-stream; charset=utf-8");
      reply.header("cache-control", "no-cache");
      return chatStreamBody(id, created, result, input.includeUsage);
    }
    return {
      id,
      object: "chat.completion",
      created,
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
