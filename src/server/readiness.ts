/**
 * Readiness checks of remote engines: a cheap `GET {baseURL}/models`, its result reused for a few
 * seconds so a load balancer polling /readyz does not turn into load on the engines.
 */

/** The outcome of one check. */
export interface ProbeResult {
  ok: boolean;
  /** Why it failed; absent when ok. */
  error?: string;
  /** When the check ran (ms since the epoch). */
  checkedAt: number;
}

/** Reachability of one URL, cached for `cacheMs`; concurrent callers share one request in flight. */
export class CachedProbe {
  private readonly url: string;
  private readonly cacheMs: number;
  private readonly timeoutMs: number;
  private last: ProbeResult | undefined;
  private pending: Promise<ProbeResult> | undefined;

  /**
   * @param cacheMs how long a result is reused. 0 probes on every call.
   * @param timeoutMs how long one probe may take. Defaults to 2000 ms.
   */
  constructor(url: string, cacheMs: number, timeoutMs = 2000) {
    this.url = url;
    this.cacheMs = cacheMs;
    this.timeoutMs = timeoutMs;
  }

  async check(now = Date.now()): Promise<ProbeResult> {
    if (this.last && now - this.last.checkedAt < this.cacheMs) return this.last;
    this.pending ??= this.run().finally(() => {
      this.pending = undefined;
    });
    return this.pending;
  }

  private async run(): Promise<ProbeResult> {
    let result: ProbeResult;
    try {
      const response = await fetch(this.url, { signal: AbortSignal.timeout(this.timeoutMs) });
      // Drain the body so the connection goes back to the pool.
      await response.arrayBuffer();
      // Any answer below 500 means the server is up (a 401/404 still proves it listens).
      result =
        response.status < 500
          ? { ok: true, checkedAt: Date.now() }
          : { ok: false, error: `GET ${this.url}: HTTP ${response.status}`, checkedAt: Date.now() };
    } catch (error) {
      const cause = error instanceof Error && error.cause instanceof Error ? `: ${error.cause.message}` : "";
      result = {
        ok: false,
        error: `GET ${this.url}: ${error instanceof Error ? error.message : String(error)}${cause}`,
        checkedAt: Date.now(),
      };
    }
    this.last = result;
    return result;
  }
}
