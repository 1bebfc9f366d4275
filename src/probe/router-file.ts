/**
 * ROUTER.json: the trained heads plus everything needed to refuse a mismatched deployment — the
 * small model's fingerprint, feature layer, dimension and prompt template, and the label metric.
 */
import { readFile } from "node:fs/promises";
import { z } from "zod";
import { InputError, UsageError } from "../errors/index.js";
import { sameFeatureViews } from "../features/feature-views.js";
import { type ProbeModel, predictRows, probeModelSchema } from "./probe-model.js";

export const ROUTER_FORMAT = 1;

/** The heads a router can hold. `gain` is RouteLMT; `quality` is RouteLMT-Q and the guard; `risk` flags g < −δ. */
export type HeadName = "gain" | "quality" | "risk";
export const HEAD_NAMES: readonly HeadName[] = ["gain", "quality", "risk"];

/** Cross-validated figures of one head (out-of-fold predictions). */
export interface HeadReport {
  /** Target the head was fit to: `gain`, `q_small`, or `gain < -delta` (risk). */
  target: string;
  probe: "ridge" | "mlp" | "logistic";
  folds: number;
  n: number;
  /** Spearman / Pearson of out-of-fold predictions with the head's own target. */
  cv_spearman: number | null;
  cv_pearson: number | null;
  /** Spearman of out-of-fold predictions with the gain (for every head: how well it ranks by gain). */
  cv_spearman_gain: number | null;
  cv_mse: number | null;
  /** Risk head only: ROC AUC of out-of-fold probabilities and the positive rate. */
  cv_auc?: number | null;
  positive_rate?: number;
  lambda: number | null;
}

export interface RouterHead {
  model: ProbeModel;
  report: HeadReport;
  /**
   * 101 quantiles (0 %, 1 %, …, 100 %) of the head's out-of-fold scores on the training data: the
   * starting point of streaming thresholds (a BudgetController at budget p starts at the (1−p) quantile).
   */
  score_quantiles: number[];
  /** Risk head only: the δ of the `gain < −δ` label. */
  delta?: number;
}

export interface RouterFile {
  format: typeof ROUTER_FORMAT;
  routelmt_version: string;
  created: string;
  label_metric: string;
  label_signature: string | null;
  label_higher_is_better: boolean;
  /** What the features are: a router refuses any other small model, layer, dimension or template. */
  feature: {
    fingerprint: string;
    arch: string | null;
    layer: string;
    dim: number;
    template: string | null;
    /** The model spec the training data was collected with (informational). */
    spec: string | null;
  };
  /** Default language pair (the first training dataset's), and every pair seen in training. */
  src_lang: string | null;
  tgt_lang: string | null;
  language_pairs: [string | null, string | null][];
  training: { n: number; datasets: string[]; seed: number; folds: number };
  heads: Partial<Record<HeadName, RouterHead>>;
}

const finite = z.number().refine(Number.isFinite, "must be finite");
const headReportSchema = z
  .object({
    target: z.string(),
    probe: z.enum(["ridge", "mlp", "logistic"]),
    folds: z.number().int(),
    n: z.number().int(),
    cv_spearman: finite.nullable(),
    cv_pearson: finite.nullable(),
    cv_spearman_gain: finite.nullable(),
    cv_mse: finite.nullable(),
    cv_auc: finite.nullable().optional(),
    positive_rate: finite.optional(),
    lambda: finite.nullable(),
  })
  .passthrough();
const headSchema = z.object({
  model: probeModelSchema,
  report: headReportSchema,
  score_quantiles: z.array(finite).length(101),
  delta: finite.optional(),
});
const routerSchema = z
  .object({
    format: z.literal(ROUTER_FORMAT),
    routelmt_version: z.string(),
    created: z.string(),
    label_metric: z.string(),
    label_signature: z.string().nullable(),
    label_higher_is_better: z.boolean(),
    feature: z.object({
      fingerprint: z.string(),
      arch: z.string().nullable(),
      layer: z.string(),
      dim: z.number().int().positive(),
      template: z.string().nullable(),
      spec: z.string().nullable(),
    }),
    src_lang: z.string().nullable(),
    tgt_lang: z.string().nullable(),
    language_pairs: z.array(z.tuple([z.string().nullable(), z.string().nullable()])),
    training: z.object({
      n: z.number().int(),
      datasets: z.array(z.string()),
      seed: z.number(),
      folds: z.number().int(),
    }),
    heads: z.object({
      gain: headSchema.optional(),
      quality: headSchema.optional(),
      risk: headSchema.optional(),
    }),
  })
  .superRefine((router, context) => {
    for (const name of HEAD_NAMES) {
      const head = router.heads[name];
      if (head && head.model.dim !== router.feature.dim) {
        context.addIssue({
          code: "custom",
          path: ["heads", name, "model", "dim"],
          message: `is ${head.model.dim}, but the router's feature dim is ${router.feature.dim}`,
        });
      }
    }
  });

/** Reads and validates ROUTER.json. */
export async function loadRouter(file: string): Promise<RouterFile> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    throw new InputError(
      `cannot read router (${(error as NodeJS.ErrnoException).code ?? "unreadable"})`,
      { file },
      { cause: error },
    );
  }
  return parseRouter(text, file);
}

export function parseRouter(text: string, file = "router"): RouterFile {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new InputError(
      `router is not valid JSON (${(error as Error).message})`,
      { file },
      { cause: error },
    );
  }
  const parsed = routerSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new InputError(
      `not a routelmt router: ${issue?.path.join(".") || "(root)"} ${issue?.message ?? ""}`.trim(),
      {
        file,
      },
    );
  }
  return parsed.data as RouterFile;
}

/** What the features at hand are (from a dataset's meta or a live small model). */
export interface FeatureSource {
  fingerprint: string | null;
  layer: string | null;
  dim: number | null;
  template: string | null;
}

/**
 * Refuses features that are not the ones the router was trained on: another model file, another
 * layer, another dimension or another prompt template would make its scores meaningless.
 */
export function assertRouterMatches(router: RouterFile, source: FeatureSource, what: string): void {
  const mismatches: string[] = [];
  const expect = (name: string, trained: unknown, actual: unknown) => {
    if (trained !== actual)
      mismatches.push(`${name}: router ${JSON.stringify(trained)}, ${what} ${JSON.stringify(actual)}`);
  };
  expect("small-model fingerprint", router.feature.fingerprint, source.fingerprint);
  // Files written when selections were layer lists spell the same views differently (`final`).
  if (!sameFeatureViews(router.feature.layer, source.layer ?? "")) {
    expect("layer", router.feature.layer, source.layer);
  }
  expect("feature dim", router.feature.dim, source.dim);
  expect("prompt template", router.feature.template, source.template);
  if (mismatches.length > 0) {
    throw new UsageError(`the router does not match ${what}: ${mismatches.join("; ")}`);
  }
}

/** Scores of every head the router has, for `rows` feature rows. */
export type HeadScores = Partial<Record<HeadName, Float64Array>>;

export function predictHeads(router: RouterFile, features: Float32Array, rows: number): HeadScores {
  const scores: HeadScores = {};
  for (const name of HEAD_NAMES) {
    const head = router.heads[name];
    if (head) scores[name] = predictRows(head.model, features, rows);
  }
  return scores;
}
