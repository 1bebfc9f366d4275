/**
 * Ridge fits of one feature matrix on many training subsets, for many penalties and targets at
 * once — what nested cross-validation asks for. Two exact forms of the same estimator:
 *
 * - primal: solve (ZᵀZ + λI) w = Zᵀy through the d × d Gram of the training rows;
 * - dual (kernel): w = Zᵀ(ZZᵀ + λI)⁻¹y through the n_T × n_T kernel of the training rows, which is
 *   the cheaper one when there are more features than training rows (every layer and pooling of a
 *   large model: tens of thousands of values per row for a few thousand rows).
 *
 * Both fit ridge on z = (x − μ_T) / σ with an unpenalized intercept ȳ_T (μ_T, ȳ_T the training
 * rows' means). Either way a training set is tridiagonalized once, after which every penalty costs
 * O(d²) or O(n_T²). The scale σ is fixed per solver — the statistics of every row it holds, which
 * read no label — so that kernels can be computed once and shared by every training subset.
 */
import { UsageError } from "../errors/index.js";
import {
  DEFAULT_FOLDS,
  DEFAULT_LAMBDAS,
  foldRows,
  kFoldAssignment,
  meanSquaredError,
  selectLowest,
} from "./cross-validation.js";
import {
  accumulateKernel,
  accumulateMoments,
  addMoments,
  applyTransposeQ,
  choleskySolve,
  emptyMoments,
  type Moments,
  solveShiftedTridiagonal,
  tridiagonalize,
} from "./linear-algebra.js";
import { allRows, type FeatureMatrix } from "./matrix.js";
import type { RidgeProbeModel } from "./probe-model.js";
import { globalShift, modelFromSystem, ridgeSystem } from "./ridge.js";
import { fitStandardizer } from "./standardize.js";

export type RidgeForm = "primal" | "dual";

/** Rows a fit is trained on. */
export interface TrainingSet {
  rows: Int32Array;
  /**
   * When the solver was given `cells`: the training rows are every row outside these cells. The
   * primal form then assembles the training Gram from per-cell moments instead of reading the rows.
   */
  excludedCells?: readonly number[];
}

export interface RidgeSolver {
  readonly form: RidgeForm;
  readonly dim: number;
  /**
   * Predictions at the `evaluate` rows of fits on `training`, for every target and penalty:
   * `result[target][penalty][position]`. Targets are full-length (one value per row of the matrix);
   * only the training rows' values are read.
   */
  predict(
    training: TrainingSet,
    evaluate: ArrayLike<number>,
    targets: readonly ArrayLike<number>[],
    lambdas: readonly number[],
  ): Float64Array[][];
  /** The head fitted on `training` rows with one penalty. */
  fit(training: ArrayLike<number>, targets: ArrayLike<number>, lambda: number): RidgeProbeModel;
}

export interface RidgeSolverOptions {
  /** `auto` (default) takes the dual form when the matrix is wider than `trainingRows`. */
  form?: RidgeForm | "auto";
  /** Typical training-set size, for `auto`. Defaults to every row. */
  trainingRows?: number;
  /** A cell id per row (e.g. nested folds), so primal training Grams can be built from per-cell moments. */
  cells?: Int32Array;
}

/** Which form `auto` takes: the dual when there are more features than training rows. */
export function preferredRidgeForm(dim: number, trainingRows: number): RidgeForm {
  return dim > trainingRows ? "dual" : "primal";
}

export function createRidgeSolver(matrix: FeatureMatrix, options: RidgeSolverOptions = {}): RidgeSolver {
  const requested = options.form ?? "auto";
  const form =
    requested === "auto" ? preferredRidgeForm(matrix.dim, options.trainingRows ?? matrix.rows) : requested;
  const { std } = fitStandardizer(matrix);
  return form === "primal"
    ? new PrimalRidgeSolver(matrix, std, options.cells)
    : new DualRidgeSolver(matrix, std);
}

function meanOver(values: ArrayLike<number>, rows: ArrayLike<number>): number {
  let sum = 0;
  for (let position = 0; position < rows.length; position++) sum += values[rows[position]!]!;
  return sum / rows.length;
}

function checkTrainingSet(rows: ArrayLike<number>): void {
  if (rows.length < 2)
    throw new UsageError(`a ridge fit needs at least two training rows, got ${rows.length}`);
}

class PrimalRidgeSolver implements RidgeSolver {
  readonly form = "primal";
  readonly dim: number;
  private readonly shift: Float64Array;
  private cellMoments: Moments[] | null = null;
  private totalMoments: Moments | null = null;

  constructor(
    private readonly matrix: FeatureMatrix,
    private readonly std: Float64Array,
    private readonly cells: Int32Array | undefined,
  ) {
    this.dim = matrix.dim;
    // Moments are shifted by the global mean so that centring never subtracts large numbers.
    this.shift = globalShift(matrix, new Float64Array(matrix.rows), allRows(matrix.rows)).shift;
  }

  private momentsOf(training: TrainingSet): Moments {
    const zeros = new Float64Array(this.matrix.rows);
    if (training.excludedCells && this.cells) {
      if (this.cellMoments === null) {
        const cellCount = this.cells.reduce((most, cell) => Math.max(most, cell + 1), 0);
        const members: number[][] = Array.from({ length: cellCount }, () => []);
        this.cells.forEach((cell, row) => {
          members[cell]!.push(row);
        });
        this.totalMoments = emptyMoments(this.dim);
        this.cellMoments = members.map((rows) => {
          const moments = emptyMoments(this.dim);
          accumulateMoments(moments, this.matrix.features, zeros, rows, this.shift, 0);
          addMoments(this.totalMoments!, moments);
          return moments;
        });
      }
      const moments = emptyMoments(this.dim);
      addMoments(moments, this.totalMoments!);
      for (const cell of training.excludedCells) addMoments(moments, this.cellMoments[cell]!, -1);
      if (moments.count !== training.rows.length) {
        throw new UsageError(
          `training set of ${training.rows.length} rows does not match the ${moments.count} rows outside its excluded cells`,
        );
      }
      return moments;
    }
    const moments = emptyMoments(this.dim);
    accumulateMoments(moments, this.matrix.features, zeros, training.rows, this.shift, 0);
    return moments;
  }

  /** Zᵀ(y − ȳ) over the training rows, z standardized with the training mean and the fixed scale. */
  private rhs(rows: ArrayLike<number>, mean: Float64Array, targets: ArrayLike<number>, targetMean: number) {
    const { features, dim } = this.matrix;
    const rhs = new Float64Array(dim);
    for (let position = 0; position < rows.length; position++) {
      const row = rows[position]!;
      const centred = targets[row]! - targetMean;
      const base = row * dim;
      for (let column = 0; column < dim; column++)
        rhs[column]! += (features[base + column]! - mean[column]!) * centred;
    }
    for (let column = 0; column < dim; column++) rhs[column]! /= this.std[column]!;
    return rhs;
  }

  predict(
    training: TrainingSet,
    evaluate: ArrayLike<number>,
    targets: readonly ArrayLike<number>[],
    lambdas: readonly number[],
  ): Float64Array[][] {
    checkTrainingSet(training.rows);
    const { features, dim } = this.matrix;
    const system = ridgeSystem(this.momentsOf(training), this.shift, 0, this.std);
    const tri = tridiagonalize(system.gram, dim);
    return targets.map((target) => {
      const targetMean = meanOver(target, training.rows);
      const rotated = applyTransposeQ(tri, this.rhs(training.rows, system.mean, target, targetMean));
      return lambdas.map((lambda) => {
        const weights = solveShiftedTridiagonal(tri, rotated, lambda);
        const factors = weights.map((weight, column) => weight / this.std[column]!);
        const predictions = new Float64Array(evaluate.length);
        for (let position = 0; position < evaluate.length; position++) {
          const base = evaluate[position]! * dim;
          let sum = targetMean;
          for (let column = 0; column < dim; column++)
            sum += (features[base + column]! - system.mean[column]!) * factors[column]!;
          predictions[position] = sum;
        }
        return predictions;
      });
    });
  }

  fit(training: ArrayLike<number>, targets: ArrayLike<number>, lambda: number): RidgeProbeModel {
    checkTrainingSet(training);
    const rows = Int32Array.from(training);
    const system = ridgeSystem(this.momentsOf({ rows }), this.shift, 0, this.std);
    const intercept = meanOver(targets, rows);
    const rhs = this.rhs(rows, system.mean, targets, intercept);
    const weights = choleskySolve(system.gram, this.dim, rhs, lambda);
    return modelFromSystem({ ...system, intercept }, weights, lambda);
  }
}

/**
 * The dual form. The kernel of every row, K = ZZᵀ with z = (x − μ) / σ over all rows, is computed
 * once; a training set's centred kernel is then a submatrix, re-centred on the training rows:
 * K_c(a, b) = K(a, b) − m_a − m_b + m̄ with m_a the mean of K(a, t) over training rows t and m̄ their
 * mean — the same as centring z on the training mean, which is what the intercept does.
 */
class DualRidgeSolver implements RidgeSolver {
  readonly form = "dual";
  readonly dim: number;
  private readonly mean: Float64Array;
  private kernelCache: Float64Array | null = null;

  constructor(
    private readonly matrix: FeatureMatrix,
    private readonly std: Float64Array,
  ) {
    this.dim = matrix.dim;
    this.mean = globalShift(matrix, new Float64Array(matrix.rows), allRows(matrix.rows)).shift;
  }

  private kernel(): Float64Array {
    if (this.kernelCache === null) {
      const { rows, dim, features } = this.matrix;
      const kernel = new Float64Array(rows * rows);
      accumulateKernel(kernel, features, dim, allRows(rows), { from: 0, to: dim }, this.mean, this.std);
      this.kernelCache = kernel;
    }
    return this.kernelCache;
  }

  /** K(a, b) from the upper triangle. */
  private entry(kernel: Float64Array, a: number, b: number): number {
    const rows = this.matrix.rows;
    return a <= b ? kernel[a * rows + b]! : kernel[b * rows + a]!;
  }

  /** Means of K(a, t) over the training rows t, for every row a, and their mean over a in training. */
  private centring(training: ArrayLike<number>): { rowMeans: Float64Array; grandMean: number } {
    const rows = this.matrix.rows;
    const kernel = this.kernel();
    const rowMeans = new Float64Array(rows);
    for (let a = 0; a < rows; a++) {
      let sum = 0;
      for (let position = 0; position < training.length; position++)
        sum += this.entry(kernel, a, training[position]!);
      rowMeans[a] = sum / training.length;
    }
    return { rowMeans, grandMean: meanOver(rowMeans, training) };
  }

  /** The centred training kernel, upper triangle of an n_T × n_T matrix. */
  private trainingKernel(
    training: ArrayLike<number>,
    rowMeans: Float64Array,
    grandMean: number,
  ): Float64Array {
    const count = training.length;
    const full = this.kernel();
    const kernel = new Float64Array(count * count);
    for (let i = 0; i < count; i++) {
      const a = training[i]!;
      for (let j = i; j < count; j++) {
        const b = training[j]!;
        kernel[i * count + j] = this.entry(full, a, b) - rowMeans[a]! - rowMeans[b]! + grandMean;
      }
    }
    return kernel;
  }

  predict(
    training: TrainingSet,
    evaluate: ArrayLike<number>,
    targets: readonly ArrayLike<number>[],
    lambdas: readonly number[],
  ): Float64Array[][] {
    const rows = training.rows;
    checkTrainingSet(rows);
    for (const lambda of lambdas) checkDualLambda(lambda);
    const count = rows.length;
    const { rowMeans, grandMean } = this.centring(rows);
    const tri = tridiagonalize(this.trainingKernel(rows, rowMeans, grandMean), count);
    const full = this.kernel();
    const cross = new Float64Array(evaluate.length * count);
    for (let position = 0; position < evaluate.length; position++) {
      const v = evaluate[position]!;
      for (let t = 0; t < count; t++) {
        const b = rows[t]!;
        cross[position * count + t] = this.entry(full, v, b) - rowMeans[v]! - rowMeans[b]! + grandMean;
      }
    }
    return targets.map((target) => {
      const targetMean = meanOver(target, rows);
      const centred = Float64Array.from(rows, (row) => target[row]! - targetMean);
      const rotated = applyTransposeQ(tri, centred);
      return lambdas.map((lambda) => {
        const dual = solveShiftedTridiagonal(tri, rotated, lambda);
        const predictions = new Float64Array(evaluate.length);
        for (let position = 0; position < evaluate.length; position++) {
          const base = position * count;
          let sum = targetMean;
          for (let t = 0; t < count; t++) sum += cross[base + t]! * dual[t]!;
          predictions[position] = sum;
        }
        return predictions;
      });
    });
  }

  fit(training: ArrayLike<number>, targets: ArrayLike<number>, lambda: number): RidgeProbeModel {
    checkTrainingSet(training);
    checkDualLambda(lambda);
    const { features, dim } = this.matrix;
    const count = training.length;
    const { rowMeans, grandMean } = this.centring(training);
    const intercept = meanOver(targets, training);
    const centred = Float64Array.from({ length: count }, (_, t) => targets[training[t]!]! - intercept);
    const dual = choleskySolve(this.trainingKernel(training, rowMeans, grandMean), count, centred, lambda);
    // w = Zᵀα, z the training rows standardized on their own mean.
    const mean = new Float64Array(dim);
    for (let t = 0; t < count; t++) {
      const base = training[t]! * dim;
      for (let column = 0; column < dim; column++) mean[column]! += features[base + column]!;
    }
    for (let column = 0; column < dim; column++) mean[column]! /= count;
    const weights = new Float64Array(dim);
    for (let t = 0; t < count; t++) {
      const base = training[t]! * dim;
      const coefficient = dual[t]!;
      for (let column = 0; column < dim; column++)
        weights[column]! += coefficient * (features[base + column]! - mean[column]!);
    }
    for (let column = 0; column < dim; column++) weights[column]! /= this.std[column]!;
    return modelFromSystem({ dim, mean, std: this.std, intercept }, weights, lambda);
  }
}

function checkDualLambda(lambda: number): void {
  // The centred kernel is singular (its rows sum to zero), so the dual needs a positive penalty.
  if (!(Number.isFinite(lambda) && lambda > 0))
    throw new UsageError(`the dual (kernel) ridge needs a penalty > 0, got ${lambda}`);
}

/**
 * Fits one ridge head in the dual (kernel) form: the same minimiser as `fitRidge` — standardized on
 * the training rows, intercept unpenalized — computed through the n_T × n_T kernel, which is cheaper
 * when there are more features than training rows. The penalty must be positive.
 */
export function fitRidgeDual(
  matrix: FeatureMatrix,
  targets: ArrayLike<number>,
  options: { lambda: number; rows?: ArrayLike<number> },
): RidgeProbeModel {
  const rows = options.rows ? Int32Array.from(options.rows) : allRows(matrix.rows);
  const subset = pickRows(matrix, rows);
  const solver = createRidgeSolver(subset, { form: "dual" });
  return solver.fit(
    allRows(rows.length),
    Float64Array.from(rows, (row) => targets[row]!),
    options.lambda,
  );
}

/** The given rows of a feature matrix, in that order. */
export function pickRows(matrix: FeatureMatrix, rows: ArrayLike<number>): FeatureMatrix {
  const features = new Float32Array(rows.length * matrix.dim);
  for (let position = 0; position < rows.length; position++) {
    const start = rows[position]! * matrix.dim;
    features.set(matrix.features.subarray(start, start + matrix.dim), position * matrix.dim);
  }
  return { features, rows: rows.length, dim: matrix.dim };
}

/**
 * k-fold cross-validation of the ridge penalty by mean squared error, as `crossValidateRidge`
 * does, in the dual form for features wider than the training folds. The scale σ is that of every
 * row (label-free), so the kernel is computed once for all folds.
 */
export function crossValidateRidgeDual(
  matrix: FeatureMatrix,
  targets: ArrayLike<number>,
  options: { folds?: number; seed?: number; lambdas?: readonly number[] } = {},
): { model: RidgeProbeModel; lambda: number; outOfFold: Float64Array } {
  const folds = options.folds ?? DEFAULT_FOLDS;
  const lambdas = options.lambdas ?? DEFAULT_LAMBDAS;
  const assignment = kFoldAssignment(matrix.rows, folds, options.seed ?? 0);
  const solver = createRidgeSolver(matrix, { form: "dual" });
  const predictions = lambdas.map(() => new Float64Array(matrix.rows));
  for (let fold = 0; fold < folds; fold++) {
    const validation = foldRows(assignment, fold, true);
    const byLambda = solver.predict(
      { rows: foldRows(assignment, fold, false) },
      validation,
      [targets],
      lambdas,
    )[0]!;
    byLambda.forEach((values, index) => {
      validation.forEach((row, position) => {
        predictions[index]![row] = values[position]!;
      });
    });
  }
  const chosen = selectLowest(
    predictions.map((prediction) => meanSquaredError(targets, prediction)),
    lambdas,
  );
  const lambda = lambdas[chosen]!;
  return {
    model: solver.fit(allRows(matrix.rows), targets, lambda),
    lambda,
    outOfFold: predictions[chosen]!,
  };
}
