import { UsageError } from "../errors/index.js";
import { normaliseLayerSelection } from "../features/index.js";
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
  /** Feature layer selection for a probed model. Defaults to `final`. */
  layer?: string;
  /** Context size per sequence for an in-process model. */
  contextSize?: number;
  /** Feature dimension of a remote probed model (required for `openai:` small models). */
  remoteDim?: number;
  /**
   * In-process engine of a probed GGUF model: `llama` (node-llama-cpp; batches sequences, reads only
   * `final`), `ffi` (libllama through koffi; any layer selection, one call at a time), or `auto`
   * (see {@link resolveFeatureEngine}). Defaults to `auto`.
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
 * The engine `openProbedTranslator` uses for a GGUF model: the explicit choice, or for `auto`:
 * - a layer other than `final`: the FFI engine (node-llama-cpp cannot read it);
 * - `final` decoded one sequence at a time: the FFI engine where it is available — it reads the
 *   final state by decoding the last prompt token with embeddings on (+8 % prefill on a 32k-vocabulary
 *   model), where node-llama-cpp's embeddings context computes logits for every prompt token (+47 %);
 * - `final` with several sequences in parallel: node-llama-cpp, which batches them.
 * @throws UsageError when `llama` is asked for a selection other than `final`.
 */
export function resolveFeatureEngine(
  layer: string,
  choice: FeatureEngine = "auto",
  concurrency = 1,
): "llama" | "ffi" {
  const normalised = normaliseLayerSelection(layer);
  if (choice === "auto") {
    if (normalised !== "final") return "ffi";
    return concurrency <= 1 && ffiEngineAvailable() ? "ffi" : "llama";
  }
  if (choice === "llama" && normalised !== "final") {
    throw new UsageError(
      `feature engine "llama" reads only layer "final", not "${normalised}": use feature engine "ffi" or "auto"`,
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
      layer: options.layer ?? "final",
      template: template.text,
      renderPrompt: (request) => renderPrompt(template, request),
      promptBuilder: promptBuilderFor(template),
      // The features are the raw prompt's (embeddings apply no chat template), so by default decoding
      // continues from that same text; `openai+chat:` decodes through the chat template instead.
      api: spec.api ?? "completions",
      ...options.remote,
    });
  }
  const layer = options.layer ?? "final";
  // Decided before the model is resolved (a hf: spec may download) so a bad choice fails fast.
  const engine = resolveFeatureEngine(layer, options.featureEngine, options.concurrency ?? 4);
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
