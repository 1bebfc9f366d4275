import { InputError } from "../errors/index.js";
import { parseDotPath, readAtKeys } from "../util/dot-path.js";
import type { MetricItem, SegmentMetric } from "./segment-metric.js";
import { formatSignature } from "./signature.js";

export { readDotPath } from "../util/dot-path.js";

export interface PrecomputedMetricOptions {
  /** Metric name, e.g. `cometkiwi`. */
  name: string;
  /** Dot path into each item's `record`, e.g. `metrics."CometKiwi-src".GPT4-5shot` (see `parseDotPath`). */
  path: string;
  /** Defaults to true. */
  higherIsBetter?: boolean;
}

/**
 * A metric whose scores are already in the data (e.g. WMT submissions shipped with COMET or
 * CometKiwi scores): each item's score is read from `item.record` at `path`. A missing or null
 * value, or one that is not a finite number, is an {@link InputError} naming the path; callers that
 * want to skip such items check first with `readDotPath(record, path)`. The path is parsed once,
 * so a malformed one fails at creation. Signature: `precomputed:<path>|name:<name>|version:...`.
 */
export function createPrecomputedMetric(options: PrecomputedMetricOptions): SegmentMetric {
  const keys = parseDotPath(options.path);
  const { name, path } = options;
  return {
    name,
    signature: formatSignature([
      ["precomputed", path],
      ["name", name],
    ]),
    higherIsBetter: options.higherIsBetter ?? true,
    needsReference: false,
    async scoreBatch(items: MetricItem[]): Promise<number[]> {
      return items.map((item, index) => {
        const value = readAtKeys(item.record, keys);
        const where = `metric ${name}: item ${index + 1} of the batch`;
        if (value === undefined || value === null) {
          throw new InputError(
            `${where} has no value at ${path}${item.record === undefined ? " (no record)" : ""}`,
          );
        }
        if (typeof value !== "number" || !Number.isFinite(value)) {
          throw new InputError(`${where} has ${JSON.stringify(value)} at ${path}, not a finite number`);
        }
        return value;
      });
    },
  };
}
