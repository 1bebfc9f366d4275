/**
 * One-hidden-layer perceptron heads for targets a linear probe cannot express: Adam with decoupled
 * weight decay (AdamW), seeded mini-batches, early stopping on a held-out split. `regression` mode
 * minimises MSE (on a standardized target), `binary` mode the log-loss of a 0/1 label (the risk head).
 *
 * The held-out split also sets the standardization boundary: features (and the regression target)
 * are standardized with statistics of the training part only.
 */
import { UsageError } from "../errors/index.js";
import { createRandom, normal, permutation, type Random } from "../stats/random.js";
import type { ClassWeighting } from "./logistic.js";
import { checkBinaryLabels, checkFeatureMatrix, checkTargets, type FeatureMatrix } from "./matrix.js";
import {
  activate,
  activationDerivative,
  type MlpActivation,
  type MlpProbeModel,
  PROBE_MODEL_FORMAT,
  sigmoid,
  toPlainArray,
} from "./probe-model.js";
import { fitStandardizer, type Standardizer } from "./standardize.js";

/** Options of {@link fitMlp}; every field has a default. */
export interface MlpFitOptions {
  /** "regression" (MSE) or "binary" (log-loss, targets 0/1). Defaults to "regression". */
  output?: "regression" | "binary";
  /** Hidden units. Defaults to 64. */
  hidden?: number;
  /** Defaults to "relu". */
  activation?: MlpActivation;
  /** Adam step size. Defaults to 1e-3. */
  learningRate?: number;
  /** Decoupled weight decay on the weight matrices (not biases). Defaults to 1e-4. */
  weightDecay?: number;
  /** Defaults to 64. */
  batchSize?: number;
  /** Defaults to 200. */
  maxEpochs?: number;
  /** Stop after this many epochs without a better held-out loss. Defaults to 10. */
  patience?: number;
  /** Share of rows held out for early stopping. Defaults to 0.2. */
  validationFraction?: number;
  /** Seed of the split, initialisation and batch order. Defaults to 0. */
  seed?: number;
  /** Binary mode only: class weighting, as in logistic heads. Defaults to "balanced". */
  classWeight?: ClassWeighting;
}

/** Outcome of {@link fitMlp}. */
export interface MlpFit {
  /** Parameters of the epoch with the best held-out loss. */
  model: MlpProbeModel;
  /** Best held-out loss: MSE in target units (regression) or class-weighted log-loss (binary). */
  validationLoss: number;
  bestEpoch: number;
  epochsRun: number;
  trainingRows: number;
  validationRows: number;
}

interface Parameters {
  hiddenWeights: Float64Array;
  hiddenBias: Float64Array;
  outputWeights: Float64Array;
  outputBias: Float64Array;
}

function zeroParameters(hidden: number, dim: number): Parameters {
  return {
    hiddenWeights: new Float64Array(hidden * dim),
    hiddenBias: new Float64Array(hidden),
    outputWeights: new Float64Array(hidden),
    outputBias: new Float64Array(1),
  };
}

function copyParameters(source: Parameters): Parameters {
  return {
    hiddenWeights: Float64Array.from(source.hiddenWeights),
    hiddenBias: Float64Array.from(source.hiddenBias),
    outputWeights: Float64Array.from(source.outputWeights),
    outputBias: Float64Array.from(source.outputBias),
  };
}

const PARAMETER_KEYS = ["hiddenWeights", "hiddenBias", "outputWeights", "outputBias"] as const;
const DECAYED_KEYS = new Set<keyof Parameters>(["hiddenWeights", "outputWeights"]);

function resolveOptions(options: MlpFitOptions) {
  const resolved = {
    output: options.output ?? "regression",
    hidden: options.hidden ?? 64,
    activation: options.activation ?? "relu",
    learningRate: options.learningRate ?? 1e-3,
    weightDecay: options.weightDecay ?? 1e-4,
    batchSize: options.batchSize ?? 64,
    maxEpochs: options.maxEpochs ?? 200,
    patience: options.patience ?? 10,
    validationFraction: options.validationFraction ?? 0.2,
    seed: options.seed ?? 0,
    classWeight: options.classWeight ?? "balanced",
  } as const;
  for (const key of ["hidden", "batchSize", "maxEpochs", "patience"] as const) {
    if (!Number.isInteger(resolved[key]) || resolved[key] < 1) {
      throw new UsageError(`mlp ${key} must be a positive integer, got ${resolved[key]}`);
    }
  }
  if (!(resolved.learningRate > 0))
    throw new UsageError(`mlp learningRate must be > 0, got ${resolved.learningRate}`);
  if (!(resolved.weightDecay >= 0))
    throw new UsageError(`mlp weightDecay must be ≥ 0, got ${resolved.weightDecay}`);
  if (!(resolved.validationFraction > 0 && resolved.validationFraction < 1)) {
    throw new UsageError(`mlp validationFraction must be in (0, 1), got ${resolved.validationFraction}`);
  }
  return resolved;
}

/** Splits rows into training and held-out parts; binary labels are split per class. */
function holdOutSplit(targets: ArrayLike<number>, binary: boolean, fraction: number, random: Random) {
  const order = permutation(targets.length, random);
  const training: number[] = [];
  const validation: number[] = [];
  const classes = binary ? [1, 0] : [undefined];
  for (const label of classes) {
    const members = Array.from(order).filter((row) => label === undefined || targets[row] === label);
    const held = Math.max(1, Math.round(members.length * fraction));
    members.forEach((row, position) => {
      (position < held ? validation : training).push(row);
    });
  }
  if (training.length === 0) throw new UsageError("mlp needs more rows: nothing left to train on");
  return { training: Int32Array.from(training), validation: Int32Array.from(validation) };
}

/** Trains an MLP head; see {@link MlpFitOptions} for the defaults. */
export function fitMlp(
  matrix: FeatureMatrix,
  targets: ArrayLike<number>,
  options: MlpFitOptions = {},
): MlpFit {
  checkFeatureMatrix(matrix);
  const settings = resolveOptions(options);
  const binary = settings.output === "binary";
  if (binary) checkBinaryLabels(targets, matrix.rows);
  else checkTargets(targets, matrix.rows);
  const { dim } = matrix;
  const { hidden, activation } = settings;
  const random = createRandom(settings.seed);
  const { training, validation } = holdOutSplit(targets, binary, settings.validationFraction, random);
  const standardizer = fitStandardizer(matrix, training);
  const standardized = standardizeAll(matrix, standardizer);

  // Regression targets are standardized (training part) so one learning rate suits any scale;
  // binary targets get class weights and a prior correction like logistic heads.
  let targetMean = 0;
  let targetScale = 1;
  let classWeights: [number, number] = [1, 1];
  let interceptShift = 0;
  if (binary) {
    let positives = 0;
    for (const row of training) positives += targets[row]!;
    const negatives = training.length - positives;
    if (positives === 0 || negatives === 0)
      throw new UsageError("mlp binary training rows need both classes");
    if (settings.classWeight === "balanced") {
      classWeights = [training.length / (2 * negatives), training.length / (2 * positives)];
      interceptShift = Math.log(positives / negatives);
    }
  } else {
    for (const row of training) targetMean += targets[row]!;
    targetMean /= training.length;
    let squares = 0;
    for (const row of training) squares += (targets[row]! - targetMean) ** 2;
    targetScale = Math.sqrt(squares / training.length) || 1;
  }
  const scaledTarget = (row: number): number =>
    binary ? targets[row]! : (targets[row]! - targetMean) / targetScale;

  // He initialisation for the hidden layer, 1/√hidden for the output.
  const parameters = zeroParameters(hidden, dim);
  const hiddenScale = Math.sqrt(2 / dim);
  for (let index = 0; index < parameters.hiddenWeights.length; index++) {
    parameters.hiddenWeights[index] = normal(random, 0, hiddenScale);
  }
  const outputScale = Math.sqrt(1 / hidden);
  for (let unit = 0; unit < hidden; unit++) parameters.outputWeights[unit] = normal(random, 0, outputScale);

  const gradients = zeroParameters(hidden, dim);
  const firstMoments = zeroParameters(hidden, dim);
  const secondMoments = zeroParameters(hidden, dim);
  const preActivations = new Float64Array(hidden);
  const activations = new Float64Array(hidden);
  let step = 0;

  /** Forward pass of one standardized row; fills the hidden buffers and returns the output (logit). */
  const forward = (row: number, current: Parameters): number => {
    const base = row * dim;
    let output = current.outputBias[0]!;
    for (let unit = 0; unit < hidden; unit++) {
      const weightBase = unit * dim;
      let sum = current.hiddenBias[unit]!;
      for (let column = 0; column < dim; column++)
        sum += current.hiddenWeights[weightBase + column]! * standardized[base + column]!;
      preActivations[unit] = sum;
      const value = activate(activation, sum);
      activations[unit] = value;
      output += current.outputWeights[unit]! * value;
    }
    return output;
  };

  /** Loss of one output and the derivative with respect to it. */
  const lossOf = (row: number, output: number): { loss: number; slope: number } => {
    const target = scaledTarget(row);
    if (!binary) return { loss: (output - target) ** 2, slope: 2 * (output - target) };
    const weight = classWeights[target]!;
    const softplus = output > 0 ? output + Math.log1p(Math.exp(-output)) : Math.log1p(Math.exp(output));
    return { loss: weight * (softplus - target * output), slope: weight * (sigmoid(output) - target) };
  };

  const validationLoss = (current: Parameters): number => {
    let total = 0;
    let weightSum = 0;
    for (const row of validation) {
      total += lossOf(row, forward(row, current)).loss;
      weightSum += binary ? classWeights[targets[row]!]! : 1;
    }
    // Regression loss is reported in target units.
    return binary ? total / weightSum : (total / weightSum) * targetScale * targetScale;
  };

  let best = copyParameters(parameters);
  let bestLoss = validationLoss(parameters);
  let bestEpoch = 0;
  let epochsRun = 0;
  const { learningRate, weightDecay, batchSize } = settings;
  for (let epoch = 1; epoch <= settings.maxEpochs; epoch++) {
    epochsRun = epoch;
    const order = permutation(training.length, random);
    for (let start = 0; start < order.length; start += batchSize) {
      const end = Math.min(order.length, start + batchSize);
      for (const key of PARAMETER_KEYS) gradients[key].fill(0);
      for (let position = start; position < end; position++) {
        const row = training[order[position]!]!;
        const { slope } = lossOf(row, forward(row, parameters));
        gradients.outputBias[0]! += slope;
        const base = row * dim;
        for (let unit = 0; unit < hidden; unit++) {
          gradients.outputWeights[unit]! += slope * activations[unit]!;
          const delta =
            slope * parameters.outputWeights[unit]! * activationDerivative(activation, preActivations[unit]!);
          if (delta === 0) continue;
          gradients.hiddenBias[unit]! += delta;
          const weightBase = unit * dim;
          for (let column = 0; column < dim; column++) {
            gradients.hiddenWeights[weightBase + column]! += delta * standardized[base + column]!;
          }
        }
      }
      step++;
      const batchRows = end - start;
      const firstCorrection = 1 - 0.9 ** step;
      const secondCorrection = 1 - 0.999 ** step;
      for (const key of PARAMETER_KEYS) {
        const values = parameters[key];
        const gradient = gradients[key];
        const first = firstMoments[key];
        const second = secondMoments[key];
        const decay = DECAYED_KEYS.has(key) ? weightDecay : 0;
        for (let index = 0; index < values.length; index++) {
          const g = gradient[index]! / batchRows;
          first[index] = 0.9 * first[index]! + 0.1 * g;
          second[index] = 0.999 * second[index]! + 0.001 * g * g;
          const update =
            first[index]! / firstCorrection / (Math.sqrt(second[index]! / secondCorrection) + 1e-8);
          values[index] = values[index]! - learningRate * (update + decay * values[index]!);
        }
      }
    }
    const loss = validationLoss(parameters);
    if (loss < bestLoss) {
      bestLoss = loss;
      bestEpoch = epoch;
      best = copyParameters(parameters);
    } else if (epoch - bestEpoch >= settings.patience) {
      break;
    }
  }

  // Fold the target scaling (regression) or prior correction (binary) into the output layer.
  const model: MlpProbeModel = {
    format: PROBE_MODEL_FORMAT,
    kind: "mlp",
    dim,
    mean: toPlainArray(standardizer.mean),
    std: toPlainArray(standardizer.std),
    output: settings.output,
    activation,
    hidden,
    hiddenWeights: toPlainArray(best.hiddenWeights),
    hiddenBias: toPlainArray(best.hiddenBias),
    outputWeights: toPlainArray(best.outputWeights.map((weight) => weight * targetScale)),
    outputBias: binary
      ? best.outputBias[0]! + interceptShift
      : best.outputBias[0]! * targetScale + targetMean,
    training: {
      rows: matrix.rows,
      trainingRows: training.length,
      validationRows: validation.length,
      bestEpoch,
      epochsRun,
      validationLoss: bestLoss,
    },
  };
  return {
    model,
    validationLoss: bestLoss,
    bestEpoch,
    epochsRun,
    trainingRows: training.length,
    validationRows: validation.length,
  };
}

/** Standardized copy of every row (float32 halves the memory of a 100k × 4096 copy). */
function standardizeAll(matrix: FeatureMatrix, standardizer: Standardizer): Float32Array {
  const { features, rows, dim } = matrix;
  const result = new Float32Array(rows * dim);
  for (let row = 0; row < rows; row++) {
    const base = row * dim;
    for (let column = 0; column < dim; column++) {
      result[base + column] =
        (features[base + column]! - standardizer.mean[column]!) / standardizer.std[column]!;
    }
  }
  return result;
}
