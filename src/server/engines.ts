/**
 * Opens the server's two engines. Remote (`openai:`) engines are built here rather than through
 * `openTranslator` because the server needs what the generic opener does not expose: per-attempt
 * timeouts, retry counts and the `onRetry` hook that feeds the retry metric. In-process engines go
 * through the shared openers unchanged.
 */
import { UsageError } from "../errors/index.js";
import { parseModelSpec } from "../translators/model-spec.js";
import { apiKeyFromEnvironment, openProbedTranslator, openTranslator } from "../translators/open.js";
import { OpenAICompatibleTranslator } from "../translators/openai-compatible.js";
import { OpenAIProbedTranslator } from "../translators/openai-embeddings.js";
import { type PromptTemplate, renderPrompt } from "../translators/prompt-template.js";
import type { ProbedTranslator, Translator } from "../translators/types.js";
import type { RetryEvent } from "../util/retry.js";

export interface OpenEnginesOptions {
  smallSpec: string;
  largeSpec: string;
  template: PromptTemplate;
  threads: number;
  smallConcurrency: number;
  largeConcurrency: number;
  smallTimeoutMs: number;
  largeTimeoutMs: number;
  largeRetries: number;
  smallRetries: number;
  maxTokens: number;
  /** Feature layer of the router (the small model must read the same one). */
  layer: string;
  smallDim: number | undefined;
  onRetry: (engine: "small" | "large", event: RetryEvent) => void;
}

/** An opened engine plus what readiness needs to know about it. */
export interface OpenedEngine<T extends Translator> {
  translator: T;
  /** The spec as given. */
  spec: string;
  /** `{baseURL}/models` of a remote engine (a cheap reachability probe), null in-process. */
  probeUrl: string | null;
}

function promptBuilder(template: PromptTemplate) {
  return (request: Parameters<typeof renderPrompt>[1]) => ({
    messages: [{ role: "user" as const, content: renderPrompt(template, request) }],
  });
}

/** Opens the small (probed) engine. */
export async function openSmallEngine(options: OpenEnginesOptions): Promise<OpenedEngine<ProbedTranslator>> {
  const spec = parseModelSpec(options.smallSpec);
  if (spec.kind !== "openai") {
    const translator = await openProbedTranslator(spec, {
      threads: options.threads,
      template: options.template,
      concurrency: options.smallConcurrency,
      maxTokens: options.maxTokens,
      layer: options.layer,
    });
    return { translator, spec: options.smallSpec, probeUrl: null };
  }
  if (options.smallDim === undefined) {
    throw new UsageError(
      `a remote small model (${spec.spec}) needs its hidden size for the features: pass --small-dim N`,
    );
  }
  const translator = new OpenAIProbedTranslator(spec.model, {
    baseURL: spec.baseURL,
    apiKey: apiKeyFromEnvironment(),
    concurrency: options.smallConcurrency,
    maxTokens: options.maxTokens,
    timeoutMs: options.smallTimeoutMs,
    retries: options.smallRetries,
    retryBaseDelayMs: 200,
    dim: options.smallDim,
    layer: options.layer,
    template: options.template.text,
    renderPrompt: (request) => renderPrompt(options.template, request),
    promptBuilder: promptBuilder(options.template),
    decodeEndpoint: "completions",
    onRetry: (event) => options.onRetry("small", event),
  });
  return { translator, spec: options.smallSpec, probeUrl: `${translator.baseURL}/models` };
}

/** Opens the large engine. */
export async function openLargeEngine(options: OpenEnginesOptions): Promise<OpenedEngine<Translator>> {
  const spec = parseModelSpec(options.largeSpec);
  if (spec.kind !== "openai") {
    const translator = await openTranslator(spec, {
      threads: options.threads,
      template: options.template,
      concurrency: options.largeConcurrency,
      maxTokens: options.maxTokens,
    });
    return { translator, spec: options.largeSpec, probeUrl: null };
  }
  const translator = new OpenAICompatibleTranslator(spec.model, {
    baseURL: spec.baseURL,
    apiKey: apiKeyFromEnvironment(),
    concurrency: options.largeConcurrency,
    maxTokens: options.maxTokens,
    // One attempt may use the whole deadline; the caller's deadline signal bounds all attempts together.
    timeoutMs: options.largeTimeoutMs,
    retries: options.largeRetries,
    retryBaseDelayMs: 200,
    promptBuilder: promptBuilder(options.template),
    onRetry: (event) => options.onRetry("large", event),
  });
  return { translator, spec: options.largeSpec, probeUrl: `${translator.baseURL}/models` };
}
