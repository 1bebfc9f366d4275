/** File names inside a dataset directory. */
export const RECORDS_FILE = "records.jsonl";
export const FEATURES_FILE = "features.f32";
export const META_FILE = "meta.json";
/** Progress of a collection in flight; lets a killed run resume exactly where its last chunk ended. */
export const CHECKPOINT_FILE = "checkpoint.json";
