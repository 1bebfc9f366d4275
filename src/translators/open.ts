import { UnsupportedError, UsageError } from "../errors/index.js";
import { DEFAULT_FEATURE_VIEWS, isLastFinalOnly, resolveAutoSelection } from "../features/index.js";
import type { RetryEvent } from "../util/retry.js";
import { LlamaFfiTranslator } from "./llama-ffi-translator.js";
import { LlamaTranslator } from "./llama-translator.js";
import { type ModelSpec, parseModelSpec, resolveGgufPath } from "./model-spec.js";
import { OpenAICompatibleTranslator } from "./openai-compatible.js";
import { OpenAIProbedTranslator } from "./openai-embeddings.js";
import { defaultPromptTemplate, type PromptTemplate, renderPrompt } from "./prompt-template.js";
import type { ProbedTranslator, Translator } from "./types.js";

/** How a remote (`openai:`) engine treats slow or failing calls. Each field defaults as in the engine. */
export interface RemoteCallOptions {
  /** Timeout of one HTTP attempt. */
  timeoutMs?: number;
  /** Extra attempts for rate limits, 5xx, timeouts and network errors. */
  retries?: number;
  /** First backoff between attempts. */
  retryBaseDelayMs?: number;
  /** Called before every retry (e.g. to count retries in metrics). */
  onRetry?: (event: RetryEvent) => void;
}

/** Settings shared by every engine a command opens. */
export interface OpenTranslatorOptions {
  /** CPU threads for an in-process model. Required: llama.cpp's default oversubscribes small machines. */
  threads: number;
  template?: PromptTemplate;
  /** Requests decoded in parallel (llama sequences, or HTTP requests in flight). Defaults to 4. */
  concurrency?: number;
  maxTokens?: number;
  /**
   * Feature views of a probed model (see `feature-views.ts`; the older layer lists such as `final` or
   * `8,final` still work). `auto` reads `last:final,mean:0,mean:⌊L/2⌋` where the engine can (the FFI
   * engine, an architecture whose graph was checked), `last:final` elsewhere. Defaults to `last:final`.
   */
  layer?: string;
  /** Context size per sequence for an in-process model. */
  contextSize?: number;
  /** Feature dimension of a remote probed model (required for `openai:` small models). */
  remoteDim?: number;
  /**
   * In-process engine of a probed GGUF model: `llama` (node-llama-cpp; reads only `last:final`), `ffi`
   * (libllama through koffi in a worker thread; every view, linux-x64 only), or `auto` (see
   * {@link resolveFeatureEngine}). Both batch concurrent requests. Defaults to `auto`.
   */
  featureEngine?: FeatureEngine;
  /** Timeouts and retries of a remote engine; ignored in-process. */
  remote?: RemoteCallOptions;
}

/** Engines that can read a local small model's features; see `OpenTranslatorOptions.featureEngine`. */
export const featureEngines = ["auto", "llama", "ffi"] as const;
export type FeatureEngine = (typeof featureEngines)[number];

/** Where the FFI engine's struct layouts were checked: node-llama-cpp's linux-x64 binaries. */
export function ffiEngineAvailable(): boolean {
  return process.platform === "linux" && process.arch === "x64";
}

/**
 * The engine `openProbedTranslator` uses for a GGUF model: the explicit choice, or for `auto` the FFI
 * engine wherever it is available (linux-x64) — it reads every view, reads `last:final` from the one
 * prefill without computing logits for every prompt token as node-llama-cpp's embeddings context does,
 * and batches concurrent requests in a worker thread — and node-llama-cpp elsewhere.
 * @throws UsageError when `llama` is asked for views other than `last:final`; UnsupportedError when
 *   such views are asked for where the FFI engine is not available.
 */
export function resolveFeatureEngine(layer: string, choice: FeatureEngine = "auto"): "llama" | "ffi" {
  const lastFinalOnly = isLastFinalOnly(layer);
  if (choice === "auto") {
    if (ffiEngineAvailable()) return "ffi";
    if (lastFinalOnly) return "llama";
    throw new UnsupportedError(
      `feature views other than last:final need the ffi engine, which runs on linux-x64 only (this is ${process.platform}-${process.arch})`,
    );
  }
  if (choice === "llama" && !lastFinalOnly) {
    throw new UsageError(
      `feature engine "llama" reads only last:final (layer "final"), not "${layer}": use feature engine "ffi" or "auto"`,
    );
  }
  return choice;
}

/** API key for OpenAI-compatible engines: ROUTELMT_API_KEY, else OPENAI_API_KEY. */
export function apiKeyFromEnvironment(): string | undefined {
  return process.env.ROUTELMT_API_KEY || process.env.OPENAI_API_KEY || undefined;
}

function promptBuilderFor(template: PromptTemplate) {
  return (request: Parameters<typeof renderPrompt>[1]) => ({
    messages: [{ role: "user" as const, content: renderPrompt(template, request) }],
  });
}

/** Opens a plain translator (the large model, or any engine used only to translate). */
export async function openTranslator(
  specText: string | ModelSpec,
  options: OpenTranslatorOptions,
): Promise<Translator> {
  const spec = typeof specText === "string" ? parseModelSpec(specText) : specText;
  const template = options.template ?? defaultPromptTemplate;
  if (spec.kind === "openai") {
    return new OpenAICompatibleTranslator(spec.model, {
      baseURL: spec.baseURL,
      apiKey: apiKeyFromEnvironment(),
      concurrency: options.concurrency,
      maxTokens: options.maxTokens,
      promptBuilder: promptBuilderFor(template),
      // Chat unless the spec asks for completions: a chat model's server knows its template, we do not.
      api: spec.api ?? "chat",
      renderPrompt: (request) => renderPrompt(template, request),
      ...options.remote,
    });
  }
  return await LlamaTranslator.create({
    modelPath: await resolveGgufPath(spec),
    threads: options.threads,
    sequences: options.concurrency,
    maxTokens: options.maxTokens,
    contextSize: options.contextSize,
    template,
    // A plain translator never prefills for features: no entropy, no hidden states.
    entropy: false,
    readsFeatures: false,
  });
}

/** Opens the small model: a translator whose prefill also yields the router's features. */
export async function openProbedTranslator(
  specText: string | ModelSpec,
  options: OpenTranslatorOptions,
): Promise<ProbedTranslator> {
  const spec = typeof specText === "string" ? parseModelSpec(specText) : specText;
  const template = options.template ?? defaultPromptTemplate;
  if (spec.kind === "openai") {
    if ((options.featureEngine ?? "auto") !== "auto") {
      throw new UsageError(
        `feature engine "${options.featureEngine}" applies to local GGUF models, not to ${spec.spec}`,
      );
    }
    if (options.remoteDim === undefined) {
      throw new UsageError(
        `a remote small model (${spec.spec}) needs its hidden size for the features: pass --small-dim N`,
      );
    }
    return new OpenAIProbedTranslator(spec.model, {
      baseURL: spec.baseURL,
      apiKey: apiKeyFromEnvironment(),
      concurrency: options.concurrency,
      maxTokens: options.maxTokens,
      dim: options.remoteDim,
      // A remote model's embeddings give the last token's final state only.
      layer: resolveAutoSelection(options.layer ?? DEFAULT_FEATURE_VIEWS, false),
      template: template.text,
      renderPrompt: (request) => renderPrompt(template, request),
      promptBuilder: promptBuilderFor(template),
      // The features are the raw prompt's (embeddings apply no chat template), so by default decoding
      // continues from that same text; `openai+chat:` decodes through the chat template instead.
      api: spec.api ?? "completions",
      ...options.remote,
    });
  }
  const selection = options.layer ?? DEFAULT_FEATURE_VIEWS;
  // Decided before the model is resolved (a hf: spec may download) so a bad choice fails fast.
  // `auto` asks for no particular engine: it is whatever views the chosen one can read.
  const engine = resolveFeatureEngine(resolveAutoSelection(selection, false), options.featureEngine);
  const layer = resolveAutoSelection(selection, engine === "ffi");
  const settings = {
    modelPath: await resolveGgufPath(spec),
    threads: options.threads,
    sequences: options.concurrency,
    maxTokens: options.maxTokens,
    contextSize: options.contextSize,
    layer,
    template,
  };
  return engine === "ffi"
    ? await LlamaFfiTranslator.create(settings)
    : await LlamaTranslator.create(settings);
}
