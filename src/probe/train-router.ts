/**
 * Fits a router's heads on frozen small-model states: `gain` (RouteLMT, regress g), `quality`
 * (RouteLMT-Q, regress q_small; also the guard's in-model quality) and `risk` (classify g < −δ).
 * Every head is cross-validated; its out-of-fold scores give the CV figures and the score quantiles
 * a streaming BudgetController starts from.
 */
import { UsageError } from "../errors/index.js";
import { pearson, quantiles, sortScores, spearman } from "../stats/index.js";
import {
  DEFAULT_FOLDS,
  foldRows,
  kFoldAssignment,
  meanSquaredError,
  rocAuc,
  stratifiedKFoldAssignment,
} from "./cross-validation.js";
import { crossValidateLogistic } from "./logistic.js";
import type { FeatureMatrix } from "./matrix.js";
import { fitMlp } from "./mlp.js";
import type { ProbeModel } from "./probe-model.js";
import { predictRows } from "./probe-model.js";
import type { SelectedGainHead } from "./probe-selection.js";
import { crossValidateRidge } from "./ridge.js";
import { crossValidateRidgeDual, pickRows, preferredRidgeForm } from "./ridge-solver.js";
import type { HeadName, HeadReport, RouterHead } from "./router-file.js";

/** Probe family for the regression heads; the risk head uses logistic regression or a binary MLP. */
export type ProbeKind = "ridge" | "mlp";

export interface HeadTrainingData {
  matrix: FeatureMatrix;
  gain: Float64Array;
  qSmall: Float64Array;
}

export interface TrainHeadsOptions {
  heads: readonly HeadName[];
  probe: ProbeKind;
  folds?: number;
  seed?: number;
  /** δ of the risk label g < −δ. */
  riskDelta: number;
  /** A gain head already fitted and cross-validated (by the selection); used instead of fitting one. */
  gainHead?: SelectedGainHead;
  /** Called with a line of progress per head. */
  onHead?: (message: string) => void;
}

/** Fitted heads, notes, and each head's out-of-fold scores (for the guard's choice). */
export interface TrainedHeads {
  heads: Partial<Record<HeadName, RouterHead>>;
  notes: string[];
  outOfFold: Partial<Record<HeadName, Float64Array>>;
}

/** What fitting one head gives before it is packed into a router. */
interface HeadFit {
  model: ProbeModel;
  outOfFold: Float64Array;
  lambda: number | null;
}

const QUANTILE_LEVELS = Float64Array.from({ length: 101 }, (_, index) => index / 100);

/** Trains the requested heads. A risk head with no positive (or no negative) example is skipped with a note. */
export function trainHeads(data: HeadTrainingData, options: TrainHeadsOptions): TrainedHeads {
  const folds = options.folds ?? DEFAULT_FOLDS;
  const seed = options.seed ?? 0;
  const { matrix, gain, qSmall } = data;
  if (matrix.rows < folds * 2) {
    throw new UsageError(`${matrix.rows} training segments are too few for ${folds}-fold cross-validation`);
  }
  const heads: Partial<Record<HeadName, RouterHead>> = {};
  const outOfFold: Partial<Record<HeadName, Float64Array>> = {};
  const notes: string[] = [];
  if (gain.length > 0 && gain.every((value) => value === gain[0])) {
    // Nothing to rank: every head still fits, but the gain head's order is arbitrary.
    notes.push(
      `every training gain is ${gain[0]!.toFixed(2)}: the two models score alike on every segment, so the gain head has no order to learn and its routing is arbitrary (are the small and the large model the same?)`,
    );
  }
  for (const name of options.heads) {
    const started = performance.now();
    if (name === "risk") {
      const labels = Float64Array.from(gain, (g) => (g < -options.riskDelta ? 1 : 0));
      const positives = labels.reduce((sum, label) => sum + label, 0);
      if (positives < folds || positives > labels.length - folds) {
        notes.push(
          `risk head skipped: ${positives} of ${labels.length} training segments have g < -${options.riskDelta}; a classifier needs at least ${folds} of each class`,
        );
        continue;
      }
      const fit = fitBinaryHead(options.probe, matrix, labels, folds, seed);
      const report: HeadReport = {
        ...reportOf(
          options.probe === "mlp" ? "mlp" : "logistic",
          `gain < -${options.riskDelta}`,
          fit,
          labels,
          gain,
          folds,
        ),
        cv_auc: finiteOrNull(rocAuc(labels, fit.outOfFold)),
        positive_rate: positives / labels.length,
      };
      heads.risk = {
        model: fit.model,
        report,
        score_quantiles: quantilesOf(fit.outOfFold),
        delta: options.riskDelta,
      };
      outOfFold.risk = fit.outOfFold;
    } else {
      const target = name === "gain" ? gain : qSmall;
      const selected = name === "gain" ? options.gainHead : undefined;
      const fit: HeadFit = selected
        ? { model: selected.model, outOfFold: selected.outOfFold, lambda: selected.lambda }
        : fitRegressionHead(options.probe, matrix, target, folds, seed);
      const probe = selected?.probe ?? options.probe;
      heads[name] = {
        model: fit.model,
        report: reportOf(probe, name === "gain" ? "gain" : "q_small", fit, target, gain, folds),
        score_quantiles: quantilesOf(fit.outOfFold),
      };
      outOfFold[name] = fit.outOfFold;
    }
    options.onHead?.(`${name} head fitted in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  }
  return { heads, notes, outOfFold };
}

function reportOf(
  probe: HeadReport["probe"],
  target: string,
  fit: HeadFit,
  targets: ArrayLike<number>,
  gain: ArrayLike<number>,
  folds: number,
): HeadReport {
  return {
    target,
    probe,
    folds,
    n: fit.outOfFold.length,
    cv_spearman: finiteOrNull(spearman(fit.outOfFold, targets)),
    cv_pearson: finiteOrNull(pearson(fit.outOfFold, targets)),
    cv_spearman_gain: finiteOrNull(spearman(fit.outOfFold, gain)),
    cv_mse: finiteOrNull(meanSquaredError(targets, fit.outOfFold)),
    lambda: fit.lambda,
  };
}

function finiteOrNull(value: number): number | null {
  return Number.isFinite(value) ? value : null;
}

function quantilesOf(scores: Float64Array): number[] {
  return Array.from(quantiles(sortScores(scores), QUANTILE_LEVELS));
}

function fitRegressionHead(
  kind: ProbeKind,
  matrix: FeatureMatrix,
  targets: Float64Array,
  folds: number,
  seed: number,
): HeadFit {
  if (kind === "ridge") {
    // Wider than the training folds: a d × d Gram would not fit, the kernel does (same estimator).
    const cv =
      preferredRidgeForm(matrix.dim, Math.ceil((matrix.rows * (folds - 1)) / folds)) === "dual"
        ? crossValidateRidgeDual(matrix, targets, { folds, seed })
        : crossValidateRidge(matrix, targets, { folds, seed });
    return { model: cv.model, outOfFold: cv.outOfFold, lambda: cv.lambda };
  }
  const assignment = kFoldAssignment(matrix.rows, folds, seed);
  return crossValidateMlp(matrix, targets, assignment, folds, seed, "regression");
}

function fitBinaryHead(
  kind: ProbeKind,
  matrix: FeatureMatrix,
  labels: Float64Array,
  folds: number,
  seed: number,
): HeadFit {
  if (kind === "ridge") {
    const cv = crossValidateLogistic(matrix, labels, { folds, seed });
    return { model: cv.model, outOfFold: cv.outOfFold, lambda: cv.lambda };
  }
  const assignment = stratifiedKFoldAssignment(labels, folds, seed);
  return crossValidateMlp(matrix, labels, assignment, folds, seed, "binary");
}

/** Out-of-fold MLP predictions (each fold fit with its own early stopping), then a fit on all rows. */
function crossValidateMlp(
  matrix: FeatureMatrix,
  targets: Float64Array,
  assignment: Int32Array,
  folds: number,
  seed: number,
  output: "regression" | "binary",
): HeadFit {
  const outOfFold = new Float64Array(matrix.rows);
  for (let fold = 0; fold < folds; fold++) {
    const training = foldRows(assignment, fold, false);
    const validation = foldRows(assignment, fold, true);
    const fit = fitMlp(pickRows(matrix, training), pick(targets, training), { output, seed: seed + fold });
    const predictions = predictRows(fit.model, pickRows(matrix, validation).features, validation.length);
    validation.forEach((row, position) => {
      outOfFold[row] = predictions[position] as number;
    });
  }
  const final = fitMlp(matrix, targets, { output, seed });
  return { model: final.model, outOfFold, lambda: null };
}

function pick(values: Float64Array, rows: Int32Array): Float64Array {
  return Float64Array.from(rows, (row) => values[row] as number);
}
