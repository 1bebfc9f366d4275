/**
 * Opens the server's two engines through the shared openers, with the server's timeouts, retry
 * counts and the `onRetry` hook that feeds the retry metric.
 */
import { type ModelSpec, parseModelSpec } from "../translators/model-spec.js";
import { type FeatureEngine, openProbedTranslator, openTranslator } from "../translators/open.js";
import type { PromptTemplate } from "../translators/prompt-template.js";
import type { ProbedTranslator, Translator } from "../translators/types.js";
import type { RetryEvent } from "../util/retry.js";

export interface OpenEnginesOptions {
  smallSpec: string;
  largeSpec: string;
  template: PromptTemplate;
  threads: number;
  smallConcurrency: number;
  largeConcurrency: number;
  /** In-process engine of a local small model (ignored for a remote one). */
  featureEngine: FeatureEngine;
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

/** `{baseURL}/models` of a remote engine (a cheap reachability probe), null in-process. */
function probeUrlOf(spec: ModelSpec): string | null {
  return spec.kind === "openai" ? `${spec.baseURL}/models` : null;
}

/** Opens the small (probed) engine. */
export async function openSmallEngine(options: OpenEnginesOptions): Promise<OpenedEngine<ProbedTranslator>> {
  const spec = parseModelSpec(options.smallSpec);
  const translator = await openProbedTranslator(spec, {
    threads: options.threads,
    template: options.template,
    concurrency: options.smallConcurrency,
    maxTokens: options.maxTokens,
    layer: options.layer,
    // A remote model takes no engine choice: "auto" lets the opener accept it.
    featureEngine: spec.kind === "openai" ? "auto" : options.featureEngine,
    remoteDim: options.smallDim,
    remote: {
      timeoutMs: options.smallTimeoutMs,
      retries: options.smallRetries,
      retryBaseDelayMs: 200,
      onRetry: (event) => options.onRetry("small", event),
    },
  });
  return { translator, spec: options.smallSpec, probeUrl: probeUrlOf(spec) };
}

/** Opens the large engine. */
export async function openLargeEngine(options: OpenEnginesOptions): Promise<OpenedEngine<Translator>> {
  const spec = parseModelSpec(options.largeSpec);
  const translator = await openTranslator(spec, {
    threads: options.threads,
    template: options.template,
    concurrency: options.largeConcurrency,
    maxTokens: options.maxTokens,
    remote: {
      // One attempt may use the whole deadline; the caller's deadline signal bounds all attempts together.
      timeoutMs: options.largeTimeoutMs,
      retries: options.largeRetries,
      retryBaseDelayMs: 200,
      onRetry: (event) => options.onRetry("large", event),
    },
  });
  return { translator, spec: options.largeSpec, probeUrl: probeUrlOf(spec) };
}
