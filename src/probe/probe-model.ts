/**
 * Trained router heads as plain data: what is written to JSON, read back, validated and scored.
 *
 * Every head stores the standardization it was trained with (`mean`, `std` per feature), so
 * scoring takes raw hidden states. Scoring is pure and does the same arithmetic, in the same order,
 * for a single row ({@link predict}) and for a batch ({@link predictRows}), so the two agree to the bit.
 */
import { z } from "zod";
import { InputError } from "../errors/index.js";

/** Version of the serialised form; bumped on incompatible changes. */
export const PROBE_MODEL_FORMAT = 1;

/** What every head stores. */
export interface ProbeModelBase {
  format: typeof PROBE_MODEL_FORMAT;
  /** Hidden-state dimension the head expects. */
  dim: number;
  /** Per-feature training mean, length dim. */
  mean: number[];
  /** Per-feature training std (constant features stored as 1), length dim. */
  std: number[];
  /** Free-form training facts (chosen lambda, CV scores, row count) kept for reports. */
  training?: Record<string, number | string>;
}

/** Linear regression head: bias + Σ weights·z. */
export interface RidgeProbeModel extends ProbeModelBase {
  kind: "ridge";
  weights: number[];
  bias: number;
  lambda: number;
}

/** Logistic head: predicts the probability σ(bias + Σ weights·z). */
export interface LogisticProbeModel extends ProbeModelBase {
  kind: "logistic";
  weights: number[];
  bias: number;
  lambda: number;
}

/** Hidden-unit non-linearity of an MLP head. GELU uses the tanh approximation. */
export type MlpActivation = "relu" | "gelu";

/** One-hidden-layer perceptron head; `binary` heads predict a probability. */
export interface MlpProbeModel extends ProbeModelBase {
  kind: "mlp";
  output: "regression" | "binary";
  activation: MlpActivation;
  hidden: number;
  /** hidden × dim, row-major (row h holds the input weights of unit h). */
  hiddenWeights: number[];
  hiddenBias: number[];
  outputWeights: number[];
  outputBias: number;
}

/** Any trained head. */
export type ProbeModel = RidgeProbeModel | LogisticProbeModel | MlpProbeModel;

/** The logistic function, written to avoid overflow for large |logit|. */
export function sigmoid(logit: number): number {
  if (logit >= 0) return 1 / (1 + Math.exp(-logit));
  const exponential = Math.exp(logit);
  return exponential / (1 + exponential);
}

const GELU_SCALE = Math.sqrt(2 / Math.PI);

/** Activation value of a hidden unit. */
export function activate(activation: MlpActivation, value: number): number {
  if (activation === "relu") return Math.max(value, 0);
  return 0.5 * value * (1 + Math.tanh(GELU_SCALE * (value + 0.044715 * value * value * value)));
}

/** Derivative of {@link activate} with respect to its input. */
export function activationDerivative(activation: MlpActivation, value: number): number {
  if (activation === "relu") return value > 0 ? 1 : 0;
  const cube = 0.044715 * value * value * value;
  const hyperbolic = Math.tanh(GELU_SCALE * (value + cube));
  const inner = GELU_SCALE * (1 + 3 * 0.044715 * value * value);
  return 0.5 * (1 + hyperbolic) + 0.5 * value * (1 - hyperbolic * hyperbolic) * inner;
}

function checkRowInRange(model: ProbeModel, features: Float32Array, rows: number): void {
  if (features.length < rows * model.dim) {
    throw new InputError(
      `probe expects ${model.dim} features per row; got ${features.length} values for ${rows} rows`,
    );
  }
}

/** Per-feature factors weight / std of a linear head, so each term is (x − mean)·factor. */
function linearFactors(model: RidgeProbeModel | LogisticProbeModel): Float64Array {
  const factors = new Float64Array(model.dim);
  for (let column = 0; column < model.dim; column++)
    factors[column] = model.weights[column]! / model.std[column]!;
  return factors;
}

function linearScore(
  model: RidgeProbeModel | LogisticProbeModel,
  factors: Float64Array,
  features: Float32Array,
  row: number,
): number {
  const { dim, mean } = model;
  const base = row * dim;
  let sum = model.bias;
  for (let column = 0; column < dim; column++)
    sum += (features[base + column]! - mean[column]!) * factors[column]!;
  return model.kind === "logistic" ? sigmoid(sum) : sum;
}

function mlpScore(
  model: MlpProbeModel,
  features: Float32Array,
  row: number,
  standardized: Float64Array,
): number {
  const { dim, mean, std, hidden, hiddenWeights, hiddenBias, outputWeights, activation } = model;
  const base = row * dim;
  for (let column = 0; column < dim; column++)
    standardized[column] = (features[base + column]! - mean[column]!) / std[column]!;
  let output = model.outputBias;
  for (let unit = 0; unit < hidden; unit++) {
    const weightBase = unit * dim;
    let preActivation = hiddenBias[unit]!;
    for (let column = 0; column < dim; column++)
      preActivation += hiddenWeights[weightBase + column]! * standardized[column]!;
    output += outputWeights[unit]! * activate(activation, preActivation);
  }
  return model.output === "binary" ? sigmoid(output) : output;
}

/**
 * Score of row `row` (default 0) of a row-major feature array: the predicted value for regression
 * heads, the probability of the positive class for logistic and binary MLP heads.
 */
export function predict(model: ProbeModel, features: Float32Array, row = 0): number {
  checkRowInRange(model, features, row + 1);
  if (model.kind === "mlp") return mlpScore(model, features, row, new Float64Array(model.dim));
  return linearScore(model, linearFactors(model), features, row);
}

/** Scores of the first `rows` rows of a row-major `matrix`; equal to calling {@link predict} per row. */
export function predictRows(model: ProbeModel, matrix: Float32Array, rows: number): Float64Array {
  checkRowInRange(model, matrix, rows);
  const scores = new Float64Array(rows);
  if (model.kind === "mlp") {
    const standardized = new Float64Array(model.dim);
    for (let row = 0; row < rows; row++) scores[row] = mlpScore(model, matrix, row, standardized);
  } else {
    const factors = linearFactors(model);
    for (let row = 0; row < rows; row++) scores[row] = linearScore(model, factors, matrix, row);
  }
  return scores;
}

const finiteNumber = z.number().refine(Number.isFinite, "must be finite");
const positiveNumber = finiteNumber.refine((value) => value > 0, "must be > 0");
const baseShape = {
  format: z.literal(PROBE_MODEL_FORMAT),
  dim: z.number().int().positive(),
  mean: z.array(finiteNumber),
  std: z.array(positiveNumber),
  training: z.record(z.string(), z.union([z.number(), z.string()])).optional(),
};
const linearShape = {
  ...baseShape,
  weights: z.array(finiteNumber),
  bias: finiteNumber,
  lambda: finiteNumber.min(0),
};

/**
 * Validates a head read from JSON: shape, finiteness and that every array length agrees with `dim`
 * (and `hidden` for MLPs).
 */
export const probeModelSchema = z
  .discriminatedUnion("kind", [
    z.object({ kind: z.literal("ridge"), ...linearShape }),
    z.object({ kind: z.literal("logistic"), ...linearShape }),
    z.object({
      kind: z.literal("mlp"),
      ...baseShape,
      output: z.enum(["regression", "binary"]),
      activation: z.enum(["relu", "gelu"]),
      hidden: z.number().int().positive(),
      hiddenWeights: z.array(finiteNumber),
      hiddenBias: z.array(finiteNumber),
      outputWeights: z.array(finiteNumber),
      outputBias: finiteNumber,
    }),
  ])
  .superRefine((model, context) => {
    const expectLength = (name: string, actual: number, expected: number): void => {
      if (actual !== expected) {
        context.addIssue({
          code: "custom",
          path: [name],
          message: `has ${actual} values, expected ${expected}`,
        });
      }
    };
    expectLength("mean", model.mean.length, model.dim);
    expectLength("std", model.std.length, model.dim);
    if (model.kind === "mlp") {
      expectLength("hiddenWeights", model.hiddenWeights.length, model.hidden * model.dim);
      expectLength("hiddenBias", model.hiddenBias.length, model.hidden);
      expectLength("outputWeights", model.outputWeights.length, model.hidden);
    } else {
      expectLength("weights", model.weights.length, model.dim);
    }
  });

/** Parses and validates a head from JSON text or an already-parsed value; `file` locates errors. */
export function parseProbeModel(input: string | unknown, file?: string): ProbeModel {
  let value: unknown = input;
  if (typeof input === "string") {
    try {
      value = JSON.parse(input);
    } catch (error) {
      throw new InputError(
        `probe model is not valid JSON: ${(error as Error).message}`,
        { file },
        { cause: error },
      );
    }
  }
  const parsed = probeModelSchema.safeParse(value);
  if (!parsed.success) {
    const details = parsed.error.issues.map(
      (issue) => `${issue.path.join(".") || "(root)"} ${issue.message}`,
    );
    throw new InputError(`invalid probe model: ${details.join("; ")}`, { file });
  }
  return parsed.data as ProbeModel;
}

/** Converts a Float64Array (or any numbers) to the plain array stored in a head. */
export function toPlainArray(values: ArrayLike<number>): number[] {
  return Array.from(values);
}
