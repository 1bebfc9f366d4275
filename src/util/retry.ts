import { EngineCallError } from "../errors/index.js";

/** Longest server-requested wait (Retry-After) we are willing to honour; beyond it we give up instead. */
export const MAX_RETRY_AFTER_MS = 60_000;

/** One retry about to happen, as reported to `onRetry`. */
export interface RetryEvent {
  /** 1-based number of the retry about to run (the first retry is 1, i.e. the second attempt). */
  retry: number;
  /** How long we wait before it, in milliseconds. */
  delayMs: number;
  /** The error that caused it. */
  error: EngineCallError;
}

export interface RetryOptions {
  /** Extra attempts after the first one; 0 disables retrying. */
  retries: number;
  /** Backoff before the first retry, doubled for each further one. Defaults to 500 ms. */
  baseDelayMs?: number;
  /** Upper bound of the exponential backoff (not of a server's Retry-After). Defaults to 30 000 ms. */
  maxDelayMs?: number;
  /** Longest Retry-After honoured; a longer one ends the retries. Defaults to {@link MAX_RETRY_AFTER_MS}. */
  maxRetryAfterMs?: number;
  /** Aborts the wait between attempts (rejecting with the signal's reason) and prevents further attempts. */
  signal?: AbortSignal;
  /** Called before each retry's wait, e.g. to count retries in metrics. */
  onRetry?: (event: RetryEvent) => void;
  /** Source of jitter in [0, 1); defaults to `Math.random`. Tests pass a fixed one. */
  random?: () => number;
}

/**
 * Backoff before retry number `retry` (1-based): the exponential delay `base · 2^(retry-1)`, capped at
 * `max`, with "equal jitter": half of it is fixed, the other half random. Keeping half fixed
 * guarantees a minimum spacing while the random half spreads clients that failed together.
 */
export function backoffDelayMs(
  retry: number,
  baseDelayMs: number,
  maxDelayMs: number,
  random: number,
): number {
  const exponential = Math.min(maxDelayMs, baseDelayMs * 2 ** (retry - 1));
  return exponential / 2 + (exponential / 2) * random;
}

/** True for errors worth another attempt: engine errors flagged retryable (rate limits, 5xx, timeouts, network). */
export function isRetryableError(error: unknown): error is EngineCallError {
  return error instanceof EngineCallError && error.isRetryable;
}

/**
 * Runs `fn` until it succeeds, retrying retryable {@link EngineCallError}s up to `retries` times with
 * exponential backoff and jitter. A server's Retry-After (`retryAfterMs`) is honoured as a minimum
 * wait when it is at most `maxRetryAfterMs`; a longer one means the server will not recover soon, so
 * the error is thrown at once. Any other error, or the last retryable one, is thrown unchanged.
 * `fn` receives the 0-based attempt number.
 */
export async function withRetries<T>(fn: (attempt: number) => Promise<T>, options: RetryOptions): Promise<T> {
  const baseDelayMs = options.baseDelayMs ?? 500;
  const maxDelayMs = options.maxDelayMs ?? 30_000;
  const maxRetryAfterMs = options.maxRetryAfterMs ?? MAX_RETRY_AFTER_MS;
  const random = options.random ?? Math.random;
  for (let attempt = 0; ; attempt++) {
    options.signal?.throwIfAborted();
    try {
      return await fn(attempt);
    } catch (error) {
      if (!isRetryableError(error) || attempt >= options.retries) throw error;
      if (options.signal?.aborted) throw options.signal.reason;
      const retry = attempt + 1;
      let delayMs = backoffDelayMs(retry, baseDelayMs, maxDelayMs, random());
      if (error.retryAfterMs !== undefined) {
        if (error.retryAfterMs > maxRetryAfterMs) throw error;
        delayMs = Math.max(delayMs, error.retryAfterMs);
      }
      options.onRetry?.({ retry, delayMs, error });
      await sleep(delayMs, options.signal);
    }
  }
}

/** Resolves after `ms`, or rejects with the signal's reason as soon as it aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
