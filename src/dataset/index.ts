export { CHECKPOINT_FILE, FEATURES_FILE, META_FILE, RECORDS_FILE } from "./files.js";
export { type Dataset, littleEndianBytesToFloat32, loadDataset } from "./reader.js";
export type * from "./types.js";
export { DatasetWriter, float32ToLittleEndianBytes, type OpenedDatasetWriter } from "./writer.js";
