export * from "./bleu.js";
export * from "./chrf.js";
export { createMetric } from "./create-metric.js";
export * from "./http-metric.js";
export * from "./precomputed-metric.js";
export type { MetricItem, SegmentMetric } from "./segment-metric.js";
export { defaultSevereDelta, severeDeltaFor } from "./severe-delta.js";
export { formatSignature, SIGNATURE_VERSION } from "./signature.js";
