import { setMaxListeners } from "node:events";
import OpenAI, { APIError } from "openai";
import { z } from "zod";
import { EngineCallError, EngineTimeoutError, UsageError } from "../errors/index.js";
import { bodySnippet, parseRetryAfterMs, postJson } from "../util/http.js";
import { type RetryEvent, withRetries } from "../util/retry.js";
import { Semaphore } from "../util/semaphore.js";
import { mapOpenAIFinishReason } from "./map-openai-finish-reason.js";
import type { OpenAIApi } from "./model-spec.js";
import { assertOneStreamedRequest } from "./text-stream.js";
import type { DecodeOptions, Translation, TranslationRequest, Translator } from "./types.js";

/** One chat message as the OpenAI chat completions API takes it. */
export interface ChatMessage {
  role: "system" | "user" | "assistant";
  content: string;
}

/** Turns a request into chat messages; supplied by the prompt-template module or the caller. */
export type PromptBuilder = (request: TranslationRequest) => { messages: ChatMessage[] };

/** The default instruction: no system message, raw language codes, the source text last. */
export const DEFAULT_INSTRUCTION_TEMPLATE =
  "Translate the following text from {srcLang} into {tgtLang}. Reply with the translation only.\n\n{text}";

/**
 * Fills `{srcLang}`, `{tgtLang}` and `{text}` in one pass, so placeholders that happen to occur
 * inside the source text are left alone.
 */
export function renderInstruction(template: string, request: TranslationRequest): string {
  return template.replace(
    /\{(srcLang|tgtLang|text)\}/g,
    (_, key: "srcLang" | "tgtLang" | "text") => request[key],
  );
}

/** A single user message rendered from {@link DEFAULT_INSTRUCTION_TEMPLATE}. */
export const defaultPromptBuilder: PromptBuilder = (request) => ({
  messages: [{ role: "user", content: renderInstruction(DEFAULT_INSTRUCTION_TEMPLATE, request) }],
});

export interface OpenAICompatibleOptions {
  /** API root including the version segment, e.g. `http://127.0.0.1:8080/v1` (vLLM, llama.cpp, Ollama). */
  baseURL: string;
  /** Sent as `Authorization: Bearer <apiKey>` when given. */
  apiKey?: string;
  /** Extra request headers (e.g. an organisation header); they override the defaults. */
  headers?: Record<string, string>;
  /** Requests in flight at once across all calls of this translator. Defaults to 4. */
  concurrency?: number;
  /** Timeout of one HTTP attempt (connect to full body). Defaults to 120 000 ms. */
  timeoutMs?: number;
  /** Extra attempts for rate limits, 5xx, timeouts and network errors. Defaults to 4. */
  retries?: number;
  /** First backoff between attempts, doubled each time (capped at 30 s). Defaults to 500 ms. */
  retryBaseDelayMs?: number;
  /** `max_tokens` when the call does not give one. Defaults to 256. */
  maxTokens?: number;
  /** Builds the chat messages. Defaults to {@link defaultPromptBuilder}. */
  promptBuilder?: PromptBuilder;
  /**
   * `chat` decodes through `/chat/completions` (the server wraps the messages in the model's chat
   * template); `completions` sends `renderPrompt`'s text as is to `/completions`, which a base model
   * needs (wrapped in a chat template it was never trained on, it answers garbage). Defaults to `chat`.
   */
  api?: OpenAIApi;
  /** The raw prompt of `api: "completions"`. Defaults to the prompt builder's last message. */
  renderPrompt?: (request: TranslationRequest) => string;
  /** Called before every retry, e.g. to count retries in metrics. */
  onRetry?: (event: RetryEvent) => void;
}

const usageSchema = z
  .object({ prompt_tokens: z.number().nullish(), completion_tokens: z.number().nullish() })
  .nullish();

/**
 * Token log-probabilities as servers send them: the chat form (`content[].logprob`, which llama.cpp's
 * server also uses for completions) or the legacy completions form (`token_logprobs`, vLLM).
 */
const logprobsSchema = z
  .object({
    content: z.array(z.object({ logprob: z.number() })).nullish(),
    token_logprobs: z.array(z.number().nullable()).nullish(),
  })
  .nullish();

const chatResponseSchema = z.object({
  model: z.string().nullish(),
  choices: z
    .array(
      z.object({
        message: z.object({ content: z.string().nullish() }).nullish(),
        finish_reason: z.string().nullish(),
        logprobs: z.unknown().optional(),
      }),
    )
    .min(1),
  usage: usageSchema,
});

const completionResponseSchema = z.object({
  model: z.string().nullish(),
  choices: z
    .array(
      z.object({
        text: z.string().nullish(),
        finish_reason: z.string().nullish(),
        logprobs: z.unknown().optional(),
      }),
    )
    .min(1),
  usage: usageSchema,
});

/**
 * Mean log-probability of the chosen tokens the server reported, or null when it reported none or
 * in a shape of its own (a server without `logprobs` support: the caller then has no confidence,
 * and the translation itself never fails over it).
 */
export function meanTokenLogProbability(answer: unknown): number | null {
  const parsed = logprobsSchema.safeParse(answer);
  if (!parsed.success) return null;
  const logprobs = parsed.data;
  const values =
    logprobs?.content?.map((token) => token.logprob) ??
    logprobs?.token_logprobs?.filter((value): value is number => value !== null);
  if (!values || values.length === 0) return null;
  return values.reduce((sum, value) => sum + value, 0) / values.length;
}

/** Token counts from `usage`, null where the server did not report them. */
export function usageCounts(usage: z.infer<typeof usageSchema>): {
  promptTokens: number | null;
  outputTokens: number | null;
} {
  return { promptTokens: usage?.prompt_tokens ?? null, outputTokens: usage?.completion_tokens ?? null };
}

/**
 * Translates through any OpenAI-compatible chat completions endpoint (vLLM, llama.cpp server,
 * Ollama, hosted APIs) with plain `fetch`: `POST {baseURL}/chat/completions`, greedy and seeded
 * (`temperature: 0`, `top_p: 1`, `seed: 0`, `n: 1`). At most `concurrency` requests are in flight;
 * each attempt has its own timeout; rate limits, 5xx, timeouts and network errors are retried with
 * exponential backoff honouring Retry-After. Errors name the engine as `openai:<baseURL>#<model>`.
 * Token counts are null when the server sends no `usage`.
 */
export class OpenAICompatibleTranslator implements Translator {
  readonly engine: string = "openai";
  readonly modelId: string;
  /** `baseURL` without trailing slashes. */
  readonly baseURL: string;
  /** How errors name this engine: `openai:<baseURL>#<model>`. */
  readonly engineName: string;
  protected readonly maxTokens: number;
  protected readonly promptBuilder: PromptBuilder;
  /** The endpoint translations decode through. */
  readonly api: OpenAIApi;
  protected readonly renderPrompt: (request: TranslationRequest) => string;
  readonly #semaphore: Semaphore;
  readonly #headers: Record<string, string>;
  readonly #timeoutMs: number;
  readonly #retries: number;
  readonly #retryBaseDelayMs: number;
  readonly #onRetry: ((event: RetryEvent) => void) | undefined;
  /** The official client, for streamed answers only; made on first use, so plain calls never pay for it. */
  #streamClient: OpenAI | undefined;
  #disposed = false;

  constructor(modelId: string, options: OpenAICompatibleOptions) {
    if (!modelId) throw new UsageError("an OpenAI-compatible translator needs a model id");
    let parsed: URL;
    try {
      parsed = new URL(options.baseURL);
    } catch (error) {
      throw new UsageError(`baseURL is not a URL: ${options.baseURL}`, { cause: error });
    }
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
      throw new UsageError(`baseURL must be http(s): ${options.baseURL}`);
    }
    const concurrency = options.concurrency ?? 4;
    if (!Number.isInteger(concurrency) || concurrency < 1) {
      throw new UsageError(`concurrency must be a positive integer, got ${concurrency}`);
    }
    const retries = options.retries ?? 4;
    if (!Number.isInteger(retries) || retries < 0)
      throw new UsageError(`retries must be an integer ≥ 0, got ${retries}`);
    this.modelId = modelId;
    this.baseURL = options.baseURL.replace(/\/+$/, "");
    this.engineName = `openai:${this.baseURL}#${modelId}`;
    this.maxTokens = options.maxTokens ?? 256;
    this.promptBuilder = options.promptBuilder ?? defaultPromptBuilder;
    this.api = options.api ?? "chat";
    const promptBuilder = this.promptBuilder;
    this.renderPrompt =
      options.renderPrompt ?? ((request) => promptBuilder(request).messages.at(-1)?.content ?? "");
    this.#semaphore = new Semaphore(concurrency);
    this.#headers = {
      ...(options.apiKey ? { authorization: `Bearer ${options.apiKey}` } : {}),
      ...options.headers,
    };
    this.#timeoutMs = options.timeoutMs ?? 120_000;
    this.#retries = retries;
    this.#retryBaseDelayMs = options.retryBaseDelayMs ?? 500;
    this.#onRetry = options.onRetry;
  }

  /**
   * Translates every request (concurrently, up to the limit) and returns results in request order.
   * The first failure aborts the requests still running and is thrown.
   */
  async translate(requests: TranslationRequest[], options: DecodeOptions = {}): Promise<Translation[]> {
    assertOneStreamedRequest(requests.length, options.onText);
    // One request has no others to abort: skip the batch signal a server's every large call would build.
    if (requests.length === 1) return [await this.translateOne(requests[0]!, options)];
    const batch = new AbortController();
    const signal = options.signal ? AbortSignal.any([options.signal, batch.signal]) : batch.signal;
    // Every request of the batch listens to it while it waits and while its call runs: many
    // listeners are expected, not a leak.
    setMaxListeners(0, signal);
    return Promise.all(
      requests.map((request) =>
        this.translateOne(request, { ...options, signal }).catch((error: unknown) => {
          batch.abort(error);
          throw error;
        }),
      ),
    );
  }

  /** Translates one request through the endpoint of {@link api} (streamed when `options.onText` is given). */
  async translateOne(request: TranslationRequest, options: DecodeOptions = {}): Promise<Translation> {
    if (this.api === "completions") return this.completeRawPrompt(this.renderPrompt(request), options);
    const { messages } = this.promptBuilder(request);
    if (options.onText) return this.#streamAnswer("/chat/completions", { messages }, options, options.onText);
    const { answer, ms } = await this.post(
      "/chat/completions",
      {
        messages,
        max_tokens: options.maxTokens ?? this.maxTokens,
        ...this.#deterministic(),
        ...(options.confidence ? { logprobs: true } : {}),
      },
      options.signal,
    );
    const parsed = this.parse(chatResponseSchema, answer, "/chat/completions");
    const choice = parsed.choices[0]!;
    const content = choice.message?.content;
    if (content === null || content === undefined) {
      throw new EngineCallError(
        this.engineName,
        `answer from POST ${this.baseURL}/chat/completions has no message content (finish_reason: ${choice.finish_reason ?? "none"})`,
        { isRetryable: false },
      );
    }
    return {
      text: content.trim(),
      model: parsed.model ?? this.modelId,
      ...usageCounts(parsed.usage),
      ms,
      finishReason: mapOpenAIFinishReason(choice.finish_reason),
      ...(options.confidence ? { meanLogProbability: meanTokenLogProbability(choice.logprobs) } : {}),
    };
  }

  /** Marks the translator unusable; there is no connection state to free (fetch pools its own sockets). */
  async dispose(): Promise<void> {
    this.#disposed = true;
  }

  /** Raw text completion (`POST {baseURL}/completions`) of an already rendered prompt, streamed with `onText`. */
  protected async completeRawPrompt(prompt: string, options: DecodeOptions = {}): Promise<Translation> {
    if (options.onText) return this.#streamAnswer("/completions", { prompt }, options, options.onText);
    const { answer, ms } = await this.post(
      "/completions",
      {
        prompt,
        max_tokens: options.maxTokens ?? this.maxTokens,
        ...this.#deterministic(),
        ...(options.confidence ? { logprobs: 1 } : {}),
      },
      options.signal,
    );
    const parsed = this.parse(completionResponseSchema, answer, "/completions");
    const choice = parsed.choices[0]!;
    if (choice.text === null || choice.text === undefined) {
      throw new EngineCallError(this.engineName, `answer from POST ${this.baseURL}/completions has no text`, {
        isRetryable: false,
      });
    }
    return {
      text: choice.text.trim(),
      model: parsed.model ?? this.modelId,
      ...usageCounts(parsed.usage),
      ms,
      finishReason: mapOpenAIFinishReason(choice.finish_reason),
      ...(options.confidence ? { meanLogProbability: meanTokenLogProbability(choice.logprobs) } : {}),
    };
  }

  /**
   * POSTs `{model, ...body}` to `{baseURL}{path}` holding one concurrency slot for the whole call,
   * retries included (so a rate-limited server is not hammered by the other waiting requests).
   * `ms` is the wall time from getting the slot to the answer.
   */
  protected async post(
    path: string,
    body: Record<string, unknown>,
    signal?: AbortSignal,
  ): Promise<{ answer: unknown; ms: number }> {
    if (this.#disposed) throw new UsageError(`${this.engineName}: translator used after dispose()`);
    return this.#semaphore.run(async () => {
      const started = performance.now();
      const answer = await withRetries(
        () =>
          postJson({
            engine: this.engineName,
            url: `${this.baseURL}${path}`,
            body: { model: this.modelId, ...body },
            headers: this.#headers,
            timeoutMs: this.#timeoutMs,
            signal,
          }),
        { retries: this.#retries, baseDelayMs: this.#retryBaseDelayMs, signal, onRetry: this.#onRetry },
      );
      return { answer, ms: performance.now() - started };
    }, signal);
  }

  /** Validates an answer, turning a shape mismatch into a non-retryable error naming the engine and URL. */
  protected parse<T>(schema: z.ZodType<T>, answer: unknown, path: string, hint = ""): T {
    const result = schema.safeParse(answer);
    if (result.success) return result.data;
    const issues = result.error.issues
      .slice(0, 3)
      .map((issue) => `${issue.path.join(".") || "(root)"}: ${issue.message}`)
      .join("; ");
    throw new EngineCallError(
      this.engineName,
      `unexpected answer shape from POST ${this.baseURL}${path}: ${issues}${hint}`,
      { isRetryable: false },
    );
  }

  /** Greedy, seeded, single choice: the same request gives the same translation where the server allows. */
  #deterministic(): Record<string, unknown> {
    return { temperature: 0, top_p: 1, seed: 0, n: 1, stream: false };
  }

  /**
   * One answer as OpenAI server-sent events, through the official client: each chunk's text goes to
   * `onText` as it arrives. Holds a concurrency slot for the whole stream. An attempt that fails
   * before its first text is retried like a plain call; once text went out it is not (the retry
   * would repeat it): the error is final. `timeoutMs` bounds each attempt to its last chunk, and a
   * stream that ends without a finish reason is an error, not a short translation.
   */
  async #streamAnswer(
    path: "/chat/completions" | "/completions",
    input: { messages: ChatMessage[] } | { prompt: string },
    options: DecodeOptions,
    onText: (delta: string) => void,
  ): Promise<Translation> {
    if (this.#disposed) throw new UsageError(`${this.engineName}: translator used after dispose()`);
    const { signal } = options;
    const body = {
      model: this.modelId,
      max_tokens: options.maxTokens ?? this.maxTokens,
      ...this.#deterministic(),
      ...input,
      stream: true as const,
      stream_options: { include_usage: true },
    };
    return this.#semaphore.run(async () => {
      const started = performance.now();
      let delivered = false;
      const answer = await withRetries(
        async () => {
          const deadline = AbortSignal.timeout(this.#timeoutMs);
          const attemptSignal = signal ? AbortSignal.any([signal, deadline]) : deadline;
          let text = "";
          let finishReason: string | null = null;
          let model: string | undefined;
          let usage: z.infer<typeof usageSchema>;
          try {
            const client = this.#client();
            const stream =
              "messages" in body
                ? await client.chat.completions.create(body, { signal: attemptSignal })
                : await client.completions.create(body, { signal: attemptSignal });
            for await (const chunk of stream) {
              model ??= chunk.model;
              usage = chunk.usage ?? usage;
              const choice = chunk.choices[0];
              if (choice === undefined) continue;
              const piece = "delta" in choice ? choice.delta.content : choice.text;
              if (piece) {
                delivered = true;
                text += piece;
                onText(piece);
              }
              finishReason = choice.finish_reason ?? finishReason;
            }
          } catch (error) {
            throw this.#streamFailure(error, path, signal, deadline, delivered);
          }
          // The client ends an aborted stream quietly rather than throwing.
          if (signal?.aborted) throw signal.reason;
          if (deadline.aborted) throw this.#streamFailure(undefined, path, signal, deadline, delivered);
          if (finishReason === null) {
            throw new EngineCallError(
              this.engineName,
              `the stream from POST ${this.baseURL}${path} ended without a finish_reason`,
              { isRetryable: !delivered },
            );
          }
          return { text, finishReason, model, usage };
        },
        {
          retries: this.#retries,
          baseDelayMs: this.#retryBaseDelayMs,
          signal,
          onRetry: this.#onRetry,
        },
      );
      return {
        text: answer.text.trim(),
        model: answer.model ?? this.modelId,
        ...usageCounts(answer.usage),
        ms: performance.now() - started,
        finishReason: mapOpenAIFinishReason(answer.finishReason),
      };
    }, signal);
  }

  #client(): OpenAI {
    this.#streamClient ??= new OpenAI({
      baseURL: this.baseURL,
      // The client insists on a key; without one, the null default header drops its Authorization.
      apiKey: "none",
      defaultHeaders: { authorization: null, ...this.#headers },
      // Retries and deadlines are ours (see #streamAnswer).
      maxRetries: 0,
      timeout: this.#timeoutMs,
    });
    return this.#streamClient;
  }

  /**
   * A streamed attempt's failure as plain calls report it (timeout, HTTP status, network), never
   * retryable once text was delivered. The caller's abort is rethrown as its own reason.
   */
  #streamFailure(
    error: unknown,
    path: string,
    callerSignal: AbortSignal | undefined,
    deadline: AbortSignal,
    delivered: boolean,
  ): unknown {
    if (callerSignal?.aborted) return callerSignal.reason;
    const final = delivered ? { isRetryable: false } : {};
    const url = `${this.baseURL}${path}`;
    if (deadline.aborted) {
      const timeout = new EngineTimeoutError(this.engineName, this.#timeoutMs, { cause: error });
      return delivered
        ? new EngineCallError(this.engineName, `the stream from POST ${url} stalled: ${timeout.message}`, {
            isRetryable: false,
            cause: timeout,
          })
        : timeout;
    }
    if (error instanceof APIError && error.status !== undefined) {
      return new EngineCallError(
        this.engineName,
        `HTTP ${error.status} from POST ${url}: ${bodySnippet(error.message)}`,
        {
          status: error.status,
          retryAfterMs: parseRetryAfterMs(error.headers?.get("retry-after")),
          cause: error,
          ...final,
        },
      );
    }
    if (error instanceof APIError) {
      // An error event inside the stream: the server's own verdict on this request.
      return new EngineCallError(
        this.engineName,
        `error event in the stream from POST ${url}: ${error.message}`,
        {
          isRetryable: false,
          cause: error,
        },
      );
    }
    const reason =
      error instanceof Error
        ? error.cause instanceof Error
          ? error.cause.message
          : error.message
        : String(error);
    return new EngineCallError(
      this.engineName,
      `POST ${url} failed${delivered ? " mid-stream" : ""}: ${reason}`,
      {
        cause: error,
        ...final,
      },
    );
  }
}
