/**
 * Router heads: probes on frozen hidden states that predict the marginal gain, the small model's
 * quality (ridge or MLP regression) and the risk flag (logistic or binary MLP), plus their
 * serialisable plain-data form.
 */

export { type BuildRouterOptions, type BuiltRouter, buildRouter } from "./build-router.js";
export {
  checkLambdas,
  DEFAULT_FOLDS,
  DEFAULT_LAMBDAS,
  foldRows,
  kFoldAssignment,
  logLoss,
  logSpacedGrid,
  meanSquaredError,
  type RegressionScores,
  regressionScores,
  rocAuc,
  selectLowest,
  stratifiedKFoldAssignment,
} from "./cross-validation.js";
export {
  type GainRestack,
  type PosthocObservation,
  RESTACK_INPUTS,
  type RestackInput,
  restackScore,
} from "./gain-restack.js";
export { chooseGuardKind, GUARD_KINDS, type GuardKind } from "./guard-choice.js";
export {
  type ClassWeighting,
  crossValidateLogistic,
  fitLogistic,
  type LogisticCrossValidation,
  type LogisticCrossValidationOptions,
  type LogisticFitOptions,
  type LogisticSolverOptions,
} from "./logistic.js";
export { checkFeatureMatrix, type FeatureMatrix } from "./matrix.js";
export { fitMlp, type MlpFit, type MlpFitOptions } from "./mlp.js";
export {
  type LogisticProbeModel,
  type MlpActivation,
  type MlpProbeModel,
  PROBE_MODEL_FORMAT,
  type ProbeModel,
  type ProbeModelBase,
  parseProbeModel,
  predict,
  predictRows,
  probeModelSchema,
  type RidgeProbeModel,
  sigmoid,
} from "./probe-model.js";
export {
  crossValidateRidge,
  fitRidge,
  type RidgeCrossValidation,
  type RidgeCrossValidationOptions,
  type RidgeFitOptions,
} from "./ridge.js";
export {
  assertRouterMatches,
  type FeatureSource,
  HEAD_NAMES,
  type HeadName,
  type HeadReport,
  type HeadScores,
  loadRouter,
  parseRouter,
  posthocObservationOf,
  predictHeads,
  qeGuardAdjusts,
  qeGuardedScore,
  qeGuardReads,
  qeGuardWithoutLargeLikelihood,
  qeSignalOf,
  qeSignalValue,
  ROUTER_FORMAT,
  type RouterFile,
  type RouterHead,
  routerFeatureSelection,
} from "./router-file.js";
export { fitStandardizer, type Standardizer, standardizeRow } from "./standardize.js";
export { type ProbeKind, trainHeads } from "./train-router.js";
