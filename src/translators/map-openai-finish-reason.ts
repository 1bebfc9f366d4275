import type { FinishReason } from "./types.js";

/**
 * Maps an OpenAI-compatible `finish_reason` onto ours. Servers differ: OpenAI, vLLM and llama.cpp say
 * `stop`/`length`; some gateways pass through Anthropic-style `end_turn`/`max_tokens` or say `eos`;
 * vLLM reports `abort` for cancelled requests. Anything else (`content_filter`, `tool_calls`, ...)
 * is `other`; a missing reason stays undefined rather than guessed.
 */
export function mapOpenAIFinishReason(reason: string | null | undefined): FinishReason | undefined {
  if (reason === null || reason === undefined || reason === "") return undefined;
  switch (reason) {
    case "stop":
    case "eos":
    case "end_turn":
    case "stop_sequence":
      return "stop";
    case "length":
    case "max_tokens":
      return "length";
    case "abort":
    case "cancelled":
      return "abort";
    default:
      return "other";
  }
}
