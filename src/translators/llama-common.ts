/**
 * What the two in-process GGUF translators (`LlamaTranslator`, `LlamaFfiTranslator`) share beyond
 * prompt tokenization (see `llama-prompt.ts`): option checks, error wrapping, the guard that keeps a
 * request inside its sequence's context, the pool of sequences, and the life cycle of a held prefill.
 * Keeping it in one place keeps the two engines' errors and messages the same word for word.
 * @module
 */
import type { Llama, LlamaModel, LlamaModelOptions, Token } from "node-llama-cpp";
import { EngineCallError, InputError, RoutelmtError, UsageError } from "../errors/index.js";
import { TextDeltaStream } from "./text-stream.js";
import type { DecodeOptions, FinishReason, Prefilled, Translation } from "./types.js";

/** @throws UsageError naming `name` unless `value` is a positive integer. */
export function assertPositiveInteger(name: string, value: number): void {
  if (!Number.isInteger(value) || value <= 0)
    throw new UsageError(`${name} must be a positive integer, got ${value}`);
}

/** Wraps anything the engine throws as a non-retryable EngineCallError; our own errors pass through. */
export function asEngineError(engineName: string, error: unknown): Error {
  if (error instanceof RoutelmtError) return error;
  return new EngineCallError(engineName, (error as Error)?.message ?? String(error), {
    isRetryable: false,
    cause: error,
  });
}

/**
 * Loads a GGUF through node-llama-cpp.
 * @throws InputError naming the file when llama.cpp cannot load it.
 */
export async function loadModelFile(llama: Llama, options: LlamaModelOptions): Promise<LlamaModel> {
  try {
    return await llama.loadModel(options);
  } catch (error) {
    throw new InputError(
      `cannot load model: ${(error as Error).message}`,
      { file: options.modelPath },
      { cause: error },
    );
  }
}

/** @throws UsageError when `maxTokens` alone fills the context, leaving no cell for a prompt. */
export function assertRoomForPrompt(maxTokens: number, contextSize: number): void {
  if (maxTokens >= contextSize) {
    throw new UsageError(
      `maxTokens (${maxTokens}) leaves no room for a prompt in contextSize ${contextSize}`,
    );
  }
}

/**
 * A request's maximum new tokens: its own `maxTokens`, else the translator's default.
 * @throws UsageError unless the result is a positive integer.
 */
export function resolveMaxTokens(options: DecodeOptions, defaultMaxTokens: number): number {
  const maxTokens = options.maxTokens ?? defaultMaxTokens;
  assertPositiveInteger("maxTokens", maxTokens);
  return maxTokens;
}

function promptTooLongMessage(promptTokens: number, maxTokens: number, contextSize: number): string {
  return `prompt of ${promptTokens} tokens plus maxTokens ${maxTokens} exceeds the context size ${contextSize}`;
}

/**
 * Checks that a prompt plus `maxTokens` new tokens fits the sequence's context: llama.cpp would
 * otherwise shift the context (dropping the prompt's start) instead of failing.
 * @param requestId named in the message when given.
 * @throws InputError when it does not fit.
 */
export function assertPromptFits(
  promptTokens: number,
  maxTokens: number,
  contextSize: number,
  requestId?: string,
): void {
  if (promptTokens + maxTokens > contextSize) {
    const message = promptTooLongMessage(promptTokens, maxTokens, contextSize);
    throw new InputError(`${message}${requestId !== undefined ? ` (request ${requestId})` : ""}`);
  }
}

/**
 * Hands out a fixed set of items (sequences or their ids), last given back first out; when all are
 * taken, `acquire` waits and waiters are served in arrival order. Once closed, waiters and later
 * `acquire` calls reject (a disposed translator must not leave callers waiting for a sequence that
 * a held prefill may never give back).
 */
export class WaitingPool<T> {
  private readonly idle: T[];
  private readonly waiting: Array<{ resolve: (item: T) => void; reject: (error: Error) => void }> = [];
  private closedWith: Error | undefined;

  /** @param items the pool's items; the last one is handed out first. */
  constructor(items: readonly T[]) {
    this.idle = [...items];
  }

  acquire(): Promise<T> {
    if (this.closedWith !== undefined) return Promise.reject(this.closedWith);
    const item = this.idle.pop();
    if (item !== undefined) return Promise.resolve(item);
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
  }

  /** Hands `item` to the longest waiter, or back to the idle items. */
  giveBack(item: T): void {
    const next = this.waiting.shift();
    if (next) next.resolve(item);
    else this.idle.push(item);
  }

  /** Rejects every waiter and every later `acquire` with `error`. */
  close(error: Error): void {
    this.closedWith ??= error;
    for (const waiter of this.waiting.splice(0)) waiter.reject(this.closedWith);
  }
}

/** A prefill as the in-process translators return it: also exposes the exact prompt token ids. */
export interface PrefilledWithTokens<TokenId extends number> extends Prefilled {
  /** The token ids the prompt was evaluated as. */
  readonly promptTokenIds: readonly TokenId[];
}

/** What {@link heldPrefill} needs from the engine that evaluated the prompt. */
export interface HeldPrefillParts<TokenId extends number> {
  /** Engine name for wrapped errors. */
  engineName: string;
  /** The prompt's token ids, as evaluated. */
  tokens: readonly TokenId[];
  features: Float32Array;
  /** Next-token entropy, NaN when not computed (reported as null). */
  entropy: number;
  /** Token cells of the held sequence. */
  contextSize: number;
  /** The translator's default maximum new tokens. */
  defaultMaxTokens: number;
  /** Throws when the translator has been disposed. */
  assertUsable(): void;
  /** Decodes greedily from the evaluated prompt (`options.maxTokens` resolved to `maxTokens`). */
  decode(maxTokens: number, options: DecodeOptions): Promise<Translation>;
  /** Frees the held sequence; called exactly once. */
  releaseSequence(): Promise<void>;
}

/**
 * The handle of an evaluated prompt that holds its sequence until `continue()` ends or `release()`
 * is called, whichever comes first; `continue()` may be called once, `release()` any number of times.
 */
export function heldPrefill<TokenId extends number>(
  parts: HeldPrefillParts<TokenId>,
): PrefilledWithTokens<TokenId> {
  const { tokens, contextSize } = parts;
  let state: "held" | "decoding" | "done" = "held";
  const finish = async () => {
    if (state === "done") return;
    state = "done";
    await parts.releaseSequence();
  };
  return {
    features: parts.features,
    entropy: Number.isFinite(parts.entropy) ? parts.entropy : null,
    promptTokens: tokens.length,
    promptTokenIds: tokens,
    continue: async (options: DecodeOptions = {}) => {
      parts.assertUsable();
      if (state !== "held") throw new UsageError("this prefill was already continued or released");
      const maxTokens = resolveMaxTokens(options, parts.defaultMaxTokens);
      if (tokens.length + maxTokens > contextSize) {
        await finish();
        throw new InputError(promptTooLongMessage(tokens.length, maxTokens, contextSize));
      }
      state = "decoding";
      try {
        return await parts.decode(maxTokens, options);
      } catch (error) {
        throw asEngineError(parts.engineName, error);
      } finally {
        await finish();
      }
    },
    release: async () => {
      if (state === "held") await finish();
    },
  };
}

/**
 * Detokenizes a greedy decode's output, streaming it to `onText` when given: `onText` has then
 * received exactly the returned text (see `text-stream.ts`), which `decodedTranslation` trims.
 */
export function outputText(
  vocabulary: LlamaModel,
  output: readonly number[],
  stream: TextDeltaStream | undefined,
): string {
  return stream?.finish(output) ?? vocabulary.detokenize(output as readonly Token[]);
}

/** A delta stream over `vocabulary` for `onText`, or undefined when nobody listens. */
export function textStreamFor(
  vocabulary: LlamaModel,
  onText: ((delta: string) => void) | undefined,
): TextDeltaStream | undefined {
  if (onText === undefined) return undefined;
  return new TextDeltaStream((tokens) => vocabulary.detokenize(tokens as readonly Token[]), onText);
}

/**
 * The result of a greedy decode: its text (untrimmed, as {@link outputText} gives it) trimmed, and
 * what it cost.
 */
export function decodedTranslation(
  text: string,
  modelId: string,
  start: { promptTokens: number; startedAt: number },
  output: readonly number[],
  finishReason: FinishReason,
): Translation {
  return {
    text: text.trim(),
    model: modelId,
    promptTokens: start.promptTokens,
    outputTokens: output.length,
    ms: performance.now() - start.startedAt,
    finishReason,
  };
}
