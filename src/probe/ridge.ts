/**
 * Ridge regression heads on standardized hidden states, intercept unpenalized:
 * minimise Σ (y − b − wᵀz)² + λ‖w‖², i.e. (ZᵀZ + λI) w = Zᵀ(y − ȳ), b = ȳ, with z the training-row
 * standardization of x. Everything is derived from per-fold sufficient statistics (Gram matrices),
 * so cross-validation reads the data once.
 */
import { UsageError } from "../errors/index.js";
import {
  checkLambdas,
  DEFAULT_FOLDS,
  DEFAULT_LAMBDAS,
  foldRows,
  kFoldAssignment,
  meanSquaredError,
  regressionScores,
  selectLowest,
} from "./cross-validation.js";
import {
  accumulateMoments,
  addMoments,
  applyTransposeQ,
  choleskySolve,
  emptyMoments,
  type Moments,
  solveShiftedTridiagonal,
  tridiagonalize,
} from "./linear-algebra.js";
import { allRows, checkFeatureMatrix, checkTargets, type FeatureMatrix } from "./matrix.js";
import { PROBE_MODEL_FORMAT, type RidgeProbeModel, toPlainArray } from "./probe-model.js";
import { safeScale } from "./standardize.js";

/** The standardized normal equations of one training set. */
export interface RidgeSystem {
  dim: number;
  /** Feature means and stds of the training rows (unshifted). */
  mean: Float64Array;
  std: Float64Array;
  /** ZᵀZ for standardized, centred features (upper triangle). */
  gram: Float64Array;
  /** Zᵀ(y − ȳ). */
  rhs: Float64Array;
  /** ȳ, the unpenalized intercept. */
  intercept: number;
}

/**
 * A column whose centred squares are at most this share of its squares around the shift is
 * constant in the rows at hand: rounding alone leaves about 1e-16 × the total's squares.
 */
const CONSTANT_COLUMN_SHARE = 1e-9;

/**
 * Normal equations from moments accumulated with `shift` / `targetShift`: centring by the
 * training mean turns Σ(x−s)(x−s)ᵀ into the centred Gram G − n·μμᵀ, then both sides are scaled by
 * the training stds (or by `fixedStd`, when the scaling is set for several training sets at once).
 * Shifting by a global mean first keeps that subtraction free of cancellation.
 */
export function ridgeSystem(
  moments: Moments,
  shift: Float64Array,
  targetShift: number,
  fixedStd?: Float64Array,
): RidgeSystem {
  const { dim, count } = moments;
  if (count < 1) throw new UsageError("ridge needs at least one training row");
  const shiftedMean = new Float64Array(dim);
  for (let column = 0; column < dim; column++) shiftedMean[column] = moments.featureSum[column]! / count;
  const shiftedTargetMean = moments.targetSum / count;
  const mean = new Float64Array(dim);
  const std = fixedStd ? Float64Array.from(fixedStd) : new Float64Array(dim);
  for (let column = 0; column < dim; column++) {
    mean[column] = shift[column]! + shiftedMean[column]!;
    if (fixedStd) continue;
    const squares = moments.gram[column * dim + column]!;
    const centredSquares = squares - count * shiftedMean[column]! ** 2;
    // A training set's moments are the total minus a fold's, which leaves rounding residue of the
    // total's size. A column the training rows hold constant (a rare word only the fold has) keeps
    // such a residue as its variance; scaling by it would blow the column up and break the system.
    std[column] =
      centredSquares <= CONSTANT_COLUMN_SHARE * squares
        ? 1
        : safeScale(Math.sqrt(centredSquares / count), mean[column]!);
  }
  const gram = new Float64Array(dim * dim);
  const rhs = new Float64Array(dim);
  for (let row = 0; row < dim; row++) {
    const base = row * dim;
    const rowMean = shiftedMean[row]!;
    const rowStd = std[row]!;
    for (let column = row; column < dim; column++) {
      const centred = moments.gram[base + column]! - count * rowMean * shiftedMean[column]!;
      gram[base + column] = centred / (rowStd * std[column]!);
    }
    rhs[row] = (moments.cross[row]! - count * rowMean * shiftedTargetMean) / rowStd;
  }
  return { dim, mean, std, gram, rhs, intercept: targetShift + shiftedTargetMean };
}

/** Column means of the given rows (a shift for {@link accumulateMoments}) and the target mean. */
export function globalShift(matrix: FeatureMatrix, targets: ArrayLike<number>, rows: ArrayLike<number>) {
  const { features, dim } = matrix;
  const shift = new Float64Array(dim);
  let targetShift = 0;
  for (let position = 0; position < rows.length; position++) {
    const row = rows[position]!;
    const base = row * dim;
    for (let column = 0; column < dim; column++) shift[column]! += features[base + column]!;
    targetShift += targets[row]!;
  }
  const count = Math.max(1, rows.length);
  for (let column = 0; column < dim; column++) shift[column]! /= count;
  return { shift, targetShift: targetShift / count };
}

export function modelFromSystem(
  system: Pick<RidgeSystem, "dim" | "mean" | "std" | "intercept">,
  weights: Float64Array,
  lambda: number,
): RidgeProbeModel {
  return {
    format: PROBE_MODEL_FORMAT,
    kind: "ridge",
    dim: system.dim,
    mean: toPlainArray(system.mean),
    std: toPlainArray(system.std),
    weights: toPlainArray(weights),
    bias: system.intercept,
    lambda,
  };
}

function checkLambda(lambda: number): void {
  if (!(Number.isFinite(lambda) && lambda >= 0))
    throw new UsageError(`lambda must be finite and ≥ 0, got ${lambda}`);
}

/** Options of {@link fitRidge}. */
export interface RidgeFitOptions {
  /** Penalty λ ≥ 0 on the standardized weights (0 is ordinary least squares). */
  lambda: number;
  /** Training rows; defaults to every row. */
  rows?: ArrayLike<number>;
}

/** Fits one ridge head with a fixed penalty (Cholesky solve of the d × d system). */
export function fitRidge(
  matrix: FeatureMatrix,
  targets: ArrayLike<number>,
  options: RidgeFitOptions,
): RidgeProbeModel {
  checkFeatureMatrix(matrix);
  checkTargets(targets, matrix.rows);
  checkLambda(options.lambda);
  const rows = options.rows ?? allRows(matrix.rows);
  const { shift, targetShift } = globalShift(matrix, targets, rows);
  const moments = emptyMoments(matrix.dim);
  accumulateMoments(moments, matrix.features, targets, rows, shift, targetShift);
  const system = ridgeSystem(moments, shift, targetShift);
  return modelFromSystem(
    system,
    choleskySolve(system.gram, system.dim, system.rhs, options.lambda),
    options.lambda,
  );
}

/** Options of {@link crossValidateRidge}. */
export interface RidgeCrossValidationOptions {
  /** Number of folds. Defaults to 5. */
  folds?: number;
  /** Penalty grid. Defaults to 10^-3 … 10^5 (nine values). */
  lambdas?: readonly number[];
  /** Seed of the fold assignment. Defaults to 0. */
  seed?: number;
}

/** Outcome of {@link crossValidateRidge}. */
export interface RidgeCrossValidation {
  /** Head refitted on every row with the chosen penalty. */
  model: RidgeProbeModel;
  lambda: number;
  /** CV scores of the out-of-fold predictions at the chosen penalty. */
  cvMse: number;
  cvPearson: number;
  cvSpearman: number;
  lambdas: number[];
  /** CV mean squared error for each penalty of `lambdas`. */
  mseByLambda: number[];
  /** Out-of-fold prediction of every row at the chosen penalty. */
  outOfFold: Float64Array;
  /** Wall-clock split of the work, in milliseconds (Gram accumulation, fold solves, final fit). */
  timingsMs: { moments: number; folds: number; final: number };
}

/**
 * K-fold cross-validation of the ridge penalty, then a refit on all rows.
 *
 * Each fold's moments are accumulated once; a fold's training system is the total minus that fold,
 * standardized with the training rows' own mean and std (no leakage). The training system is
 * tridiagonalized once per fold, after which every λ of the grid costs O(d²) — so a grid of any
 * size costs about what two Cholesky factorisations would. The penalty minimising CV MSE wins
 * (ties go to the larger penalty).
 */
export function crossValidateRidge(
  matrix: FeatureMatrix,
  targets: ArrayLike<number>,
  options: RidgeCrossValidationOptions = {},
): RidgeCrossValidation {
  checkFeatureMatrix(matrix);
  checkTargets(targets, matrix.rows);
  const folds = options.folds ?? DEFAULT_FOLDS;
  const lambdas = [...(options.lambdas ?? DEFAULT_LAMBDAS)];
  checkLambdas(lambdas);
  const { features, dim, rows } = matrix;
  const assignment = kFoldAssignment(rows, folds, options.seed ?? 0);

  const momentsStart = performance.now();
  const { shift, targetShift } = globalShift(matrix, targets, allRows(rows));
  const total = emptyMoments(dim);
  const foldMoments: Moments[] = [];
  for (let fold = 0; fold < folds; fold++) {
    const moments = emptyMoments(dim);
    accumulateMoments(moments, features, targets, foldRows(assignment, fold, true), shift, targetShift);
    addMoments(total, moments);
    foldMoments.push(moments);
  }

  const foldsStart = performance.now();
  const predictions = lambdas.map(() => new Float64Array(rows));
  const standardized = new Float64Array(dim);
  for (let fold = 0; fold < folds; fold++) {
    const training = emptyMoments(dim);
    addMoments(training, total);
    addMoments(training, foldMoments[fold]!, -1);
    const system = ridgeSystem(training, shift, targetShift);
    const tri = tridiagonalize(system.gram, dim);
    const rotatedRhs = applyTransposeQ(tri, system.rhs);
    const weightsByLambda = lambdas.map((lambda) => solveShiftedTridiagonal(tri, rotatedRhs, lambda));
    const validation = foldRows(assignment, fold, true);
    for (let position = 0; position < validation.length; position++) {
      const row = validation[position]!;
      const base = row * dim;
      for (let column = 0; column < dim; column++) {
        standardized[column] = (features[base + column]! - system.mean[column]!) / system.std[column]!;
      }
      for (let index = 0; index < lambdas.length; index++) {
        const weights = weightsByLambda[index]!;
        let prediction = system.intercept;
        for (let column = 0; column < dim; column++) prediction += weights[column]! * standardized[column]!;
        predictions[index]![row] = prediction;
      }
    }
  }
  const mseByLambda = predictions.map((prediction) => meanSquaredError(targets, prediction));
  const chosen = selectLowest(mseByLambda, lambdas);
  const lambda = lambdas[chosen]!;
  const outOfFold = predictions[chosen]!;
  const scores = regressionScores(targets, outOfFold);

  const finalStart = performance.now();
  const system = ridgeSystem(total, shift, targetShift);
  const model = modelFromSystem(system, choleskySolve(system.gram, dim, system.rhs, lambda), lambda);
  model.training = {
    rows,
    folds,
    lambda,
    cvMse: scores.mse,
    cvPearson: scores.pearson,
    cvSpearman: scores.spearman,
  };
  const end = performance.now();
  return {
    model,
    lambda,
    cvMse: scores.mse,
    cvPearson: scores.pearson,
    cvSpearman: scores.spearman,
    lambdas,
    mseByLambda,
    outOfFold,
    timingsMs: {
      moments: foldsStart - momentsStart,
      folds: finalStart - foldsStart,
      final: end - finalStart,
    },
  };
}
