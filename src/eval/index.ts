export {
  type BootstrapInterval,
  type PairedBootstrapOptions,
  pairedBootstrapMeanDelta,
} from "./bootstrap.js";
export {
  type CostBasis,
  type CostCurvePoint,
  type CostSummary,
  type CostUnit,
  costSummary,
  costUnits,
  qualityCostCurve,
  segmentWeights,
} from "./cost-curves.js";
export {
  apgr,
  auc,
  type CurvePoint,
  cpt,
  DEFAULT_BUDGET_GRID,
  pgr,
  type QualityBudgetCurve,
  qualityBudgetCurve,
} from "./curves.js";
export {
  type EvaluateDatasetOptions,
  type EvaluatedDataset,
  evaluateDataset,
  formatEvalSummary,
} from "./evaluate-dataset.js";
export {
  checkOutcomes,
  gainsOf,
  hitRate,
  hybridQuality,
  meanDelta,
  measureRouting,
  oracleMask,
  type RoutingMeasures,
  realizedFraction,
  regressions,
  type SegmentOutcomes,
  severeLossRate,
} from "./measures.js";
export { buildPolicies, evalSegmentsFromDataset, parsePolicyList } from "./policies.js";
export { writeReport } from "./report/index.js";
export { type EvalSummary, parseBudgets, runEval } from "./run-eval.js";
export { runStreaming, type StreamingOptions, type StreamingResult } from "./streaming.js";
