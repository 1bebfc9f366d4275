/**
 * Prometheus metrics of one server instance, on a registry of its own (two apps in one process,
 * as in tests, never share counters). Gauges that mirror live state are read at scrape time.
 */
import { Counter, Gauge, Histogram, Registry } from "prom-client";

/** Pipeline stages timed per request. */
export type Stage =
  | "prefill"
  | "decision"
  | "small_decode"
  | "qe_score"
  | "large_call"
  | "fallback_decode"
  | "first_text"
  | "total";

/** Live values the gauges read when scraped. */
export interface MetricsSources {
  budget: number;
  realizedFraction: () => number | null;
  threshold: () => number;
  queueDepth: (engine: "small" | "large") => number;
  /**
   * With a shared budget store only: whether decisions go to it (true) or this replica decides
   * locally (false, or null before the store is opened).
   */
  budgetStoreUp?: () => boolean | null;
}

/** Seconds: from a sub-millisecond decision to a multi-second large call. */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/**
 * Buckets of the predicted-gain histogram: the deciles of the gain head's training scores, so the
 * histogram has resolution where the scores actually fall (deduplicated, ascending).
 */
export function gainBuckets(scoreQuantiles: readonly number[]): number[] {
  const deciles: number[] = [];
  for (let percent = 0; percent <= 100; percent += 10) {
    const value = scoreQuantiles[percent];
    if (value !== undefined && Number.isFinite(value)) deciles.push(value);
  }
  const unique = [...new Set(deciles)].sort((a, b) => a - b);
  return unique.length > 0 ? unique : [0];
}

export class ServerMetrics {
  readonly registry = new Registry();
  readonly requests: Counter<"model" | "outcome">;
  readonly httpRequests: Counter<"route" | "status">;
  readonly predictedGain: Histogram;
  readonly stageSeconds: Histogram<"stage">;
  readonly backendErrors: Counter<"engine" | "kind">;
  readonly retries: Counter<"engine">;
  readonly fallbacks: Counter<"reason">;
  readonly guarded: Counter;
  readonly unseenPairs: Counter;
  readonly capBlocked: Counter;
  readonly streamErrors: Counter<"engine">;
  readonly clientDisconnects: Counter;
  readonly budgetStoreFailures: Counter<"reason">;
  readonly budgetStoreLocalDecisions: Counter;
  readonly budgetStoreResyncs: Counter;
  readonly budgetStoreReplayed: Counter;
  readonly budgetStoreSeconds: Histogram;
  readonly spend: Counter<"model">;

  constructor(sources: MetricsSources, gainHistogramBuckets: number[]) {
    const registers = [this.registry];
    this.requests = new Counter({
      name: "routelmt_translations_total",
      help: "Translations served, by the model that produced them and outcome (ok, fallback, guarded)",
      labelNames: ["model", "outcome"],
      registers,
    });
    this.httpRequests = new Counter({
      name: "routelmt_http_requests_total",
      help: "HTTP requests by route and status",
      labelNames: ["route", "status"],
      registers,
    });
    this.predictedGain = new Histogram({
      name: "routelmt_predicted_gain",
      help: "Router gain predictions (buckets: deciles of the gain head's training scores)",
      buckets: gainHistogramBuckets,
      registers,
    });
    this.stageSeconds = new Histogram({
      name: "routelmt_stage_seconds",
      help: "Latency per stage: prefill, decision, small_decode, qe_score, large_call, fallback_decode, first_text (streamed), total",
      labelNames: ["stage"],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.backendErrors = new Counter({
      name: "routelmt_backend_errors_total",
      help: "Failed engine calls (after retries), by engine and kind (timeout, http, network, queue-full, other)",
      labelNames: ["engine", "kind"],
      registers,
    });
    this.retries = new Counter({
      name: "routelmt_backend_retries_total",
      help: "Retried engine attempts, by engine",
      labelNames: ["engine"],
      registers,
    });
    this.fallbacks = new Counter({
      name: "routelmt_fallbacks_total",
      help: "Requests routed large but answered by the small model, by reason",
      labelNames: ["reason"],
      registers,
    });
    this.guarded = new Counter({
      name: "routelmt_guarded_total",
      help: "Requests above the threshold kept small by a guard (guarded policy)",
      registers,
    });
    this.unseenPairs = new Counter({
      name: "routelmt_unseen_pair_translations_total",
      help: "Texts of a language pair the router was not trained on (its gain scores there are extrapolation)",
      registers,
    });
    this.capBlocked = new Counter({
      name: "routelmt_cap_blocked_total",
      help: "Requests above the threshold kept small by the hard cap",
      registers,
    });
    this.streamErrors = new Counter({
      name: "routelmt_stream_errors_total",
      help: "Streamed answers ended by an error event: the engine failed after text was sent, by engine",
      labelNames: ["engine"],
      registers,
    });
    this.clientDisconnects = new Counter({
      name: "routelmt_client_disconnects_total",
      help: "Requests whose client closed the connection before the answer was complete (their engine calls are aborted)",
      registers,
    });
    this.budgetStoreFailures = new Counter({
      name: "routelmt_budget_store_fallbacks_total",
      help: "Switches to the local budget window, by reason (timeout, unavailable, error, mismatch)",
      labelNames: ["reason"],
      registers,
    });
    this.budgetStoreLocalDecisions = new Counter({
      name: "routelmt_budget_store_local_decisions_total",
      help: "Decisions made in the local window while the shared budget store was slow or down",
      registers,
    });
    this.budgetStoreResyncs = new Counter({
      name: "routelmt_budget_store_resyncs_total",
      help: "Returns to the shared budget store after a fallback",
      registers,
    });
    this.budgetStoreReplayed = new Counter({
      name: "routelmt_budget_store_replayed_decisions_total",
      help: "Local decisions appended to the shared budget's global sequence at resync",
      registers,
    });
    this.budgetStoreSeconds = new Histogram({
      name: "routelmt_budget_store_seconds",
      help: "Time of a decision's round trip to the shared budget store",
      buckets: [0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1],
      registers,
    });
    this.spend = new Counter({
      name: "routelmt_spend_total",
      help: "Spend of the answers, by model: their reported tokens at the configured prices per 1000 tokens",
      labelNames: ["model"],
      registers,
    });
    // Registered only with a store: a gauge without labels always has a value, and a 0 here on
    // every single-replica server would fire the alerts this gauge is for.
    const storeUp = sources.budgetStoreUp;
    if (storeUp) {
      new Gauge({
        name: "routelmt_budget_store_up",
        help: "1 while decisions go to the shared budget store, 0 while this replica decides locally (absent without a store)",
        registers,
        collect() {
          this.set(storeUp() === true ? 1 : 0);
        },
      });
    }
    new Gauge({
      name: "routelmt_budget",
      help: "Configured budget p (target large fraction)",
      registers,
      collect() {
        this.set(sources.budget);
      },
    });
    new Gauge({
      name: "routelmt_large_fraction",
      help: "Realized large fraction over the sliding window of decisions (every replica's, with a shared budget store that is up)",
      registers,
      collect() {
        this.set(sources.realizedFraction() ?? 0);
      },
    });
    new Gauge({
      name: "routelmt_threshold",
      help: "Current gain threshold of the budget controller",
      registers,
      collect() {
        this.set(sources.threshold());
      },
    });
    new Gauge({
      name: "routelmt_queue_depth",
      help: "Requests in flight plus waiting, per engine",
      labelNames: ["engine"],
      registers,
      collect() {
        this.set({ engine: "small" }, sources.queueDepth("small"));
        this.set({ engine: "large" }, sources.queueDepth("large"));
      },
    });
  }

  /**
   * Labelled series, made on first use and kept: given a labels object on every call, prom-client
   * validates and hashes it each time, several times per request.
   */
  readonly #series = new Map<string, { inc(): void } | { observe(value: number): void }>();

  #child<T extends { inc(): void } | { observe(value: number): void }>(key: string, make: () => T): T {
    let child = this.#series.get(key) as T | undefined;
    if (child === undefined) {
      child = make();
      this.#series.set(key, child);
    }
    return child;
  }

  /** Records one stage's duration in milliseconds. */
  observeStage(stage: Stage, milliseconds: number): void {
    this.#child(`stage ${stage}`, () => this.stageSeconds.labels({ stage })).observe(milliseconds / 1000);
  }

  /** Counts one translation served by `model`. */
  countTranslation(model: "small" | "large", outcome: "ok" | "fallback" | "guarded"): void {
    this.#child(`translation ${model} ${outcome}`, () => this.requests.labels({ model, outcome })).inc();
  }

  /** Counts one answered HTTP request. */
  countHttpRequest(route: string, status: number): void {
    this.#child(`http ${route} ${status}`, () =>
      this.httpRequests.labels({ route, status: String(status) }),
    ).inc();
  }
}
