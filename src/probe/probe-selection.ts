/**
 * Choosing the gain probe by nested cross-validation: which feature blocks it reads and which kind
 * of probe it is, judged on what routing needs — MeanDelta@p at the user's budgets (the mean true
 * gain of the segments a budget sends to the large model) and Spearman with the gain.
 *
 * Every candidate is measured the same way. Outer folds measure: each outer fold's rows are ranked
 * by a probe fitted on the other folds. Inner folds choose the probe's hyperparameters (the ridge
 * penalty) inside each outer training set, by the same mean MeanDelta over the budgets, so the rows
 * a candidate is measured on never influence its fit.
 *
 * Candidates: every block alone, all blocks together, and a greedy forward selection (start from
 * the best single block, add the block from a pool of the best singles that raises the score most,
 * stop when none raises it or at a size limit); probe kinds ridge on the gain, ridge on normal
 * scores of the gain (routing needs only the order, and ranks tame the gain's heavy tails), and an
 * MLP on the best ridge feature set without the sparse `words` block. With many blocks, single
 * blocks are first screened by plain k-fold CV (penalty chosen on the same folds, so optimistic;
 * only used to rank them) and only the best few get the nested treatment.
 *
 * The rule: the highest mean MeanDelta over the budgets wins, unless a simpler candidate (fewer
 * feature values, then ridge before rank-ridge before MLP, then the default block) is a near copy of
 * it — out-of-fold predictions correlated at 0.99 or more, as when the ridge all but zeroes a block.
 * Not Breiman's one-standard-error rule, which the selection used before, nor a simplicity margin
 * on the score (within 1 % of the best, which it used next): every candidate's score is already
 * measured out of sample, the router is judged by what it predicts, and a simpler probe buys nothing
 * at serve time (every view rides on the same prefill, the source-text blocks are computed from the
 * text). The margin kept passing over the `words` block, 1,024 values, for smaller sets that
 * predicted differently and did worse on unseen sentences (docs/router-quality.md).
 */
import {
  blockParts,
  DEFAULT_FEATURE_BLOCK,
  type FeatureBlock,
  sliceFeatureBlocks,
} from "../dataset/feature-blocks.js";
import { UsageError } from "../errors/index.js";
import { SOURCE_WORDS_BLOCK } from "../features/source-words.js";
import { pearson, spearman } from "../stats/correlation.js";
import { studentT975 } from "../stats/normal.js";
import { createRandom, permutation } from "../stats/random.js";
import { DEFAULT_LAMBDAS, kFoldAssignment } from "./cross-validation.js";
import type { FeatureMatrix } from "./matrix.js";
import { fitMlp } from "./mlp.js";
import {
  cellsOf,
  type FoldSplit,
  innerSplit,
  type NestedFolds,
  nestedFoldAssignment,
  outerSplit,
} from "./nested-folds.js";
import { type ProbeModel, predictRows, type RidgeProbeModel } from "./probe-model.js";
import {
  createRidgeSolver,
  pickRows,
  preferredRidgeForm,
  type RidgeForm,
  type RidgeSolver,
} from "./ridge-solver.js";
import { budgetCount, normalScores, topMeasures } from "./routing-measures.js";
import {
  bootstrapSelection,
  DEFAULT_BOOTSTRAP_RESAMPLES,
  type SelectionEstimate,
} from "./selection-bootstrap.js";

/** Probe kinds the selection compares. */
export type SelectableProbe = "ridge" | "ridge-rank" | "mlp";
export const SELECTABLE_PROBES: readonly SelectableProbe[] = ["ridge", "ridge-rank", "mlp"];
const PROBE_SIMPLICITY: Record<SelectableProbe, number> = { ridge: 0, "ridge-rank": 1, mlp: 2 };

export const DEFAULT_SELECTION_BUDGETS: readonly number[] = [0.1, 0.2, 0.3, 0.5];
export const DEFAULT_INNER_FOLDS = 3;
/** Best single blocks that greedy forward selection draws from, and that get nested CV after a screen. */
export const DEFAULT_GREEDY_POOL = 4;
/** Most blocks a greedy set may hold. */
export const DEFAULT_MAX_BLOCKS = 4;
/** Above this many blocks, single blocks are screened before nested CV. */
export const DEFAULT_SCREEN_ABOVE = 8;
/** Widest feature set an MLP candidate is tried on (its cost grows with the width). */
export const DEFAULT_MLP_MAX_DIM = 4096;

export interface SelectionOptions {
  /** Budgets p of MeanDelta@p; the score is their mean. */
  budgets: readonly number[];
  /** Outer folds (they measure). */
  folds: number;
  /** Inner folds (they choose the penalty). */
  innerFolds: number;
  seed: number;
  /** Severe loss: gain < −δ (reported, not selected on). */
  severeDelta: number;
  probes: readonly SelectableProbe[];
  lambdas?: readonly number[];
  greedyPool?: number;
  maxBlocks?: number;
  screenAbove?: number;
  mlpMaxDim?: number;
  /**
   * `search` (default) runs the search; `fixed` measures one candidate only — every block, the first
   * probe kind — for the reports of a router trained without selection.
   */
  mode?: "search" | "fixed";
  onProgress?: (message: string) => void;
}

/** The rows to select on: every feature block, and the gain of each row. */
export interface SelectionData {
  features: Float32Array;
  rows: number;
  dim: number;
  blocks: readonly FeatureBlock[];
  gains: Float64Array;
}

/** One row of the selection table (what ROUTER.json keeps). */
export interface CandidateReport {
  blocks: string[];
  probe: SelectableProbe;
  dim: number;
  /** Ridge form used (null for the MLP). */
  form: RidgeForm | null;
  /** `nested`: measured by nested CV; `screen`: plain k-fold CV with the penalty chosen on the same folds (optimistic). */
  stage: "nested" | "screen";
  /** Per budget: mean over outer folds of MeanDelta@p, and its standard error over folds. */
  mean_delta: number[];
  mean_delta_se: number[];
  /** Per budget: mean over outer folds of the severe-loss share of the routed segments. */
  severe_loss: number[];
  /** Mean MeanDelta over the budgets (the selection score) and its standard error over folds. */
  score: number;
  score_se: number;
  /** Mean over outer folds of Spearman(score, gain). */
  spearman: number;
  /** Penalty of the refit (median of the outer folds' inner choices); null for the MLP. */
  lambda: number | null;
  /** Penalty each outer fold's inner folds chose (empty for the MLP and screened candidates). */
  fold_lambdas: number[];
  seconds: number;
}

export interface SelectionReport {
  rule: string;
  budgets: number[];
  folds: number;
  inner_folds: number;
  seed: number;
  candidates: CandidateReport[];
  /** Index of the chosen candidate in `candidates`. */
  chosen: number;
  /** Index of the default (`last:final`, ridge) when it was a candidate, else null. */
  default: number | null;
  /**
   * Chosen minus default, mean over folds of the paired score difference and its standard error.
   * Optimistic: the chosen candidate is the best of many on these same folds (see `estimate`).
   */
  versus_default: { diff: number; se: number } | null;
  /** What the choosing itself is worth out of sample (absent in routers trained before it). */
  estimate?: SelectionEstimate;
  seconds: number;
}

/** The fitted gain head of the chosen candidate. */
export interface SelectedGainHead {
  blocks: FeatureBlock[];
  probe: SelectableProbe;
  model: ProbeModel;
  /** Out-of-fold scores (each from the outer fold's probe), in the model's units. */
  outOfFold: Float64Array;
  lambda: number | null;
}

export interface SelectionResult {
  report: SelectionReport;
  head: SelectedGainHead;
  folds: NestedFolds;
  /** Re-measures the chosen candidate on a share of each outer training set (for learning curves). */
  measureOnShare(share: number): Float64Array;
  /** Per outer fold, the chosen candidate's score (mean MeanDelta over the budgets). */
  chosenFoldScores: Float64Array;
}

/**
 * A candidate with everything needed to compare, refit and re-measure it. Its columns and solver
 * are let go once it is measured (see {@link selectGainProbe}) and rebuilt for the chosen one.
 */
interface Evaluation {
  report: CandidateReport;
  blocks: FeatureBlock[];
  foldScores: Float64Array;
  outOfFold: Float64Array;
  solver: RidgeSolver | null;
  matrix: FeatureMatrix | null;
}

/** The candidate's columns, sliced again if they were let go. */
function columnsOf(context: Context, evaluation: Evaluation): FeatureMatrix {
  evaluation.matrix ??= matrixOf(context, evaluation.blocks);
  return evaluation.matrix;
}

interface Context {
  data: SelectionData;
  folds: NestedFolds;
  options: SelectionOptions;
  lambdas: readonly number[];
}

function mean(values: ArrayLike<number>): number {
  let sum = 0;
  for (let index = 0; index < values.length; index++) sum += values[index]!;
  return sum / values.length;
}

/** Standard error of the mean of `values` (sample std / √n); 0 for fewer than two. */
export function standardError(values: ArrayLike<number>): number {
  if (values.length < 2) return 0;
  const average = mean(values);
  let squares = 0;
  for (let index = 0; index < values.length; index++) squares += (values[index]! - average) ** 2;
  return Math.sqrt(squares / (values.length - 1) / values.length);
}

function pick(values: ArrayLike<number>, rows: ArrayLike<number>): Float64Array {
  return Float64Array.from({ length: rows.length }, (_, position) => values[rows[position]!]!);
}

/** Mean of the known values of MeanDelta@p over the budgets (budgets routing nothing are left out). */
function budgetScore(scores: ArrayLike<number>, gains: ArrayLike<number>, context: Context): number {
  const values = topMeasures(scores, gains, context.options.budgets, context.options.severeDelta)
    .map((measure) => measure.meanDelta)
    .filter((value): value is number => value !== null);
  return values.length === 0 ? Number.NaN : mean(values);
}

/** The target a ridge kind is fitted to on `training` rows (full length; only training rows are read). */
function ridgeTarget(probe: SelectableProbe, gains: Float64Array, training: Int32Array): Float64Array {
  if (probe !== "ridge-rank") return gains;
  const target = new Float64Array(gains.length);
  const scores = normalScores(pick(gains, training));
  training.forEach((row, position) => {
    target[row] = scores[position]!;
  });
  return target;
}

/** Index of the best score; near-ties (1e-9 relative) go to the larger penalty, i.e. the later index. */
function bestIndex(scores: ArrayLike<number>): number {
  let best = 0;
  for (let index = 1; index < scores.length; index++) {
    const tolerance = 1e-9 * Math.max(1, Math.abs(scores[best]!));
    if (!(scores[index]! < scores[best]! - tolerance)) best = index;
  }
  return best;
}

/** Median penalty of the folds' choices (upper median: the larger when two are in the middle). */
function medianLambda(choices: readonly number[]): number {
  const sorted = [...choices].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** Measures of one outer fold's predictions. */
interface FoldOutcome {
  meanDelta: (number | null)[];
  severeLoss: (number | null)[];
  spearman: number;
  score: number;
}

function foldOutcome(predictions: ArrayLike<number>, validation: Int32Array, context: Context): FoldOutcome {
  const gains = pick(context.data.gains, validation);
  const measures = topMeasures(predictions, gains, context.options.budgets, context.options.severeDelta);
  const rank = spearman(predictions, gains);
  return {
    meanDelta: measures.map((measure) => measure.meanDelta),
    severeLoss: measures.map((measure) => measure.severeLoss),
    spearman: Number.isFinite(rank) ? rank : 0,
    score: budgetScore(predictions, gains, context),
  };
}

function summarise(
  outcomes: FoldOutcome[],
  base: Omit<
    CandidateReport,
    "mean_delta" | "mean_delta_se" | "severe_loss" | "score" | "score_se" | "spearman"
  >,
): { report: CandidateReport; foldScores: Float64Array } {
  const budgets = outcomes[0]?.meanDelta.length ?? 0;
  const column = (values: (o: FoldOutcome) => (number | null)[], budget: number) =>
    outcomes.map((outcome) => values(outcome)[budget]).filter((value): value is number => value != null);
  const foldScores = Float64Array.from(outcomes, (outcome) => outcome.score);
  return {
    report: {
      ...base,
      mean_delta: Array.from({ length: budgets }, (_, budget) => mean(column((o) => o.meanDelta, budget))),
      mean_delta_se: Array.from({ length: budgets }, (_, budget) =>
        standardError(column((o) => o.meanDelta, budget)),
      ),
      severe_loss: Array.from({ length: budgets }, (_, budget) => mean(column((o) => o.severeLoss, budget))),
      score: mean(foldScores),
      score_se: standardError(foldScores),
      spearman: mean(outcomes.map((outcome) => outcome.spearman)),
    },
    foldScores,
  };
}

function blockNames(blocks: readonly FeatureBlock[]): string[] {
  return blocks.map((block) => block.name);
}

function matrixOf(context: Context, blocks: readonly FeatureBlock[]): FeatureMatrix {
  const { features, rows, dim } = context.data;
  return sliceFeatureBlocks(features, rows, dim, blocks);
}

/** The feature set's columns and a ridge solver for them, in the form that suits an outer training set. */
function ridgeSolverFor(context: Context, blocks: FeatureBlock[]) {
  const matrix = matrixOf(context, blocks);
  const { rows } = context.data;
  const { outerFolds } = context.folds;
  const solver = createRidgeSolver(matrix, {
    trainingRows: Math.ceil((rows * (outerFolds - 1)) / outerFolds),
    cells: cellsOf(context.folds),
  });
  return { matrix, solver };
}

/**
 * Nested CV of the ridge kinds on one feature set; both kinds share every factorization (a second
 * target costs one more O(d²) solve per penalty).
 */
function evaluateRidge(
  context: Context,
  blocks: FeatureBlock[],
  probes: readonly SelectableProbe[],
): Evaluation[] {
  const started = performance.now();
  const { matrix, solver } = ridgeSolverFor(context, blocks);
  const { folds, lambdas, data } = context;
  const outOfFold = probes.map(() => new Float64Array(data.rows));
  const outcomes: FoldOutcome[][] = probes.map(() => []);
  const chosen: number[][] = probes.map(() => []);
  const predictSplit = (split: FoldSplit, penalties: readonly number[]) =>
    solver.predict(
      { rows: split.training, excludedCells: split.excludedCells },
      split.validation,
      probes.map((probe) => ridgeTarget(probe, data.gains, split.training)),
      penalties,
    );
  for (let fold = 0; fold < folds.outerFolds; fold++) {
    const innerScores = probes.map(() => new Float64Array(lambdas.length));
    for (let inner = 0; inner < folds.innerFolds; inner++) {
      const split = innerSplit(folds, fold, inner);
      const gains = pick(data.gains, split.validation);
      const predictions = predictSplit(split, lambdas);
      probes.forEach((_, kind) => {
        lambdas.forEach((_, index) => {
          innerScores[kind]![index]! += budgetScore(predictions[kind]![index]!, gains, context);
        });
      });
    }
    const picked = probes.map((_, kind) => lambdas[bestIndex(innerScores[kind]!)]!);
    const split = outerSplit(folds, fold);
    const predictions = predictSplit(split, picked);
    probes.forEach((_, kind) => {
      const scores = predictions[kind]![kind]!;
      split.validation.forEach((row, position) => {
        outOfFold[kind]![row] = scores[position]!;
      });
      outcomes[kind]!.push(foldOutcome(scores, split.validation, context));
      chosen[kind]!.push(picked[kind]!);
    });
  }
  const seconds = (performance.now() - started) / 1000;
  return probes.map((probe, kind) => {
    const { report, foldScores } = summarise(outcomes[kind]!, {
      blocks: blockNames(blocks),
      probe,
      dim: matrix.dim,
      form: solver.form,
      stage: "nested",
      lambda: medianLambda(chosen[kind]!),
      fold_lambdas: chosen[kind]!,
      seconds: seconds / probes.length,
    });
    return { report, blocks, foldScores, outOfFold: outOfFold[kind]!, solver, matrix };
  });
}

/**
 * Plain k-fold CV of ridge on one feature set with the penalty chosen on the same folds: cheaper
 * than nested CV and optimistic, so only used to rank single blocks before the nested treatment.
 */
function screenRidge(context: Context, blocks: FeatureBlock[]): Evaluation {
  const started = performance.now();
  const { matrix, solver } = ridgeSolverFor(context, blocks);
  const { folds, lambdas, data } = context;
  const splits = Array.from({ length: folds.outerFolds }, (_, fold) => outerSplit(folds, fold));
  const predictions = splits.map(
    (split) =>
      solver.predict(
        { rows: split.training, excludedCells: split.excludedCells },
        split.validation,
        [data.gains],
        lambdas,
      )[0]!,
  );
  const byLambda = lambdas.map((_, index) =>
    mean(
      splits.map((split, fold) =>
        budgetScore(predictions[fold]![index]!, pick(data.gains, split.validation), context),
      ),
    ),
  );
  const best = bestIndex(byLambda);
  const outOfFold = new Float64Array(data.rows);
  const outcomes = splits.map((split, fold) => {
    const scores = predictions[fold]![best]!;
    split.validation.forEach((row, position) => {
      outOfFold[row] = scores[position]!;
    });
    return foldOutcome(scores, split.validation, context);
  });
  const { report, foldScores } = summarise(outcomes, {
    blocks: blockNames(blocks),
    probe: "ridge",
    dim: matrix.dim,
    form: solver.form,
    stage: "screen",
    lambda: lambdas[best]!,
    fold_lambdas: [],
    seconds: (performance.now() - started) / 1000,
  });
  return { report, blocks, foldScores, outOfFold, solver: null, matrix };
}

/** Nested CV of an MLP: each outer fold's MLP picks its epochs by early stopping on its own held-out split. */
function evaluateMlp(context: Context, blocks: FeatureBlock[]): Evaluation {
  const started = performance.now();
  const matrix = matrixOf(context, blocks);
  const { folds, data, options } = context;
  const outOfFold = new Float64Array(data.rows);
  const outcomes: FoldOutcome[] = [];
  for (let fold = 0; fold < folds.outerFolds; fold++) {
    const split = outerSplit(folds, fold);
    const fit = fitMlp(pickRows(matrix, split.training), pick(data.gains, split.training), {
      seed: options.seed + fold,
    });
    const scores = predictRows(
      fit.model,
      pickRows(matrix, split.validation).features,
      split.validation.length,
    );
    split.validation.forEach((row, position) => {
      outOfFold[row] = scores[position]!;
    });
    outcomes.push(foldOutcome(scores, split.validation, context));
  }
  const { report, foldScores } = summarise(outcomes, {
    blocks: blockNames(blocks),
    probe: "mlp",
    dim: matrix.dim,
    form: null,
    stage: "nested",
    lambda: null,
    fold_lambdas: [],
    seconds: (performance.now() - started) / 1000,
  });
  return { report, blocks, foldScores, outOfFold, solver: null, matrix };
}

/** What the rule reads of a candidate. */
type Comparable = Pick<CandidateReport, "score" | "dim" | "probe" | "blocks" | "stage">;

function isDefault(evaluation: { report: Comparable }): boolean {
  return (
    evaluation.report.probe === "ridge" &&
    evaluation.report.blocks.length === 1 &&
    evaluation.report.blocks[0] === DEFAULT_FEATURE_BLOCK
  );
}

/**
 * Simpler first: fewer feature values, then ridge < rank-ridge < MLP, then the default block;
 * among equally simple candidates the higher score first.
 */
function simplicityOrder(a: { report: Comparable }, b: { report: Comparable }): number {
  return (
    a.report.dim - b.report.dim ||
    PROBE_SIMPLICITY[a.report.probe] - PROBE_SIMPLICITY[b.report.probe] ||
    Number(isDefault(b)) - Number(isDefault(a)) ||
    b.report.score - a.report.score
  );
}

/** Paired per-fold difference a − b: mean and standard error. */
function pairedDifference(a: Float64Array, b: Float64Array): { diff: number; se: number } {
  const differences = a.map((value, fold) => value - b[fold]!);
  return { diff: mean(differences), se: standardError(differences) };
}

/**
 * The nested candidate with the best score, unless a simpler one is a near copy of it: out-of-fold
 * predictions correlated at {@link NEAR_COPY_CORRELATION} or more (a block the ridge all but zeroes,
 * or ridge and rank-ridge on the same blocks agreeing), in which case the simplest such copy wins.
 * No margin on the scores themselves: every score is already out of sample, and a margin of 1 % kept
 * passing over wide blocks that predict differently and better held out (the source-text `words`
 * block is 1,024 values that cost nothing to serve). Candidates without out-of-fold predictions are
 * copies of the best only when their score is exactly equal.
 */
export function chooseCandidate(
  candidates: readonly { report: Comparable; outOfFold?: ArrayLike<number> }[],
): number {
  const nested = candidates
    .map((candidate, index) => ({ candidate, index }))
    .filter(
      ({ candidate }) => candidate.report.stage === "nested" && Number.isFinite(candidate.report.score),
    );
  if (nested.length === 0) throw new UsageError("no candidate probe could be measured");
  const best = nested.reduce((top, entry) =>
    entry.candidate.report.score > top.candidate.report.score ? entry : top,
  );
  const copies = nested.filter(
    ({ candidate }) =>
      candidate.report.score === best.candidate.report.score ||
      isNearCopy(candidate.outOfFold, best.candidate.outOfFold),
  );
  copies.sort((a, b) => simplicityOrder(a.candidate, b.candidate) || a.index - b.index);
  return copies[0]!.index;
}

/** Out-of-fold predictions correlated at least this much are one probe in two spellings. */
export const NEAR_COPY_CORRELATION = 0.99;

function isNearCopy(a: ArrayLike<number> | undefined, b: ArrayLike<number> | undefined): boolean {
  if (a === undefined || b === undefined || a.length !== b.length || a.length < 3) return false;
  const correlation = pearson(a, b);
  return Number.isFinite(correlation) && correlation >= NEAR_COPY_CORRELATION;
}

export const SELECTION_RULE =
  "highest mean MeanDelta@p over the budgets (nested CV: outer folds measure, inner folds choose the ridge penalty); the simplest near copy of the best (out-of-fold predictions correlated ≥ 0.99: fewer feature values, then ridge < rank-ridge < MLP, then the default last:final) wins instead";

function setKey(blocks: readonly FeatureBlock[]): string {
  return blocks
    .map((block) => block.offset)
    .sort((a, b) => a - b)
    .join(",");
}

/** Blocks in the dataset's order, whatever order they were added in. */
function inStoredOrder(blocks: readonly FeatureBlock[]): FeatureBlock[] {
  return [...blocks].sort((a, b) => a.offset - b.offset);
}

/**
 * Runs the search, chooses, and refits the winner on every row. Deterministic for a seed.
 * @throws UsageError when no probe kind is asked for or too few rows are given.
 */
export function selectGainProbe(data: SelectionData, options: SelectionOptions): SelectionResult {
  const started = performance.now();
  if (options.probes.length === 0) throw new UsageError("the selection needs at least one probe kind");
  if (options.budgets.length === 0) throw new UsageError("the selection needs at least one budget");
  const folds = nestedFoldAssignment(data.rows, options.folds, options.innerFolds, options.seed);
  // Inner folds are the smallest sets a score is measured on; a budget must route one of their rows.
  const innerRows = Math.floor((data.rows * (options.folds - 1)) / options.folds / options.innerFolds);
  if (options.budgets.every((budget) => budgetCount(budget, innerRows) === 0)) {
    throw new UsageError(
      `no budget of ${options.budgets.join(", ")} routes a segment of an inner fold (about ${innerRows} rows): MeanDelta@p needs p · rows ≥ 1; give larger --budgets or more data`,
    );
  }
  const context: Context = { data, folds, options, lambdas: options.lambdas ?? DEFAULT_LAMBDAS };
  const ridgeProbes = options.probes.filter((probe) => probe !== "mlp");
  const pool = options.greedyPool ?? DEFAULT_GREEDY_POOL;
  const maxBlocks = options.maxBlocks ?? DEFAULT_MAX_BLOCKS;
  const progress = options.onProgress ?? (() => {});
  // Measured candidates keep their scores only: every candidate's columns and factorizations at
  // once would hold d² values per fold for each wide candidate (gigabytes with the words block).
  const evaluations: Evaluation[] = [];
  const measured = (result: Evaluation): Evaluation => {
    result.solver = null;
    result.matrix = null;
    evaluations.push(result);
    return result;
  };
  const bySet = new Map<string, Evaluation[]>();
  const describe = (evaluation: Evaluation) =>
    `${evaluation.report.blocks.join("+")} ${evaluation.report.probe}${evaluation.report.stage === "screen" ? " (screen)" : ""}: mean MeanDelta ${evaluation.report.score.toFixed(2)} ± ${evaluation.report.score_se.toFixed(2)}, ${evaluation.report.seconds.toFixed(1)} s`;
  const nestedRidge = (blocks: FeatureBlock[]): Evaluation[] => {
    const key = setKey(blocks);
    const known = bySet.get(key);
    if (known) return known;
    const results = ridgeProbes.length > 0 ? evaluateRidge(context, inStoredOrder(blocks), ridgeProbes) : [];
    bySet.set(key, results);
    for (const result of results) {
      measured(result);
      progress(describe(result));
    }
    return results;
  };
  const bestOf = (results: readonly Evaluation[]) =>
    results.reduce<Evaluation | null>(
      (top, result) => (top === null || result.report.score > top.report.score ? result : top),
      null,
    );

  if (options.mode === "fixed") {
    const probe = options.probes[0]!;
    const blocks = [...data.blocks];
    const result =
      probe === "mlp" ? evaluateMlp(context, blocks) : evaluateRidge(context, blocks, [probe])[0]!;
    measured(result);
    progress(describe(result));
  } else {
    searchCandidates();
  }

  function searchCandidates(): void {
    // Single blocks: all nested, or screened first when there are many.
    const singles = data.blocks.map((block) => [block]);
    let singleRanking: { blocks: FeatureBlock[]; score: number }[];
    if (data.blocks.length > (options.screenAbove ?? DEFAULT_SCREEN_ABOVE) && ridgeProbes.length > 0) {
      const screened = singles.map((blocks) => {
        const result = screenRidge(context, blocks);
        measured(result);
        progress(describe(result));
        return result;
      });
      screened.sort((a, b) => b.report.score - a.report.score);
      const chosenForNested = screened.slice(0, pool).map((result) => result.blocks);
      const defaultBlock = data.blocks.find((block) => block.name === DEFAULT_FEATURE_BLOCK);
      if (defaultBlock && !chosenForNested.some((blocks) => blocks[0] === defaultBlock))
        chosenForNested.push([defaultBlock]);
      singleRanking = chosenForNested.map((blocks) => ({
        blocks,
        score: bestOf(nestedRidge(blocks))?.report.score ?? Number.NaN,
      }));
    } else {
      singleRanking = singles.map((blocks) => ({
        blocks,
        score: bestOf(nestedRidge(blocks))?.report.score ?? Number.NaN,
      }));
    }
    singleRanking.sort((a, b) => b.score - a.score);

    if (data.blocks.length > 1) nestedRidge([...data.blocks]);

    // Greedy forward selection from the best single block over the best singles.
    const greedyPool = singleRanking.slice(0, pool).map((entry) => entry.blocks[0]!);
    let current = singleRanking[0] ? [...singleRanking[0].blocks] : [];
    let currentScore = singleRanking[0]?.score ?? Number.NaN;
    while (
      ridgeProbes.length > 0 &&
      current.length > 0 &&
      current.length < Math.min(maxBlocks, data.blocks.length)
    ) {
      let bestAddition: { blocks: FeatureBlock[]; score: number } | null = null;
      for (const block of greedyPool) {
        if (current.includes(block)) continue;
        const blocks = [...current, block];
        const score = bestOf(nestedRidge(blocks))?.report.score ?? Number.NaN;
        if (bestAddition === null || score > bestAddition.score) bestAddition = { blocks, score };
      }
      if (bestAddition === null || !(bestAddition.score > currentScore)) break;
      current = bestAddition.blocks;
      currentScore = bestAddition.score;
    }

    if (options.probes.includes("mlp")) {
      // Without the words block: an MLP over its 1,024 sparse counts costs minutes and learns
      // nothing a ridge on them does not.
      const bestRidge = bestOf(
        evaluations.filter(
          (evaluation) =>
            evaluation.report.stage === "nested" &&
            !evaluation.blocks.some((block) => block.name === SOURCE_WORDS_BLOCK),
        ),
      );
      const blocks = bestRidge?.blocks ?? [...data.blocks];
      const width = blocks.reduce((sum, block) => sum + block.dim, 0);
      if (width <= (options.mlpMaxDim ?? DEFAULT_MLP_MAX_DIM)) {
        const result = evaluateMlp(context, blocks);
        measured(result);
        progress(describe(result));
      } else {
        progress(
          `mlp skipped: the best ridge feature set has ${width} values, above ${options.mlpMaxDim ?? DEFAULT_MLP_MAX_DIM}`,
        );
      }
    }
  }

  const chosenIndex = chooseCandidate(evaluations);
  const chosen = evaluations[chosenIndex]!;
  const defaultIndex = evaluations.findIndex(
    (evaluation) => isDefault(evaluation) && evaluation.report.stage === "nested",
  );
  const head = refit(context, chosen);
  const estimate = estimateSelection(context, evaluations, defaultIndex >= 0 ? defaultIndex : null);
  const report: SelectionReport = {
    rule: SELECTION_RULE,
    budgets: [...options.budgets],
    folds: options.folds,
    inner_folds: options.innerFolds,
    seed: options.seed,
    candidates: evaluations.map((evaluation) => evaluation.report),
    chosen: chosenIndex,
    default: defaultIndex >= 0 ? defaultIndex : null,
    versus_default:
      defaultIndex >= 0 ? pairedDifference(chosen.foldScores, evaluations[defaultIndex]!.foldScores) : null,
    estimate,
    seconds: (performance.now() - started) / 1000,
  };
  return {
    report,
    head,
    folds,
    chosenFoldScores: chosen.foldScores,
    measureOnShare: (share) => measureOnShare(context, chosen, share),
  };
}

/**
 * The selection rule replayed on bootstrap resamples of the nested candidates' out-of-fold
 * predictions (see {@link bootstrapSelection}): what choosing among them is worth.
 */
function estimateSelection(
  context: Context,
  evaluations: readonly Evaluation[],
  defaultIndex: number | null,
): SelectionEstimate {
  const eligible = evaluations
    .map((evaluation, index) => ({ evaluation, index }))
    .filter(
      ({ evaluation }) => evaluation.report.stage === "nested" && Number.isFinite(evaluation.report.score),
    );
  const defaultPosition =
    defaultIndex === null ? -1 : eligible.findIndex(({ index }) => index === defaultIndex);
  const estimate = bootstrapSelection({
    candidates: eligible.map(({ evaluation }) => evaluation),
    gains: context.data.gains,
    outer: context.folds.outer,
    outerFolds: context.folds.outerFolds,
    budgets: context.options.budgets,
    choose: (scores) =>
      chooseCandidate(
        eligible.map(({ evaluation }, position) => ({
          report: { ...evaluation.report, score: scores[position]! },
          outOfFold: evaluation.outOfFold,
        })),
      ),
    defaultIndex: defaultPosition >= 0 ? defaultPosition : null,
    resamples: DEFAULT_BOOTSTRAP_RESAMPLES,
    seed: context.options.seed + 0xbbc,
  });
  // Shares by the report's candidate order (screened candidates are never chosen).
  const chosenShare = new Array<number>(evaluations.length).fill(0);
  eligible.forEach(({ index }, position) => {
    chosenShare[index] = estimate.chosen_share[position]!;
  });
  return { ...estimate, chosen_share: chosenShare };
}

/**
 * The chosen candidate refitted on every row. A rank-ridge head predicts normal scores; it is mapped
 * to gain units by the least-squares line of the gain on its out-of-fold scores (kept increasing),
 * which leaves its order alone and lets it be read, thresholded and combined as a gain.
 */
function refit(context: Context, chosen: Evaluation): SelectedGainHead {
  const { data, options } = context;
  const { probe, lambda } = chosen.report;
  if (probe === "mlp") {
    const fit = fitMlp(columnsOf(context, chosen), data.gains, { seed: options.seed });
    return { blocks: chosen.blocks, probe, model: fit.model, outOfFold: chosen.outOfFold, lambda: null };
  }
  const solver = chosen.solver ?? createRidgeSolver(columnsOf(context, chosen));
  const everyRow = Int32Array.from({ length: data.rows }, (_, row) => row);
  const model = solver.fit(everyRow, ridgeTarget(probe, data.gains, everyRow), lambda!);
  if (probe === "ridge") return { blocks: chosen.blocks, probe, model, outOfFold: chosen.outOfFold, lambda };
  const { slope, intercept } = increasingLine(chosen.outOfFold, data.gains);
  const scaled: RidgeProbeModel = {
    ...model,
    weights: model.weights.map((weight) => weight * slope),
    bias: intercept + slope * model.bias,
  };
  return {
    blocks: chosen.blocks,
    probe,
    model: scaled,
    outOfFold: chosen.outOfFold.map((score) => intercept + slope * score),
    lambda,
  };
}

/** Least-squares line y ≈ a + b·x with b kept positive (a tiny slope when the fit says otherwise). */
export function increasingLine(
  x: ArrayLike<number>,
  y: ArrayLike<number>,
): { slope: number; intercept: number } {
  const meanX = mean(x);
  const meanY = mean(y);
  let cross = 0;
  let squaresX = 0;
  let squaresY = 0;
  for (let index = 0; index < x.length; index++) {
    cross += (x[index]! - meanX) * (y[index]! - meanY);
    squaresX += (x[index]! - meanX) ** 2;
    squaresY += (y[index]! - meanY) ** 2;
  }
  if (squaresX === 0) return { slope: 1, intercept: meanY - meanX };
  const floor = 1e-6 * Math.sqrt(squaresY / squaresX) || 1e-12;
  const slope = Math.max(cross / squaresX, floor);
  return { slope, intercept: meanY - slope * meanX };
}

/**
 * Per outer fold, the chosen candidate's score when trained on a `share` of the outer training rows
 * (a seeded subsample; the penalty again chosen by inner folds inside it) and measured on the whole
 * outer fold, so points of a learning curve are paired fold by fold.
 */
function measureOnShare(context: Context, chosen: Evaluation, share: number): Float64Array {
  if (!(share > 0 && share <= 1)) throw new UsageError(`share must be in (0, 1], got ${share}`);
  if (share === 1) return chosen.foldScores;
  const { folds, data, options, lambdas } = context;
  const { probe } = chosen.report;
  // The subsample may call for the other form (fewer rows than values: the dual); both give the
  // same fit, and a wide candidate's primal form would factor its d × d system at every size.
  const subsetRows = Math.ceil((share * (data.rows * (folds.outerFolds - 1))) / folds.outerFolds);
  const matrix = columnsOf(context, chosen);
  const solver =
    probe === "mlp"
      ? null
      : chosen.solver && chosen.solver.form === preferredRidgeForm(matrix.dim, subsetRows)
        ? chosen.solver
        : createRidgeSolver(matrix, { trainingRows: subsetRows });
  const scores = new Float64Array(folds.outerFolds);
  for (let fold = 0; fold < folds.outerFolds; fold++) {
    const split = outerSplit(folds, fold);
    const order = permutation(split.training.length, createRandom(options.seed + 7919 * (fold + 1)));
    const kept = Math.max(options.innerFolds * 2, Math.ceil(share * split.training.length));
    const training = Int32Array.from(order.subarray(0, kept), (position) => split.training[position]!).sort();
    let predictions: Float64Array;
    if (solver === null) {
      const fit = fitMlp(pickRows(matrix, training), pick(data.gains, training), {
        seed: options.seed + fold,
      });
      predictions = predictRows(
        fit.model,
        pickRows(matrix, split.validation).features,
        split.validation.length,
      );
    } else {
      const inner = kFoldAssignment(training.length, options.innerFolds, options.seed + fold);
      const byLambda = new Float64Array(lambdas.length);
      for (let part = 0; part < options.innerFolds; part++) {
        const innerTraining = training.filter((_, position) => inner[position] !== part);
        const innerValidation = training.filter((_, position) => inner[position] === part);
        const predicted = solver.predict(
          { rows: innerTraining },
          innerValidation,
          [ridgeTarget(probe, data.gains, innerTraining)],
          lambdas,
        )[0]!;
        predicted.forEach((values, index) => {
          byLambda[index]! += budgetScore(values, pick(data.gains, innerValidation), context);
        });
      }
      const lambda = lambdas[bestIndex(byLambda)]!;
      predictions = solver.predict(
        { rows: training },
        split.validation,
        [ridgeTarget(probe, data.gains, training)],
        [lambda],
      )[0]![0]!;
    }
    scores[fold] = budgetScore(predictions, pick(data.gains, split.validation), context);
  }
  return scores;
}

/** A 95 % interval of a mean over folds (Student's t with folds − 1 degrees of freedom). */
export function foldInterval(values: ArrayLike<number>): {
  mean: number;
  lo: number;
  hi: number;
  se: number;
} {
  const average = mean(values);
  const se = standardError(values);
  const half = values.length > 1 ? studentT975(values.length - 1) * se : 0;
  return { mean: average, lo: average - half, hi: average + half, se };
}

/** Parts of a block list as engine view names, for messages. */
export function describeBlocks(blocks: readonly FeatureBlock[]): string {
  return blocks.flatMap((block) => blockParts(block)).join("+");
}
