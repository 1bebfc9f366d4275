/**
 * The post-hoc re-estimate of the gain: once the small translation is decoded, the gain head's
 * prediction from the prefill is one input among several that the decode makes known — the small
 * model's confidence in its translation, the large model's likelihood of it, the prompt's length and
 * how long the translation came out relative to its source. A ridge regression of the true gain on
 * these (fitted on the gain head's out-of-fold predictions, so it learns how far to trust them)
 * ranks the candidates for the large model better than the prefill alone: a short or truncated small
 * translation, or one the large model finds unlikely, is where the large model's output differs most,
 * for the better or the worse, and the regression weighs both.
 *
 * Inputs are plain numbers computed the same way in training, eval and serving.
 */
import { UsageError } from "../errors/index.js";
import { foldCountOf, foldRows } from "./cross-validation.js";
import type { FeatureMatrix } from "./matrix.js";
import { predict, type RidgeProbeModel } from "./probe-model.js";
import { fitRidge } from "./ridge.js";

/**
 * What the re-estimate reads: `gain`, the gain head's prediction; `small-confidence`, the small
 * model's mean token log-probability of its translation; `large-likelihood`, the large model's;
 * `log-prompt-tokens`, ln of the small model's prompt length in tokens; `length-ratio`,
 * ln(1 + characters of the translation) − ln(1 + characters of the source).
 */
export const RESTACK_INPUTS = [
  "gain",
  "small-confidence",
  "large-likelihood",
  "log-prompt-tokens",
  "length-ratio",
] as const;
export type RestackInput = (typeof RESTACK_INPUTS)[number];

/** The ridge penalty on the standardized inputs: a handful of inputs and thousands of rows need little. */
export const RESTACK_PENALTY = 1;

/** What is known of one request once its small translation is decoded (null where unknown). */
export interface PosthocObservation {
  gain: number;
  smallConfidence: number | null;
  largeLikelihood: number | null;
  promptTokens: number | null;
  src: string;
  small: string | null;
}

/** A fitted re-estimate: its inputs, in order, and the ridge model over them. */
export interface GainRestack {
  inputs: RestackInput[];
  model: RidgeProbeModel;
}

/** Characters as a reader counts them (code points, not UTF-16 units). */
function characterCount(text: string): number {
  let count = 0;
  for (const _ of text) count++;
  return count;
}

/** One input's value for one request; null when the request lacks it. */
export function restackInputValue(input: RestackInput, observation: PosthocObservation): number | null {
  const finiteOrNull = (value: number | null) => (value !== null && Number.isFinite(value) ? value : null);
  switch (input) {
    case "gain":
      return finiteOrNull(observation.gain);
    case "small-confidence":
      return finiteOrNull(observation.smallConfidence);
    case "large-likelihood":
      return finiteOrNull(observation.largeLikelihood);
    case "log-prompt-tokens":
      return observation.promptTokens !== null && observation.promptTokens > 0
        ? Math.log(observation.promptTokens)
        : null;
    case "length-ratio":
      return observation.small === null
        ? null
        : Math.log1p(characterCount(observation.small)) - Math.log1p(characterCount(observation.src));
  }
}

/** The inputs every observation has, in {@link RESTACK_INPUTS} order (`gain` always first). */
export function availableRestackInputs(
  observations: readonly PosthocObservation[],
  candidates: readonly RestackInput[] = RESTACK_INPUTS,
): RestackInput[] {
  return candidates.filter((input) =>
    observations.every((observation) => restackInputValue(input, observation) !== null),
  );
}

function restackMatrix(inputs: readonly RestackInput[], observations: readonly PosthocObservation[]) {
  const dim = inputs.length;
  const features = new Float32Array(observations.length * dim);
  observations.forEach((observation, row) => {
    inputs.forEach((input, column) => {
      const value = restackInputValue(input, observation);
      if (value === null)
        throw new UsageError(`the gain re-estimate needs ${input} of every row; row ${row} has none`);
      features[row * dim + column] = value;
    });
  });
  return { features, rows: observations.length, dim } satisfies FeatureMatrix;
}

/** Fits the re-estimate of `gains` on `inputs` of the observations (all rows, or `rows`). */
export function fitRestack(
  inputs: readonly RestackInput[],
  observations: readonly PosthocObservation[],
  gains: ArrayLike<number>,
  rows?: ArrayLike<number>,
): GainRestack {
  return fitOnMatrix(inputs, restackMatrix(inputs, observations), gains, rows);
}

function fitOnMatrix(
  inputs: readonly RestackInput[],
  matrix: FeatureMatrix,
  gains: ArrayLike<number>,
  rows?: ArrayLike<number>,
): GainRestack {
  if (inputs[0] !== "gain") throw new UsageError("the gain re-estimate's first input must be the gain");
  return {
    inputs: [...inputs],
    model: fitRidge(matrix, gains, { lambda: RESTACK_PENALTY, ...(rows ? { rows } : {}) }),
  };
}

/** The re-estimated gain of one request; null when it lacks an input. */
export function restackScore(restack: GainRestack, observation: PosthocObservation): number | null {
  const row = new Float32Array(restack.inputs.length);
  for (let column = 0; column < restack.inputs.length; column++) {
    const value = restackInputValue(restack.inputs[column]!, observation);
    if (value === null) return null;
    row[column] = value;
  }
  return predict(restack.model, row);
}

/**
 * Out-of-fold re-estimates: each fold's rows scored by a re-estimate fitted on the other folds. With
 * out-of-fold gain predictions as the `gain` input, the re-estimate is measured on rows neither it
 * nor the gain head was fitted on.
 */
export function outOfFoldRestack(
  inputs: readonly RestackInput[],
  observations: readonly PosthocObservation[],
  gains: ArrayLike<number>,
  folds: Int32Array,
): Float64Array {
  // One matrix for every fold: each fit reads its rows, each held-out row is scored where it lies.
  const matrix = restackMatrix(inputs, observations);
  const scores = new Float64Array(observations.length);
  const foldCount = foldCountOf(folds);
  for (let fold = 0; fold < foldCount; fold++) {
    const held = foldRows(folds, fold, true);
    if (held.length === 0) continue;
    const { model } = fitOnMatrix(inputs, matrix, gains, foldRows(folds, fold, false));
    for (const row of held) scores[row] = predict(model, matrix.features, row);
  }
  return scores;
}
