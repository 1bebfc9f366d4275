import type { FeatureBlock } from "./feature-blocks.js";

/** Scores of both systems under one metric. */
export interface SystemScores {
  small: number | null;
  large: number | null;
}

/**
 * One line of `records.jsonl`. Unknown values are `null`, never invented. `q_*` and `gain` are on the
 * label metric; gain is oriented so that positive always means "the large model is better", also
 * for metrics where lower is better.
 */
export interface DatasetRecord {
  id: string;
  src: string;
  ref: string | null;
  src_lang: string | null;
  tgt_lang: string | null;
  small: string | null;
  large: string | null;
  scores: Record<string, SystemScores>;
  q_small: number | null;
  q_large: number | null;
  gain: number | null;
  src_chars: number;
  prompt_tokens: number | null;
  entropy: number | null;
  /**
   * The large model's prompt and output tokens as it reported them (what it bills; `eval
   * --budget-unit tokens|cost` reads them). Absent in datasets from `import` or from before.
   */
  large_prompt_tokens?: number | null;
  large_output_tokens?: number | null;
  /**
   * The small model's mean log-probability per token it chose for its translation, the end token
   * included (its confidence, a quality estimate read from the decode itself; the post-hoc guard
   * `guarded-qe` ranks with it).
   * Absent or null when the small engine cannot give it (a remote small model whose server sends no
   * token log-probabilities).
   */
  small_mean_logprob?: number | null;
  /**
   * The large model's mean log-probability per token of the small model's translation, its end
   * included (forced decoding: one large-model prefill, no decode) — a stronger model's quality
   * estimate of the small output, the other signal `guarded-qe` can rank with. Absent when the
   * large engine cannot score a given text (a remote one).
   */
  large_logprob_of_small?: number | null;
}

/** The small model the features were read from. */
export interface SmallModelInfo {
  spec: string | null;
  fingerprint: string | null;
  arch: string | null;
  layer: string | null;
  /** For replay data: the record field the small system's output came from. */
  field?: string;
}

export interface LargeModelInfo {
  spec: string | null;
  field?: string;
}

/** `meta.json`: what the dataset is and how it was made. */
export interface DatasetMeta {
  n: number;
  /** Feature dimension, or null when the dataset has no `features.f32` (replay data). */
  dim: number | null;
  /**
   * The named blocks a feature row concatenates, in order (their dims sum to `dim`). Absent in
   * replay data and in datasets written before blocks were recorded (read as one block named after
   * `small.layer`).
   */
  feature_blocks?: FeatureBlock[];
  label_metric: string;
  /** Whether the label metric's raw scores are better when higher (gain is oriented either way). */
  label_higher_is_better: boolean;
  metric_signatures: Record<string, string>;
  small: SmallModelInfo;
  large: LargeModelInfo;
  template: string | null;
  src_lang: string | null;
  tgt_lang: string | null;
  created: string;
  routelmt_version: string;
  /** How the dataset was made: `collect` (models run here) or `import` (replayed outputs and scores). */
  source: CollectSource | ImportSource;
}

export interface CollectSource {
  kind: "collect";
  input: string;
  decoding: Record<string, unknown>;
  /**
   * Input segments left out because their prompt does not fit a model's context (`--skip-too-long`).
   * Absent in datasets written before it existed.
   */
  skipped_too_long?: SkippedTooLong[];
}

/** An input segment `collect --skip-too-long` left out. */
export interface SkippedTooLong {
  id: string;
  /** 1-based line in the input file. */
  line: number;
  /** Each model (`small`, `large`) it does not fit. */
  too_long_for: { model: string; prompt_tokens: number; max_prompt_tokens: number; context_size: number }[];
}

export interface ImportSource {
  kind: "import";
  input: string;
  fields: Record<string, string>;
  skipped_null_label: number;
}
