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
  // A list of numbers, or (asked for with `encoding_format: "base64"`) the base64 of little-endian
  // float32 values, as the OpenAI API, llama.cpp's server and vLLM send it.
  data: z.array(z.object({ embedding: z.union([z.array(z.number()), z.string()]) })).min(1),
  usage: z.object({ prompt_tokens: z.number().nullish() }).nullish(),
});

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Statuses with which a server may refuse `encoding_format: "base64"` it does not know. */
const ENCODING_REFUSED_STATUSES: ReadonlySet<number> = new Set([400, 422]);

/**
 * The float32 values of a base64 embedding, or null when its length is not a whole number of them.
 * Copied into a buffer of their own: the decoded bytes may sit at an offset a Float32Array cannot start at.
 */
export function decodeBase64Floats(text: string): Float32Array | null {
  const bytes = Buffer.from(text, "base64");
  if (bytes.byteLength % 4 !== 0) return null;
  const values = new Float32Array(bytes.byteLength / 4);
  new Uint8Array(values.buffer).set(bytes);
  if (!LITTLE_ENDIAN) {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let index = 0; index < values.length; index++) values[index] = view.getFloat32(index * 4, true);
  }
  return values;
}

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
  /**
   * Its decodes ask the server for the chosen tokens' log-probabilities (`logprobs`); a server that
   * sends none leaves a translation without confidence (null), which the post-hoc guard ranks by gain.
   */
  readonly reportsConfidence = true;
  readonly featureIdentity: FeatureIdentity;
  /** Whether embeddings are asked for in base64; false once the server refused that encoding. */
  #base64 = true;

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

  /**
   * Reads the last-token state of the rendered prompt from the embeddings endpoint, asking for it
   * in base64: a state of a few thousand floats costs the server and us a fraction of the time as
   * base64 that it costs as JSON numbers to print and parse, and arrives bit for bit the same. A
   * server that refuses the encoding (400 or 422) is asked again without it, and not asked for it again.
   */
  async prefill(request: TranslationRequest, options: PrefillOptions = {}): Promise<Prefilled> {
    const prompt = this.renderPrompt(request);
    const body = { input: prompt, embd_normalize: -1 };
    const askedBase64 = this.#base64;
    let answer: unknown;
    try {
      ({ answer } = await this.post(
        "/embeddings",
        askedBase64 ? { ...body, encoding_format: "base64" } : body,
        options.signal,
      ));
    } catch (error) {
      const refused =
        askedBase64 && error instanceof EngineCallError && ENCODING_REFUSED_STATUSES.has(error.status ?? 0);
      if (!refused) throw error;
      ({ answer } = await this.post("/embeddings", body, options.signal));
      this.#base64 = false;
    }
    const parsed = this.parse(embeddingResponseSchema, answer, "/embeddings", POOLING_HINT);
    const embedding = parsed.data[0]!.embedding;
    const features =
      typeof embedding === "string" ? decodeBase64Floats(embedding) : Float32Array.from(embedding);
    if (features === null || features.length !== this.featureIdentity.dim) {
      const size =
        features === null ? "a base64 embedding that is not float32 values" : `${features.length} values`;
      throw new EngineCallError(
        this.engineName,
        `embedding from POST ${this.baseURL}/embeddings has ${size}, expected dim ${this.featureIdentity.dim}`,
        { isRetryable: false },
      );
    }
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
