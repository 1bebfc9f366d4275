export { orientedGain } from "./gain.js";
export {
  type ExtraScoreFields,
  type ImportOptions,
  type ImportSummary,
  importReplay,
  parseExtraScore,
} from "./import-replay.js";
