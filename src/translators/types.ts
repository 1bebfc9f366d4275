import type { FeatureViewSpan } from "../features/feature-views.js";

/** One text to translate. Languages are codes (ISO 639-1/639-3 or BCP-47, e.g. `en`, `deu`, `zh-Hant`). */
export interface TranslationRequest {
  id?: string;
  text: string;
  srcLang: string;
  tgtLang: string;
}

/** Why decoding stopped: end of sequence, the token limit, or an abort. */
export type FinishReason = "stop" | "length" | "abort" | "other";

export interface Translation {
  text: string;
  /** Model identity as the engine reports it (file name for GGUF, model name for HTTP engines). */
  model: string;
  /** Prompt tokens as the engine counted them; null when the engine did not report a count (some HTTP servers). */
  promptTokens: number | null;
  /** Generated tokens as the engine counted them; null when the engine did not report a count. */
  outputTokens: number | null;
  /** Wall time for this translation in milliseconds. */
  ms: number;
  finishReason?: FinishReason;
  /**
   * Mean natural-log probability the model gave each token it chose, the end-of-generation token
   * included when it stopped there (greedy: each token's log-softmax where it was chosen) — the
   * model's confidence in its own translation, an unsupervised quality estimate that costs nothing
   * beyond a pass over the vocabulary per token. Present when asked for (`DecodeOptions.confidence`)
   * from engines that see the logits (the in-process ones) or ask a server for them (a remote small
   * model's `logprobs`); null when no token was chosen (aborted first) or the server sent none.
   */
  meanLogProbability?: number | null;
}

/** Decoding settings. Defaults are greedy and deterministic. */
export interface DecodeOptions {
  /** Maximum new tokens. Defaults to 256. */
  maxTokens?: number;
  signal?: AbortSignal;
  /**
   * Called with the translation's text as it is decoded, in pieces (deltas). Contract:
   * - the deltas concatenate to exactly the decoded text before trimming, and the translation's `text`
   *   is that concatenation with leading and trailing whitespace removed (`String.prototype.trim`);
   *   so a caller that streams deltas should trim the start of what it shows, and the end once done;
   * - a delta never ends inside a character (a multi-byte UTF-8 character split across tokens is
   *   held back until complete) and never contains text a later token could still change;
   * - every delta is delivered before the translation's promise resolves; none is empty.
   * In-process engines call it as tokens come (after each decode step, less what is held back); remote
   * engines call it per streamed chunk of the answer. Not called when nothing was
   * generated. It streams one translation: `translate` refuses it with more than one request.
   * Defaults to none.
   */
  onText?: (delta: string) => void;
  /**
   * Ask for `meanLogProbability`, the model's confidence in its translation, from engines that can
   * give it (the in-process engines, at a pass over the vocabulary per generated token; a remote
   * small model, by asking its server for `logprobs`; not while streaming). Defaults to false.
   */
  confidence?: boolean;
}

/** Any translation engine: in-process GGUF, OpenAI-compatible HTTP, ... */
export interface Translator {
  /** Engine kind, e.g. `llama` or `openai`. */
  readonly engine: string;
  readonly modelId: string;
  translate(requests: TranslationRequest[], options?: DecodeOptions): Promise<Translation[]>;
  /**
   * Mean natural-log probability per token this model gives `translation` as its answer to the
   * request — forced decoding: the prompt, the translation's tokens, then the end of generation
   * (the likelier of the model's end-of-sequence and end-of-turn tokens; for an empty translation,
   * that alone) — one prefill, no decoding. A stronger model's likelihood of another model's translation is a quality estimate of
   * it (what the `guarded-qe` guard can rank with). Present on the in-process engines.
   */
  scoreTranslation?(request: TranslationRequest, translation: string): Promise<number>;
  dispose(): Promise<void>;
}

/** What a prefilled prompt knows before any token is decoded. */
export interface Prefilled {
  /** The small model's hidden state at the last prompt token (concatenated over the selected layers). */
  readonly features: Float32Array;
  /** Entropy (nats) of the next-token distribution at the last prompt token, or null if the engine cannot give it. */
  readonly entropy: number | null;
  /** Prompt tokens as the engine counted them; null when a remote engine did not report a count. */
  readonly promptTokens: number | null;
  /** Decode from this prefill (no second prefill). May be called once. */
  continue(options?: DecodeOptions): Promise<Translation>;
  /** Drop the prefill without decoding (the request was routed away). Idempotent. */
  release(): Promise<void>;
}

/** Identity of the feature a router is trained on: a router must refuse any other. */
export interface FeatureIdentity {
  /** Hash identifying the exact model file. */
  fingerprint: string;
  arch: string;
  /**
   * The feature views, canonical and expanded (e.g. `last:final`, `last:8,mean:8`; `all` is listed
   * view by view). Files written when selections were layer lists hold the old spelling (`final`,
   * `8,16,final`); compare with `sameFeatureViews`, which treats both spellings alike.
   */
  layer: string;
  dim: number;
  /** The prompt template text the features were read under. */
  template: string;
  /**
   * Where each view lies in the feature vector, in selection order (`offset` + `dim` per view; the
   * dims sum to `dim`). Set by every engine; optional only for identities built by hand.
   */
  views?: FeatureViewSpan[];
}

/** Options of a prefill. */
export interface PrefillOptions {
  /** Abandons a prefill that waits on a remote engine; an in-process prefill runs to its end regardless. */
  signal?: AbortSignal;
}

/** A translator whose prompt prefill also yields the router's features (the small model). */
export interface ProbedTranslator extends Translator {
  readonly featureIdentity: FeatureIdentity;
  /**
   * True when translations asked for `confidence` carry `meanLogProbability` (what the post-hoc guard
   * ranks with); from a remote small model it is null where the server sent no log-probabilities.
   */
  readonly reportsConfidence?: boolean;
  prefill(request: TranslationRequest, options?: PrefillOptions): Promise<Prefilled>;
}
