/** One segment to score. `refs` are alternative references; `record` is the raw input record (for precomputed scores). */
export interface MetricItem {
  src: string;
  hyp: string;
  refs?: string[];
  /** The input record this item came from, for metrics that read scores already present in the data. */
  record?: unknown;
}

/**
 * A segment-level quality metric, the source of every gain label. Scores are on the metric's own
 * scale (chrF/BLEU 0–100); `higherIsBetter` tells how to read them.
 */
export interface SegmentMetric {
  readonly name: string;
  /** Every setting that changes the number, sacreBLEU style, ending in the version. */
  readonly signature: string;
  readonly higherIsBetter: boolean;
  /** Whether `refs` must be present on every item. */
  readonly needsReference: boolean;
  scoreBatch(items: MetricItem[]): Promise<number[]>;
}
