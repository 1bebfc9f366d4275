/**
 * L2-regularized logistic regression heads (the risk flag g < −δ) on standardized hidden states,
 * fitted by L-BFGS, with the penalty chosen by stratified k-fold CV on log-loss.
 *
 * Objective for penalty λ, class weights c and standardized rows z (intercept unpenalized):
 *   Σ c_i · [log(1 + e^{m_i}) − y_i m_i] + (λ/2)‖w‖²,   m_i = b + wᵀz_i,
 * so λ is on the same scale as the ridge penalty (the Hessian is ZᵀCWZ + λI).
 *
 * Imbalance: by default both classes get equal total weight ("balanced"), which keeps a rare risk
 * class from being ignored; the fitted intercept is then shifted by log(n₁/n₀) (prior correction),
 * which undoes the reweighting so predicted probabilities stay calibrated to the training base rate.
 */
import { UsageError } from "../errors/index.js";
import {
  checkLambdas,
  DEFAULT_FOLDS,
  DEFAULT_LAMBDAS,
  foldRows,
  logLoss,
  rocAuc,
  selectLowest,
  stratifiedKFoldAssignment,
} from "./cross-validation.js";
import { allRows, checkBinaryLabels, checkFeatureMatrix, type FeatureMatrix } from "./matrix.js";
import { type LogisticProbeModel, PROBE_MODEL_FORMAT, sigmoid, toPlainArray } from "./probe-model.js";
import { fitStandardizer, type Standardizer } from "./standardize.js";

/** How the two classes are weighted in the loss. */
export type ClassWeighting = "balanced" | "none";

/** Optimiser settings shared by {@link fitLogistic} and {@link crossValidateLogistic}. */
export interface LogisticSolverOptions {
  /** Class weighting. Defaults to "balanced" (with prior correction of the intercept). */
  classWeight?: ClassWeighting;
  /** L-BFGS iteration cap. Defaults to 500. */
  maxIterations?: number;
  /** Stop when the largest gradient component of the per-row objective is below this. Defaults to 1e-6. */
  tolerance?: number;
}

/** Options of {@link fitLogistic}. */
export interface LogisticFitOptions extends LogisticSolverOptions {
  /** Penalty λ ≥ 0 on the standardized weights. */
  lambda: number;
  /** Training rows; defaults to every row. */
  rows?: ArrayLike<number>;
}

/** Options of {@link crossValidateLogistic}. */
export interface LogisticCrossValidationOptions extends LogisticSolverOptions {
  /** Number of folds. Defaults to 5. */
  folds?: number;
  /** Penalty grid. Defaults to 10^-3 … 10^5 (nine values). */
  lambdas?: readonly number[];
  /** Seed of the fold assignment. Defaults to 0. */
  seed?: number;
  /** Worse penalties in a row after which the path stops; defaults to {@link LOGISTIC_PATH_PATIENCE}. */
  pathPatience?: number;
}

/** Outcome of {@link crossValidateLogistic}. */
export interface LogisticCrossValidation {
  model: LogisticProbeModel;
  lambda: number;
  /** Selection criterion at the chosen λ: held-out class-weighted log-loss of the training objective. */
  cvLogLoss: number;
  /** Plain (unweighted) log-loss of the prior-corrected out-of-fold probabilities. */
  cvCalibratedLogLoss: number;
  /** ROC AUC of the out-of-fold probabilities. */
  cvAuc: number;
  lambdas: number[];
  logLossByLambda: number[];
  /** Out-of-fold probability of every row at the chosen λ (prior-corrected). */
  outOfFold: Float64Array;
}

interface SolverSettings {
  maxIterations: number;
  tolerance: number;
}

/** Per-class loss weights [c₀, c₁] for the given rows. */
function classWeightsOf(labels: ArrayLike<number>, rows: ArrayLike<number>, weighting: ClassWeighting) {
  let positives = 0;
  for (let position = 0; position < rows.length; position++) positives += labels[rows[position]!]!;
  const negatives = rows.length - positives;
  if (positives === 0 || negatives === 0) {
    throw new UsageError(
      `logistic training rows need both classes (got ${positives} positives of ${rows.length})`,
    );
  }
  const weights: [number, number] =
    weighting === "balanced" ? [rows.length / (2 * negatives), rows.length / (2 * positives)] : [1, 1];
  // Prior correction: balanced training acts as if both classes were equally likely.
  const interceptShift = weighting === "balanced" ? Math.log(positives / negatives) : 0;
  return { weights, interceptShift };
}

/** Objective of one training set, evaluated on the fly from the raw float32 rows. */
class LogisticObjective {
  readonly dimension: number;
  private readonly margins: Float64Array;
  private readonly factors: Float64Array;
  private readonly residualWeights: Float64Array;
  private readonly totalWeight: number;

  constructor(
    private readonly matrix: FeatureMatrix,
    private readonly labels: ArrayLike<number>,
    private readonly rows: ArrayLike<number>,
    private readonly standardizer: Standardizer,
    private readonly lambda: number,
    private readonly classWeights: readonly [number, number],
  ) {
    this.dimension = matrix.dim + 1;
    this.margins = new Float64Array(rows.length);
    this.factors = new Float64Array(matrix.dim);
    this.residualWeights = new Float64Array(rows.length);
    let total = 0;
    for (let position = 0; position < rows.length; position++)
      total += classWeights[labels[rows[position]!]!]!;
    this.totalWeight = total;
  }

  /** Value and gradient (written into `gradient`) at parameters [w…, b], divided by Σc. */
  evaluate(parameters: Float64Array, gradient: Float64Array): number {
    const { features, dim } = this.matrix;
    const { mean, std } = this.standardizer;
    const { factors, margins, residualWeights, rows, labels } = this;
    for (let column = 0; column < dim; column++) factors[column] = parameters[column]! / std[column]!;
    const bias = parameters[dim]!;
    let loss = 0;
    for (let position = 0; position < rows.length; position++) {
      const row = rows[position]!;
      const base = row * dim;
      let margin = bias;
      for (let column = 0; column < dim; column++)
        margin += (features[base + column]! - mean[column]!) * factors[column]!;
      margins[position] = margin;
      const label = labels[row]!;
      const weight = this.classWeights[label]!;
      // softplus(m) − y·m, written stably for both signs of m.
      const softplus = margin > 0 ? margin + Math.log1p(Math.exp(-margin)) : Math.log1p(Math.exp(margin));
      loss += weight * (softplus - label * margin);
      residualWeights[position] = weight * (sigmoid(margin) - label);
    }
    gradient.fill(0);
    let biasGradient = 0;
    for (let position = 0; position < rows.length; position++) {
      const residual = residualWeights[position]!;
      if (residual === 0) continue;
      biasGradient += residual;
      const base = rows[position]! * dim;
      for (let column = 0; column < dim; column++)
        gradient[column]! += residual * (features[base + column]! - mean[column]!);
    }
    let penalty = 0;
    for (let column = 0; column < dim; column++) {
      const weight = parameters[column]!;
      penalty += weight * weight;
      gradient[column] = (gradient[column]! / std[column]! + this.lambda * weight) / this.totalWeight;
    }
    gradient[dim] = biasGradient / this.totalWeight;
    return (loss + 0.5 * this.lambda * penalty) / this.totalWeight;
  }
}

/** L-BFGS history length. */
const HISTORY = 10;

/**
 * Minimises a smooth convex objective by L-BFGS with a backtracking (Armijo) line search, starting
 * from `start` (modified in place and returned).
 */
function minimize(objective: LogisticObjective, start: Float64Array, settings: SolverSettings): Float64Array {
  const size = objective.dimension;
  const parameters = start;
  let gradient = new Float64Array(size);
  let value = objective.evaluate(parameters, gradient);
  const steps: Float64Array[] = [];
  const gradientChanges: Float64Array[] = [];
  const curvatures: number[] = [];
  const direction = new Float64Array(size);
  const alphas = new Float64Array(HISTORY);
  const candidate = new Float64Array(size);
  let candidateGradient = new Float64Array(size);
  for (let iteration = 0; iteration < settings.maxIterations; iteration++) {
    let largest = 0;
    for (let index = 0; index < size; index++) largest = Math.max(largest, Math.abs(gradient[index]!));
    if (largest < settings.tolerance) break;
    // Two-loop recursion: direction = −H·gradient.
    for (let index = 0; index < size; index++) direction[index] = -gradient[index]!;
    for (let pair = steps.length - 1; pair >= 0; pair--) {
      const alpha = dotProduct(steps[pair]!, direction) / curvatures[pair]!;
      alphas[pair] = alpha;
      axpy(-alpha, gradientChanges[pair]!, direction);
    }
    if (steps.length > 0) {
      const last = steps.length - 1;
      const scale = curvatures[last]! / dotProduct(gradientChanges[last]!, gradientChanges[last]!);
      for (let index = 0; index < size; index++) direction[index]! *= scale;
    } else {
      // First step: a unit-length move along the negative gradient.
      const norm = Math.sqrt(dotProduct(gradient, gradient));
      for (let index = 0; index < size; index++) direction[index]! /= norm;
    }
    for (let pair = 0; pair < steps.length; pair++) {
      const beta = dotProduct(gradientChanges[pair]!, direction) / curvatures[pair]!;
      axpy(alphas[pair]! - beta, steps[pair]!, direction);
    }
    let slope = dotProduct(gradient, direction);
    if (!(slope < 0)) {
      // Not a descent direction (numerical trouble): restart from steepest descent.
      steps.length = 0;
      gradientChanges.length = 0;
      curvatures.length = 0;
      for (let index = 0; index < size; index++) direction[index] = -gradient[index]!;
      slope = dotProduct(gradient, direction);
    }
    let stepSize = 1;
    let candidateValue = Number.POSITIVE_INFINITY;
    for (let trial = 0; trial < 40; trial++) {
      for (let index = 0; index < size; index++)
        candidate[index] = parameters[index]! + stepSize * direction[index]!;
      candidateValue = objective.evaluate(candidate, candidateGradient);
      if (candidateValue <= value + 1e-4 * stepSize * slope) break;
      stepSize /= 2;
    }
    if (!(candidateValue <= value)) break; // no progress possible at this precision
    const step = new Float64Array(size);
    const change = new Float64Array(size);
    for (let index = 0; index < size; index++) {
      step[index] = candidate[index]! - parameters[index]!;
      change[index] = candidateGradient[index]! - gradient[index]!;
    }
    const curvature = dotProduct(step, change);
    if (curvature > 1e-12 * dotProduct(change, change)) {
      if (steps.length === HISTORY) {
        steps.shift();
        gradientChanges.shift();
        curvatures.shift();
      }
      steps.push(step);
      gradientChanges.push(change);
      curvatures.push(curvature);
    }
    parameters.set(candidate);
    [gradient, candidateGradient] = [candidateGradient, gradient];
    const decrease = value - candidateValue;
    value = candidateValue;
    if (decrease <= 1e-14 * Math.max(1, Math.abs(value))) break;
  }
  return parameters;
}

function dotProduct(left: Float64Array, right: Float64Array): number {
  let sum = 0;
  for (let index = 0; index < left.length; index++) sum += left[index]! * right[index]!;
  return sum;
}

function axpy(scale: number, source: Float64Array, target: Float64Array): void {
  for (let index = 0; index < source.length; index++) target[index]! += scale * source[index]!;
}

function solverSettings(options: LogisticSolverOptions): SolverSettings {
  const maxIterations = options.maxIterations ?? 500;
  const tolerance = options.tolerance ?? 1e-6;
  if (!Number.isInteger(maxIterations) || maxIterations < 1) {
    throw new UsageError(`maxIterations must be a positive integer, got ${maxIterations}`);
  }
  if (!(tolerance > 0)) throw new UsageError(`tolerance must be > 0, got ${tolerance}`);
  return { maxIterations, tolerance };
}

function toModel(
  standardizer: Standardizer,
  parameters: Float64Array,
  interceptShift: number,
  lambda: number,
): LogisticProbeModel {
  const dim = standardizer.mean.length;
  return {
    format: PROBE_MODEL_FORMAT,
    kind: "logistic",
    dim,
    mean: toPlainArray(standardizer.mean),
    std: toPlainArray(standardizer.std),
    weights: toPlainArray(parameters.subarray(0, dim)),
    bias: parameters[dim]! + interceptShift,
    lambda,
  };
}

/** Fits one logistic head with a fixed penalty; `labels` are 0/1 per row. */
export function fitLogistic(
  matrix: FeatureMatrix,
  labels: ArrayLike<number>,
  options: LogisticFitOptions,
): LogisticProbeModel {
  checkFeatureMatrix(matrix);
  checkBinaryLabels(labels, matrix.rows);
  if (!(Number.isFinite(options.lambda) && options.lambda >= 0)) {
    throw new UsageError(`lambda must be finite and ≥ 0, got ${options.lambda}`);
  }
  const rows = options.rows ?? allRows(matrix.rows);
  const standardizer = fitStandardizer(matrix, rows);
  const { weights, interceptShift } = classWeightsOf(labels, rows, options.classWeight ?? "balanced");
  const objective = new LogisticObjective(matrix, labels, rows, standardizer, options.lambda, weights);
  const parameters = minimize(objective, new Float64Array(matrix.dim + 1), solverSettings(options));
  return toModel(standardizer, parameters, interceptShift, options.lambda);
}

/** Logits bias + Σ (x − mean)/std · w of the given rows, without the sigmoid. */
function logitsOf(
  matrix: FeatureMatrix,
  standardizer: Standardizer,
  parameters: Float64Array,
  rows: Int32Array,
) {
  const { features, dim } = matrix;
  const logits = new Float64Array(rows.length);
  for (let position = 0; position < rows.length; position++) {
    const base = rows[position]! * dim;
    let logit = parameters[dim]!;
    for (let column = 0; column < dim; column++) {
      logit +=
        ((features[base + column]! - standardizer.mean[column]!) / standardizer.std[column]!) *
        parameters[column]!;
    }
    logits[position] = logit;
  }
  return logits;
}

/**
 * Weaker penalties past the best one that the path tries before it stops: held-out log-loss along a
 * ridge path rises once past its minimum, and the weakest penalties are the slowest to fit (L-BFGS
 * needs hundreds of iterations near the unpenalized fit), so stopping there saves most of the time.
 */
export const LOGISTIC_PATH_PATIENCE = 2;

/**
 * Stratified k-fold CV of the penalty, then a refit on all rows. The grid is walked from the largest
 * penalty down, every fold's fit starting from its previous solution (warm start), which keeps L-BFGS
 * short, and the walk stops once `pathPatience` penalties in a row have done worse than the best
 * so far (their log-loss is NaN in `logLossByLambda`). The penalty with the lowest
 * held-out class-weighted log-loss wins (ties go to the larger penalty).
 */
export function crossValidateLogistic(
  matrix: FeatureMatrix,
  labels: ArrayLike<number>,
  options: LogisticCrossValidationOptions = {},
): LogisticCrossValidation {
  checkFeatureMatrix(matrix);
  checkBinaryLabels(labels, matrix.rows);
  const folds = options.folds ?? DEFAULT_FOLDS;
  const lambdas = [...(options.lambdas ?? DEFAULT_LAMBDAS)];
  checkLambdas(lambdas);
  const weighting = options.classWeight ?? "balanced";
  const settings = solverSettings(options);
  const { rows, dim } = matrix;
  const assignment = stratifiedKFoldAssignment(labels, folds, options.seed ?? 0);
  const overall = classWeightsOf(labels, allRows(rows), weighting);
  const patience = options.pathPatience ?? LOGISTIC_PATH_PATIENCE;
  if (!(patience >= 1)) throw new UsageError(`pathPatience must be ≥ 1, got ${patience}`);
  const order = lambdas.map((_, index) => index).sort((left, right) => lambdas[right]! - lambdas[left]!);
  const foldStates = Array.from({ length: folds }, (_, fold) => {
    const training = foldRows(assignment, fold, false);
    return {
      training,
      validation: foldRows(assignment, fold, true),
      standardizer: fitStandardizer(matrix, training),
      ...classWeightsOf(labels, training, weighting),
      parameters: new Float64Array(dim + 1),
    };
  });
  const trainingLogits = lambdas.map(() => new Float64Array(rows));
  const correctedProbabilities = lambdas.map(() => new Float64Array(rows));
  const logLossByLambda = lambdas.map(() => Number.NaN);
  let bestLoss = Number.POSITIVE_INFINITY;
  let worseInARow = 0;
  for (const index of order) {
    for (const state of foldStates) {
      const { training, validation, standardizer, weights, interceptShift, parameters } = state;
      const objective = new LogisticObjective(
        matrix,
        labels,
        training,
        standardizer,
        lambdas[index]!,
        weights,
      );
      minimize(objective, parameters, settings);
      const logits = logitsOf(matrix, standardizer, parameters, validation);
      for (let position = 0; position < validation.length; position++) {
        const row = validation[position]!;
        trainingLogits[index]![row] = logits[position]!;
        correctedProbabilities[index]![row] = sigmoid(logits[position]! + interceptShift);
      }
    }
    const loss = logLoss(labels, trainingLogits[index]!.map(sigmoid), overall.weights);
    logLossByLambda[index] = loss;
    if (loss < bestLoss) {
      bestLoss = loss;
      worseInARow = 0;
    } else if (++worseInARow >= patience) break;
  }
  const chosen = selectLowest(logLossByLambda, lambdas);
  const lambda = lambdas[chosen]!;
  const outOfFold = correctedProbabilities[chosen]!;
  const model = fitLogistic(matrix, labels, { ...options, lambda, classWeight: weighting });
  const cvAuc = rocAuc(labels, outOfFold);
  const cvCalibratedLogLoss = logLoss(labels, outOfFold);
  model.training = {
    rows,
    folds,
    lambda,
    classWeight: weighting,
    cvLogLoss: logLossByLambda[chosen]!,
    cvCalibratedLogLoss,
    cvAuc,
  };
  return {
    model,
    lambda,
    cvLogLoss: logLossByLambda[chosen]!,
    cvCalibratedLogLoss,
    cvAuc,
    lambdas,
    logLossByLambda,
    outOfFold,
  };
}
