import { z } from "zod";
import { EngineCallError, UnsupportedError, UsageError } from "../errors/index.js";
import {
  DEFAULT_FEATURE_VIEWS,
  featureViewSpans,
  featureViewsOf,
  normaliseFeatureViews,
} from "../features/index.js";
import {
  DEFAULT_INSTRUCTION_TEMPLATE,
  type OpenAICompatibleOptions,
  OpenAICompatibleTranslator,
  renderInstruction,
} from "./openai-compatible.js";
import type {
  DecodeOptions,
  FeatureIdentity,
  Prefilled,
  PrefillOptions,
  ProbedTranslator,
  Translation,
  TranslationRequest,
} from "./types.js";

export interface OpenAIProbedTranslatorOptions extends OpenAICompatibleOptions {
  /** Length of the feature vector the server returns (the model's hidden size); every answer is checked against it. */
  dim: number;
  /** Identifies the remote model for routers. Defaults to `remote:<baseURL>#<model>`; pass a file hash when you know it. */
  fingerprint?: string;
  /** Model architecture, e.g. `qwen2`. Defaults to `remote` (unknown). */
  arch?: string;
  /**
   * Feature views: only `last:final` (also spelled `final`), the state a server's last-token pooling
   * gives. Defaults to `last:final`.
   */
  layer?: string;
  /**
   * The prompt template text the features are read under, with `{srcLang}`, `{tgtLang}`, `{text}`.
   * Defaults to {@link DEFAULT_INSTRUCTION_TEMPLATE}.
   */
  template?: string;
  /**
   * Renders the prompt whose last-token state is the feature (and, with `api: "completions"`, the
   * prompt decoded from, so decoding sees the very text the features came from). Defaults to
   * filling `template`. `api` says how `continue()` and `translate()` decode.
   */
  renderPrompt?: (request: TranslationRequest) => string;
}

const embeddingResponseSchema = z.object({
  data: z.array(z.object({ embedding: z.array(z.number()) })).min(1),
  usage: z.object({ prompt_tokens: z.number().nullish() }).nullish(),
});

/** Hint appended to shape errors: the usual cause is a server not pooling the last token. */
const POOLING_HINT =
  " (expected one pooled vector: start llama.cpp server with --embeddings --pooling last, or vLLM's pooling runner with LAST pooling)";

/**
 * The small model served remotely (llama.cpp server, vLLM) as a {@link ProbedTranslator}.
 *
 * `prefill()` asks the embeddings endpoint (`POST {baseURL}/embeddings` with `embd_normalize: -1`,
 * i.e. no normalisation) for the last-token state of the rendered prompt: the server must pool the
 * LAST token (llama.cpp `--pooling last`; vLLM pooling runner with LAST pooling and no activation).
 * Entropy is not available this way (null). `continue()` then decodes with a separate completion
 * request, so the server prefills the prompt a second time: a remote small model costs two prefills
 * per kept request, unlike the in-process engine. The `ms` of a continued translation covers the
 * decode request only. `release()` has nothing to free remotely.
 *
 * Plain `translate()` behaves exactly like {@link OpenAICompatibleTranslator}.
 */
export class OpenAIProbedTranslator extends OpenAICompatibleTranslator implements ProbedTranslator {
  override readonly engine: string = "openai-embeddings";
  readonly featureIdentity: FeatureIdentity;

  constructor(modelId: string, options: OpenAIProbedTranslatorOptions) {
    const template = options.template ?? DEFAULT_INSTRUCTION_TEMPLATE;
    const renderPrompt =
      options.renderPrompt ?? ((request: TranslationRequest) => renderInstruction(template, request));
    super(modelId, {
      ...options,
      renderPrompt,
      // Unless told otherwise, chat decoding sends the same rendered text as the user message.
      promptBuilder:
        options.promptBuilder ??
        ((request) => ({ messages: [{ role: "user", content: renderPrompt(request) }] })),
    });
    if (!Number.isInteger(options.dim) || options.dim < 1) {
      throw new UsageError(`dim must be a positive integer, got ${options.dim}`);
    }
    const views = normaliseFeatureViews(options.layer ?? DEFAULT_FEATURE_VIEWS);
    if (views !== DEFAULT_FEATURE_VIEWS) {
      throw new UnsupportedError(
        `feature views "${views}" cannot be read from a remote small model (${modelId}): its embeddings endpoint pools only the last token's final state (last:final); use an in-process GGUF model for other views`,
      );
    }
    this.featureIdentity = {
      fingerprint: options.fingerprint ?? `remote:${this.baseURL}#${modelId}`,
      arch: options.arch ?? "remote",
      layer: views,
      dim: options.dim,
      template,
      views: featureViewSpans(featureViewsOf(views, 1), () => options.dim),
    };
  }

  /** Reads the last-token state of the rendered prompt from the embeddings endpoint. */
  async prefill(request: TranslationRequest, options: PrefillOptions = {}): Promise<Prefilled> {
    const prompt = this.renderPrompt(request);
    const { answer } = await this.post("/embeddings", { input: prompt, embd_normalize: -1 }, options.signal);
    const parsed = this.parse(embeddingResponseSchema, answer, "/embeddings", POOLING_HINT);
    const embedding = parsed.data[0]!.embedding;
    if (embedding.length !== this.featureIdentity.dim) {
      throw new EngineCallError(
        this.engineName,
        `embedding from POST ${this.baseURL}/embeddings has ${embedding.length} values, expected dim ${this.featureIdentity.dim}`,
        { isRetryable: false },
      );
    }
    const features = Float32Array.from(embedding);
    let state: "ready" | "continued" | "released" = "ready";
    return {
      features,
      entropy: null,
      promptTokens: parsed.usage?.prompt_tokens ?? null,
      continue: async (options?: DecodeOptions): Promise<Translation> => {
        if (state !== "ready")
          throw new UsageError(
            `${this.engineName}: continue() after ${state === "continued" ? "continue()" : "release()"}`,
          );
        state = "continued";
        return this.translateOne(request, options);
      },
      release: async () => {
        if (state === "ready") state = "released";
      },
    };
  }
}
