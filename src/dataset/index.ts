export {
  appendSourceBlocks,
  blockParts,
  canonicalViewName,
  canonicalViewNames,
  checkFeatureBlocks,
  DEFAULT_FEATURE_BLOCK,
  type FeatureBlock,
  type FeaturePooling,
  type FeatureViewSpan,
  featureBlocksOf,
  featureSelectionText,
  isSourceBlock,
  legacyFeatureBlocks,
  resolveFeatureBlocks,
  sliceFeatureBlocks,
  sourceBlocksAt,
} from "./feature-blocks.js";
export { CHECKPOINT_FILE, FEATURES_FILE, META_FILE, RECORDS_FILE } from "./files.js";
export {
  type Dataset,
  type DatasetFeatureMatrix,
  datasetFeatures,
  littleEndianBytesToFloat32,
  loadDataset,
} from "./reader.js";
export type * from "./types.js";
export {
  DatasetWriter,
  float32ToLittleEndianBytes,
  type OpenDatasetWriterOptions,
  type OpenedDatasetWriter,
} from "./writer.js";
