export {
  type CollectOptions,
  type CollectSummary,
  collectDataset,
  decodingSettings,
  METRIC_RENAME,
  summarizeGains,
} from "./collect.js";
export {
  type CollectInput,
  type CollectInputOptions,
  type CollectSegment,
  lineLanguages,
  readCollectInput,
} from "./collect-input.js";
export { orientedGain } from "./gain.js";
export {
  type ExtraScoreFields,
  type ImportOptions,
  type ImportSummary,
  importReplay,
  parseExtraScore,
} from "./import-replay.js";
export { type NamedScore, refuseDuplicateScoreNames } from "./score-names.js";
