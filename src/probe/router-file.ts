/**
 * ROUTER.json: the trained heads plus everything needed to refuse a mismatched deployment — the
 * small model's fingerprint, feature layer, dimension and prompt template, and the label metric.
 */
import { readFile } from "node:fs/promises";
import { z } from "zod";
import {
  canonicalViewNames,
  DEFAULT_FEATURE_BLOCK,
  type FeatureBlock,
  type FeatureViewSpan,
  featureBlocksOf,
  featureSelectionText,
  isSourceBlock,
  resolveFeatureBlocks,
  sourceBlocksAt,
} from "../dataset/feature-blocks.js";
import type { DatasetRecord } from "../dataset/types.js";
import { InputError, UsageError } from "../errors/index.js";
import { type PosthocObservation, RESTACK_INPUTS, restackScore } from "./gain-restack.js";
import {
  GUARD_KINDS,
  type GuardKind,
  type GuardReport,
  preferredQeGuard,
  QE_SIGNALS,
  type QeSignal,
  qeGuardRule,
  riskAdjustedScore,
} from "./guard-choice.js";
import type { LearningCurveReport } from "./learning-curve.js";
import { type ProbeModel, predictRows, probeModelSchema } from "./probe-model.js";
import type { SelectionReport } from "./probe-selection.js";

export const ROUTER_FORMAT = 1;

/** The heads a router can hold. `gain` is RouteLMT; `quality` is RouteLMT-Q and the guard; `risk` flags g < −δ. */
export type HeadName = "gain" | "quality" | "risk";
export const HEAD_NAMES: readonly HeadName[] = ["gain", "quality", "risk"];

/** Cross-validated figures of one head (out-of-fold predictions). */
export interface HeadReport {
  /** Target the head was fit to: `gain`, `q_small`, or `gain < -delta` (risk). */
  target: string;
  /** `ridge-rank`: ridge on normal scores of the target, mapped back to its units. */
  probe: "ridge" | "ridge-rank" | "mlp" | "logistic";
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
  /** What the features are: a router refuses any other small model, feature blocks, dimension or template. */
  feature: {
    fingerprint: string;
    arch: string | null;
    /** The feature selection, comma-joined block names (the layer selection in routers without `blocks`). */
    layer: string;
    dim: number;
    template: string | null;
    /** The model spec the training data was collected with (informational). */
    spec: string | null;
    /**
     * The feature blocks the heads read, in order (`last:final`, `mean:8`, …); their widths sum to
     * `dim`. Absent in routers from before blocks: one block named after `layer`.
     */
    blocks?: string[];
  };
  /** Default language pair (the first training dataset's), and every pair seen in training. */
  src_lang: string | null;
  tgt_lang: string | null;
  language_pairs: [string | null, string | null][];
  training: { n: number; datasets: string[]; seed: number; folds: number };
  heads: Partial<Record<HeadName, RouterHead>>;
  /** How the gain head's blocks and probe were chosen: the candidates' cross-validated table. */
  selection?: SelectionReport;
  /** The gain head's cross-validated MeanDelta on 25/50/100 % of the data, and whether it still rises. */
  learning_curve?: LearningCurveReport;
  /** The risk-adjusted score of the `guarded` policy and its cross-validated trade-off. */
  guard?: GuardReport;
  /**
   * The post-hoc guard of `guarded-qe`: predicted gain − λ · a quality estimate of the decoded
   * small translation (`signal`: the small model's confidence in it, or the large model's likelihood
   * of it), λ chosen as for `guard`. Present when every training record carried a signal.
   */
  guard_qe?: GuardReport;
  /**
   * The guard the `guarded` policy ranks by (`guard`, in-model, or `guard_qe`, post-hoc), chosen in
   * training (see `chooseGuardKind`) or asked for; absent (routers written before there was a choice)
   * means in-model.
   */
  guarded_by?: GuardKind;
}

const finite = z.number().refine(Number.isFinite, "must be finite");
/** A gain re-estimate: a ridge model over its named inputs, one weight per input. */
const restackSchema = z
  .object({
    inputs: z.array(z.enum(RESTACK_INPUTS)).nonempty(),
    model: probeModelSchema,
  })
  .superRefine((restack, context) => {
    if (restack.model.kind !== "ridge")
      context.addIssue({ code: "custom", path: ["model", "kind"], message: "must be ridge" });
    if (restack.model.dim !== restack.inputs.length)
      context.addIssue({
        code: "custom",
        path: ["model", "dim"],
        message: `is ${restack.model.dim}, but the re-estimate names ${restack.inputs.length} inputs`,
      });
  });
const restackCutSchema = z
  .object({
    diff: finite,
    se: finite,
    taken: z.boolean(),
    unguarded: z.object({ mean_delta: z.array(finite), severe_loss: z.array(finite) }).optional(),
  })
  .passthrough();
/** A guard's record in ROUTER.json; only λ, the re-estimate and the score quantiles are used to route. */
function guardSchema(method: GuardReport["method"]) {
  return z
    .object({
      method: z.literal(method),
      signal: z.enum(QE_SIGNALS).optional(),
      restack: restackSchema.optional(),
      restack_cut: restackCutSchema.optional(),
      signal_choice: z
        .object({
          rule: z.string(),
          candidates: z.array(
            z
              .object({
                signal: z.enum(QE_SIGNALS),
                restack: restackSchema.optional(),
                restack_cut: restackCutSchema.optional(),
                lambda: finite.min(0),
                mean_delta: z.array(finite.nullable()),
                severe_loss: z.array(finite.nullable()),
                score_quantiles: z.array(finite).length(101).optional(),
              })
              .passthrough(),
          ),
        })
        .optional(),
      lambda: finite.min(0),
      tolerance: finite,
      severe_delta: finite,
      budgets: z.array(finite),
      grid: z.array(
        z.object({
          lambda: finite,
          mean_delta: z.array(finite.nullable()),
          severe_loss: z.array(finite.nullable()),
        }),
      ),
      score_quantiles: z.array(finite).length(101),
    })
    .passthrough();
}

const headReportSchema = z
  .object({
    target: z.string(),
    probe: z.enum(["ridge", "ridge-rank", "mlp", "logistic"]),
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
      blocks: z.array(z.string()).nonempty().optional(),
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
    // Reports are kept for people and the eval report; only the guard's numbers are used to route.
    selection: z.object({}).passthrough().optional(),
    learning_curve: z.object({}).passthrough().optional(),
    guard: guardSchema("risk-adjusted").optional(),
    guard_qe: guardSchema("qe-adjusted").optional(),
    guarded_by: z.enum(GUARD_KINDS).optional(),
  })
  .superRefine((router, context) => {
    // Serving appends the source-text blocks after the model's values, in their row order.
    const blocks = router.feature.blocks ?? [];
    const sources = blocks.filter((block) => isSourceBlock(block));
    const expected = sourceBlocksAt(sources, 0).map((block) => block.name);
    if (sources.length > 0 && blocks.slice(-sources.length).join() !== expected.join()) {
      context.addIssue({
        code: "custom",
        path: ["feature", "blocks"],
        message: `the source-text blocks must come last, in this order: ${expected.join(", ")}`,
      });
    }
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
    if (router.guarded_by === "post-hoc" && router.guard_qe === undefined)
      context.addIssue({
        code: "custom",
        path: ["guarded_by"],
        message: "is post-hoc, but the router has no post-hoc guard (guard_qe)",
      });
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

/** The feature blocks a router reads, in order (one named after its layer for routers from before blocks). */
export function routerBlocks(router: RouterFile): string[] {
  return router.feature.blocks ?? canonicalViewNames(router.feature.layer);
}

/**
 * The feature selection to open the small model with so that it yields exactly the router's model
 * blocks, in order: their names, comma-joined (`last:final`, `last:8,mean:8`). Source-text blocks
 * are computed from the text, not read from the model; a router reading nothing else opens the
 * model with `last:final`, the view every engine gives, and ignores it.
 */
export function routerFeatureSelection(router: RouterFile): string {
  const modelBlocks = routerBlocks(router).filter((block) => !isSourceBlock(block));
  return modelBlocks.length > 0 ? featureSelectionText(modelBlocks) : DEFAULT_FEATURE_BLOCK;
}

/**
 * What the features at hand are: a dataset (its blocks) or a live small model (its feature
 * identity: views, or one block named after its layer selection).
 */
export interface FeatureSource {
  fingerprint: string | null;
  template: string | null;
  dim: number | null;
  layer?: string | null;
  blocks?: readonly FeatureBlock[];
  views?: readonly FeatureViewSpan[];
}

/**
 * Refuses features that are not the ones the router was trained on — another model file, prompt
 * template, feature blocks or width would make its scores meaningless — and returns the blocks of
 * the source that make up the router's feature vector, in the router's order.
 */
export function assertRouterMatches(router: RouterFile, source: FeatureSource, what: string): FeatureBlock[] {
  const mismatches: string[] = [];
  const expect = (name: string, trained: unknown, actual: unknown) => {
    if (trained !== actual)
      mismatches.push(`${name}: router ${JSON.stringify(trained)}, ${what} ${JSON.stringify(actual)}`);
  };
  expect("small-model fingerprint", router.feature.fingerprint, source.fingerprint);
  expect("prompt template", router.feature.template, source.template);
  let resolved: FeatureBlock[] = [];
  const modelBlocks =
    source.blocks ??
    (source.dim === null
      ? []
      : featureBlocksOf({
          layer: source.layer ?? "final",
          dim: source.dim,
          views: source.views ? [...source.views] : undefined,
        }));
  // Every text gives the source-text blocks the router reads; they follow the model's values (see
  // appendSourceBlocks).
  const available = [...modelBlocks, ...sourceBlocksAt(routerBlocks(router), source.dim ?? 0)];
  try {
    resolved = resolveFeatureBlocks(available, routerBlocks(router), what);
    expect(
      "feature dim",
      router.feature.dim,
      resolved.reduce((sum, block) => sum + block.dim, 0),
    );
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    mismatches.push(
      `feature blocks: router ${featureSelectionText(routerBlocks(router))}, ${what} ${available.map((block) => block.name).join(" | ") || "none"}`,
    );
  }
  if (mismatches.length > 0) {
    throw new UsageError(`the router does not match ${what}: ${mismatches.join("; ")}`);
  }
  return resolved;
}

/** A language pair as routers name it: `en→de`, compared without case. */
export function languagePairName(source: string, target: string): string {
  return `${source.toLowerCase()}→${target.toLowerCase()}`;
}

/**
 * The pairs the router was trained on ({@link languagePairName}), or null when it recorded none or
 * one without its languages: then no text can be said to be of an unseen pair.
 */
export function trainedPairNames(router: Pick<RouterFile, "language_pairs">): ReadonlySet<string> | null {
  const pairs = router.language_pairs;
  if (pairs.length === 0) return null;
  const names = new Set<string>();
  for (const [source, target] of pairs) {
    if (source === null || target === null) return null;
    names.add(languagePairName(source, target));
  }
  return names;
}

export type HeadScores = Partial<Record<HeadName, Float64Array>>;

/** Scores of every head the router has, for `rows` feature rows. */
export function predictHeads(router: RouterFile, features: Float32Array, rows: number): HeadScores {
  const scores: HeadScores = {};
  for (const name of HEAD_NAMES) {
    const head = router.heads[name];
    if (head) scores[name] = predictRows(head.model, features, rows);
  }
  return scores;
}

/**
 * The `guarded` policy's score of row `row`: the gain head's prediction minus the router's λ times
 * the risk head's probability; null when the router has no risk-adjusted guard (or a head is missing).
 */
export function guardedScore(router: RouterFile, scores: HeadScores, row: number): number | null {
  const guard = router.guard;
  const gain = scores.gain?.[row];
  const risk = scores.risk?.[row];
  if (!guard || gain === undefined || risk === undefined) return null;
  return riskAdjustedScore(gain, risk, guard.lambda);
}

/** The signal the router's post-hoc guard ranks with; null when it has none. */
export function qeSignalOf(router: RouterFile): QeSignal | null {
  return router.guard_qe ? (router.guard_qe.signal ?? "small-confidence") : null;
}

/**
 * Whether a post-hoc guard reads `signal` of each decoded small translation: as its λ term (λ > 0),
 * or as an input of its gain re-estimate.
 */
export function qeGuardReads(guard: GuardReport, signal: QeSignal): boolean {
  return (
    ((guard.signal ?? "small-confidence") === signal && guard.lambda !== 0) ||
    (guard.restack?.inputs.includes(signal) ?? false)
  );
}

export { qeGuardAdjusts } from "./guard-choice.js";

/**
 * The router's best post-hoc guard that does not read the large model's likelihood (for a large
 * engine that cannot score a given text): its own if it does not, else, among the candidates
 * training measured that do not, the one training's rule would have kept (a re-estimate that passed
 * its cut first, the lowest cross-validated severe-loss rate), with its λ, re-estimate and score
 * quantiles; null when there is none.
 */
export function qeGuardWithoutLargeLikelihood(router: RouterFile): GuardReport | null {
  const guard = router.guard_qe;
  if (!guard) return null;
  if (!qeGuardReads(guard, "large-likelihood")) return guard;
  const usable: GuardReport[] = [];
  for (const candidate of guard.signal_choice?.candidates ?? []) {
    if (!candidate.score_quantiles) continue;
    const report: GuardReport = {
      method: guard.method,
      signal: candidate.signal,
      ...(candidate.restack ? { restack: candidate.restack } : {}),
      ...(candidate.restack_cut ? { restack_cut: candidate.restack_cut } : {}),
      rule: qeGuardRule(candidate.signal, candidate.restack !== undefined),
      lambda: candidate.lambda,
      tolerance: guard.tolerance,
      severe_delta: guard.severe_delta,
      budgets: guard.budgets,
      grid: [
        { lambda: candidate.lambda, mean_delta: candidate.mean_delta, severe_loss: candidate.severe_loss },
      ],
      score_quantiles: candidate.score_quantiles,
    };
    if (!qeGuardReads(report, "large-likelihood")) usable.push(report);
  }
  // The same preference as training's choice (a re-estimate that passed its cut, else the plain guard).
  return preferredQeGuard(usable);
}

/** What a record says of its decoded small translation, with `gain` the gain head's prediction for it. */
export function posthocObservationOf(
  record: Pick<
    DatasetRecord,
    "small_mean_logprob" | "large_logprob_of_small" | "prompt_tokens" | "src" | "small"
  >,
  gain: number,
): PosthocObservation {
  return {
    gain,
    smallConfidence: record.small_mean_logprob ?? null,
    largeLikelihood: record.large_logprob_of_small ?? null,
    promptTokens: record.prompt_tokens,
    src: record.src,
    small: record.small,
  };
}

/**
 * The `guarded-qe` policy's score: a segment's predicted gain (re-estimated after the decode where
 * the guard has a re-estimate) minus the router's post-hoc λ times its post-hoc signal (see
 * {@link qeSignalOf}); null when the router has no post-hoc guard or the request lacks what it reads.
 */
export function qeGuardedScore(router: RouterFile, observation: PosthocObservation): number | null {
  const guard = router.guard_qe;
  if (!guard) return null;
  const gain = guard.restack ? restackScore(guard.restack, observation) : observation.gain;
  if (gain === null || !Number.isFinite(gain)) return null;
  if (guard.lambda === 0) return gain;
  const signalValue =
    (guard.signal ?? "small-confidence") === "large-likelihood"
      ? observation.largeLikelihood
      : observation.smallConfidence;
  if (signalValue === null || !Number.isFinite(signalValue)) return null;
  return riskAdjustedScore(gain, signalValue, guard.lambda);
}

/** A record's value of a post-hoc signal (undefined or null where it was not collected). */
export function qeSignalValue(
  record: Pick<DatasetRecord, "small_mean_logprob" | "large_logprob_of_small">,
  signal: QeSignal,
): number | null | undefined {
  return signal === "large-likelihood" ? record.large_logprob_of_small : record.small_mean_logprob;
}
