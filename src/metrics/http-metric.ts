import { z } from "zod";
import { EngineCallError, InputError, UsageError } from "../errors/index.js";
import { postJson } from "../util/http.js";
import { type RetryEvent, withRetries } from "../util/retry.js";
import type { MetricItem, SegmentMetric } from "./segment-metric.js";
import { formatSignature } from "./signature.js";

export interface HttpMetricOptions {
  /** Endpoint taking `{"items":[{"src","mt","ref"}]}` and answering `{"scores":[...]}`. */
  url: string;
  /** Metric name, e.g. `xcomet-xl`. Defaults to `http`. */
  name?: string;
  /** Items per request. Defaults to 32. */
  batchSize?: number;
  /** Timeout of one request. Defaults to 60 000 ms (neural metrics on CPU are slow). */
  timeoutMs?: number;
  /** Extra attempts for rate limits, 5xx, timeouts and network errors. Defaults to 3. */
  retries?: number;
  /** First backoff between attempts, doubled each time. Defaults to 500 ms. */
  retryBaseDelayMs?: number;
  /** Whether every item must carry a reference (false for quality estimation such as CometKiwi). Defaults to true. */
  needsReference?: boolean;
  /** Defaults to true (COMET); set false for error-counting metrics such as MetricX. */
  higherIsBetter?: boolean;
  /** Extra request headers, e.g. authorization. */
  headers?: Record<string, string>;
  /** Called before every retry, e.g. to count retries in metrics. */
  onRetry?: (event: RetryEvent) => void;
}

const scoresSchema = z.object({ scores: z.array(z.number().refine(Number.isFinite, "not a finite number")) });

/** One item as the service receives it; `ref` is the first reference, left out when there is none. */
interface WireItem {
  src: string;
  mt: string;
  ref?: string;
}

/** Splits `items` into consecutive batches of at most `size`. */
export function toBatches<T>(items: readonly T[], size: number): T[][] {
  const batches: T[][] = [];
  for (let start = 0; start < items.length; start += size) batches.push(items.slice(start, start + size));
  return batches;
}

/**
 * A neural metric served over HTTP (COMET, XCOMET, MetricX, CometKiwi behind a small scoring
 * service). Items are sent in batches of `batchSize`, one batch at a time so the service is never
 * flooded, with only the first reference of each item. Answers are validated (a `scores` array of
 * finite numbers, one per item); anything else is a non-retryable error naming the service URL.
 * Signature: `http:<url>|name:<name>|version:routelmt-<version>`.
 */
export function createHttpMetric(options: HttpMetricOptions): SegmentMetric {
  const name = options.name ?? "http";
  const batchSize = options.batchSize ?? 32;
  if (!Number.isInteger(batchSize) || batchSize < 1)
    throw new UsageError(`batchSize must be a positive integer, got ${batchSize}`);
  try {
    new URL(options.url);
  } catch (error) {
    throw new UsageError(`metric URL is not a URL: ${options.url}`, { cause: error });
  }
  const needsReference = options.needsReference ?? true;
  const engine = `metric ${name} at ${options.url}`;
  const timeoutMs = options.timeoutMs ?? 60_000;

  const toWire = (item: MetricItem, index: number): WireItem => {
    const ref = item.refs?.[0];
    if (needsReference && ref === undefined) {
      throw new InputError(`metric ${name} needs a reference, item ${index + 1} of the batch has none`);
    }
    return ref === undefined ? { src: item.src, mt: item.hyp } : { src: item.src, mt: item.hyp, ref };
  };

  const scoreOneBatch = async (batch: WireItem[]): Promise<number[]> => {
    const answer = await withRetries(
      () =>
        postJson({
          engine,
          url: options.url,
          body: { items: batch },
          headers: options.headers,
          timeoutMs,
        }),
      {
        retries: options.retries ?? 3,
        baseDelayMs: options.retryBaseDelayMs ?? 500,
        onRetry: options.onRetry,
      },
    );
    const parsed = scoresSchema.safeParse(answer);
    if (!parsed.success) {
      const issues = parsed.error.issues
        .slice(0, 3)
        .map((issue) => `${issue.path.join(".") || "(root)"}: ${issue.message}`)
        .join("; ");
      throw new EngineCallError(engine, `expected {"scores": [finite numbers]}, got: ${issues}`, {
        isRetryable: false,
      });
    }
    if (parsed.data.scores.length !== batch.length) {
      throw new EngineCallError(
        engine,
        `sent ${batch.length} items but got ${parsed.data.scores.length} scores`,
        { isRetryable: false },
      );
    }
    return parsed.data.scores;
  };

  return {
    name,
    signature: formatSignature([
      ["http", options.url],
      ["name", name],
    ]),
    higherIsBetter: options.higherIsBetter ?? true,
    needsReference,
    async scoreBatch(items: MetricItem[]): Promise<number[]> {
      const wire = items.map(toWire);
      const scores: number[] = [];
      for (const batch of toBatches(wire, batchSize)) scores.push(...(await scoreOneBatch(batch)));
      return scores;
    },
  };
}
