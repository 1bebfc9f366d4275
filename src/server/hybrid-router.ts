/**
 * Per-request routing of the hybrid server, independent of HTTP: prefill on the small model, score
 * with the router, decide synchronously under the budget, then decode small or call large.
 *
 * The ledger checks the hard cap and records each decision (a request, or all items of a batch) in
 * one step nothing can interleave with — synchronous code for the local ledger (Node's event loop
 * runs it whole), one atomic script for the ledger shared through Redis — so the cap holds under
 * any concurrency, across replicas too.
 *
 * Routed requests RELEASE their prefill before the large call, and a large-call failure falls back
 * to a fresh small translation (a second prefill). Why: a prefill holds one of the small engine's
 * few sequences (in-process llama.cpp: `--small-concurrency` KV sequences); a large call can take
 * seconds, up to the large timeout when the engine is down, and routed requests are exactly the ones
 * waiting on it. Holding their prefills would let a slow or dead large engine starve the small one
 * (every sequence held by a request waiting on the large model), turning a large-engine outage into
 * a full outage; releasing costs one extra prefill only on the rare fallback path.
 *
 * Batches (more than one text) release every prefill as soon as its features are read, and the
 * texts kept small are translated afresh. A batch's decision needs all its features first, so
 * holding them would mean holding several sequences while waiting for more: two concurrent batches
 * could each hold half the sequences and wait for the other half forever. Single requests hold at
 * most one sequence and never wait for another while holding it, so they continue from their prefill.
 * Fresh small translations (batches, fallbacks) also go through prefill + continue, so a text is
 * decoded the same way whichever path it takes.
 */
import { EngineCallError, EngineTimeoutError, RoutelmtError } from "../errors/index.js";
import type { HeadScores, RouterFile } from "../probe/router-file.js";
import { predictHeads } from "../probe/router-file.js";
import {
  allocateGuarded,
  BudgetController,
  firedGuard,
  type GuardSignals,
  type GuardThresholds,
  routedCount,
  routingOrder,
} from "../routing/index.js";
import type {
  Prefilled,
  ProbedTranslator,
  Translation,
  TranslationRequest,
  Translator,
} from "../translators/types.js";
import { type BudgetLedger, type LedgerItem, LocalBudgetLedger } from "./budget-ledger.js";
import type { RequestWeigher } from "./budget-units.js";
import { AdmissionGate } from "./decision-window.js";
import { ServerError } from "./errors.js";
import type { ServerMetrics } from "./metrics.js";

export type RoutingPolicy = "routelmt" | "guarded";

/** Why a translation came from the small model although it was routed large. */
export type FallbackReason = "large-error" | "large-timeout" | "large-queue-full";

/** Milliseconds per stage; absent stages did not run. */
export interface StageTimings {
  prefill: number;
  decision: number;
  smallDecode?: number;
  largeCall?: number;
  fallbackDecode?: number;
}

/** One translated text and how it was produced. */
export interface HybridTranslation {
  translation: string;
  model: "small" | "large";
  /** The router's gain prediction (NaN when the features gave none). */
  predictedGain: number;
  /** A guard kept it small although its gain qualified. */
  guarded: boolean;
  /** Routed large but answered by the small model. */
  fallback: boolean;
  fallbackReason: FallbackReason | null;
  /** Total time in the router, milliseconds. */
  latencyMs: number;
  stages: StageTimings;
  promptTokens: number | null;
  outputTokens: number | null;
  finishReason: Translation["finishReason"];
}

export interface HybridRouterOptions {
  small: ProbedTranslator;
  large: Translator;
  /** How errors and logs name the engines (their specs). */
  smallName: string;
  largeName: string;
  router: RouterFile;
  budget: number;
  /** Defaults to 1000. */
  window?: number;
  /**
   * Where the hard cap is held: a budget shared by several replicas (`SharedBudgetLedger`). Defaults
   * to this process's own window. With a shared ledger the controller only tracks the threshold.
   */
  ledger?: BudgetLedger;
  /**
   * What a request weighs in the budget (tokens or cost, see `budget-units.ts`); absent: every
   * request weighs 1 (a budget in requests).
   */
  weigher?: Pick<RequestWeigher, "weigh">;
  /** Called with every answer (output-length learning, spend). */
  onAnswer?: RequestWeigher["observe"];
  /** Defaults to `routelmt`. */
  policy?: RoutingPolicy;
  /** Quantile of the quality head's training scores at or above which `guarded` keeps a request small. Defaults to 0.9. */
  guardQualityQuantile?: number;
  /** Risk probability at or above which `guarded` keeps a request small. Defaults to 0.5. */
  guardRisk?: number;
  /** Deadline of one large call, retries included. Defaults to 30 000 ms. */
  largeTimeoutMs?: number;
  /** Defaults to 256. */
  maxTokens?: number;
  /** Requests per engine in flight plus waiting. Defaults to 256. */
  queueSize?: number;
  metrics?: ServerMetrics;
}

/** What the decision step produced for one item. */
interface Decision {
  large: boolean;
  gain: number;
  guarded: boolean;
  fallbackReason: FallbackReason | null;
}

/** Counters the server reports in snapshots. */
export interface HybridRouterSnapshot {
  budget: number;
  /** `shared`: the window, cap and realized fraction are the store's, over every replica. */
  scope: "local" | "shared";
  window: number;
  cap: number;
  threshold: number;
  realizedFraction: number | null;
  /** Decisions this process made. */
  decisions: number;
  smallHealthy: boolean;
}

function errorKind(error: unknown): "timeout" | "http" | "network" | "other" {
  if (error instanceof EngineTimeoutError) return "timeout";
  if (error instanceof DOMException && (error.name === "TimeoutError" || error.name === "AbortError"))
    return "timeout";
  if (error instanceof EngineCallError) return error.status === undefined ? "network" : "http";
  return "other";
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The guard thresholds of the `guarded` policy, from the router's heads; empty for `routelmt`. */
export function guardThresholds(
  router: RouterFile,
  policy: RoutingPolicy,
  qualityQuantile = 0.9,
  risk = 0.5,
): GuardThresholds {
  if (policy !== "guarded") return {};
  const thresholds: GuardThresholds = {};
  const quality = router.heads.quality;
  if (quality) {
    const position = qualityQuantile * 100;
    const lower = quality.score_quantiles[Math.floor(position)]!;
    const upper = quality.score_quantiles[Math.ceil(position)]!;
    thresholds.qualityPrediction = lower + (position - Math.floor(position)) * (upper - lower);
  }
  if (router.heads.risk) thresholds.riskProbability = risk;
  return thresholds;
}

export class HybridRouter {
  readonly budget: number;
  readonly policy: RoutingPolicy;
  readonly thresholds: GuardThresholds;
  private readonly small: ProbedTranslator;
  private readonly large: Translator;
  private readonly smallName: string;
  private readonly largeName: string;
  private readonly router: RouterFile;
  /** Tracks the gain threshold on single requests (its own cap only ever blocks more, never less). */
  private readonly controller: BudgetController;
  /** The authority for the hard cap and the realized fraction, over every decision. */
  readonly ledger: BudgetLedger;
  private readonly weigher: Pick<RequestWeigher, "weigh"> | undefined;
  private readonly onAnswer: RequestWeigher["observe"] | undefined;
  /** The ledger holds the cap for several replicas (the controller then holds none). */
  private readonly sharedLedger: boolean;
  readonly smallGate: AdmissionGate;
  readonly largeGate: AdmissionGate;
  private readonly largeTimeoutMs: number;
  private readonly maxTokens: number;
  private readonly metrics: ServerMetrics | undefined;
  private lastSmallError: string | null = null;
  /** Aborted at the shutdown deadline: every engine call still running gives up. */
  private readonly shutdown = new AbortController();
  private translationsInFlight = 0;

  constructor(options: HybridRouterOptions) {
    const gainHead = options.router.heads.gain;
    if (!gainHead) {
      throw new RoutelmtError("RLMT_ERR_USAGE", "the router has no gain head: retrain it with --heads gain");
    }
    this.budget = options.budget;
    this.policy = options.policy ?? "routelmt";
    this.thresholds = guardThresholds(
      options.router,
      this.policy,
      options.guardQualityQuantile,
      options.guardRisk,
    );
    if (this.policy === "guarded" && Object.keys(this.thresholds).length === 0) {
      throw new RoutelmtError(
        "RLMT_ERR_USAGE",
        "policy guarded needs a quality or risk head in the router: retrain it with --heads gain,quality,risk",
      );
    }
    const window = options.window ?? 1000;
    this.small = options.small;
    this.large = options.large;
    this.smallName = options.smallName;
    this.largeName = options.largeName;
    this.router = options.router;
    this.weigher = options.weigher;
    this.onAnswer = options.onAnswer;
    this.sharedLedger = options.ledger !== undefined;
    this.controller = new BudgetController({
      budget: options.budget,
      window,
      trainingScores: gainHead.score_quantiles,
      weighted: this.weigher !== undefined,
      // A shared ledger holds the cap over every replica; a local cap here would only block more.
      enforceCap: options.ledger === undefined,
    });
    this.ledger = options.ledger ?? new LocalBudgetLedger(options.budget, window, this.weigher !== undefined);
    this.smallGate = new AdmissionGate(options.queueSize ?? 256);
    this.largeGate = new AdmissionGate(options.queueSize ?? 256);
    this.largeTimeoutMs = options.largeTimeoutMs ?? 30_000;
    this.maxTokens = options.maxTokens ?? 256;
    this.metrics = options.metrics;
  }

  /**
   * Translates one text. `field` names where the text came from in the client's request, for a 400
   * when the small engine refuses it (e.g. too long for its context). Defaults to `text`.
   * @throws ServerError 429 (queue full), 503 (small engine failed), 400 (input the engine refused).
   */
  async translate(request: TranslationRequest, field = "text"): Promise<HybridTranslation> {
    const [result] = await this.run([request], [field], false);
    return result!;
  }

  /**
   * Translates a batch: exactly the top ⌊p·n⌋ by predicted gain go large (fewer if the guards drop
   * candidates or the hard cap binds); every item counts as one decision in the window. `fields`
   * name the items in the client's request. Defaults to `texts.0`, `texts.1`, …
   */
  async translateBatch(
    requests: TranslationRequest[],
    fields: readonly string[] = requests.map((_, index) => `texts.${index}`),
  ): Promise<HybridTranslation[]> {
    return this.run(requests, fields, true);
  }

  snapshot(): HybridRouterSnapshot {
    const ledger = this.ledger.state();
    return {
      budget: this.budget,
      scope: ledger.scope,
      window: ledger.window,
      cap: ledger.cap,
      threshold: this.controller.threshold(),
      realizedFraction: ledger.realizedFraction,
      decisions: ledger.decisions,
      smallHealthy: this.lastSmallError === null,
    };
  }

  /** Recent decisions of this process, oldest first (1 = large), for audits of the hard cap. */
  decisionLog(): Uint8Array {
    return this.ledger.log();
  }

  /** The last small-engine failure, or null when its last call succeeded. */
  get smallEngineError(): string | null {
    return this.lastSmallError;
  }

  /** Requests (single or batch) being translated right now. */
  get inFlight(): number {
    return this.translationsInFlight;
  }

  /**
   * Aborts every engine call in flight, now and later: their requests fail with 503
   * RLMT_ERR_SHUTTING_DOWN instead of holding the process past the shutdown deadline. Never a
   * fallback: a fallback translation would itself run past the deadline.
   */
  abortInFlight(): void {
    this.shutdown.abort(
      new ServerError(
        "RLMT_ERR_SHUTTING_DOWN",
        "the server is shutting down and its deadline passed before this translation finished: retry on another replica",
        { retryAfterSeconds: 1 },
      ),
    );
  }

  /** Throws the shutdown error once the deadline aborted engine calls. */
  private throwIfShuttingDown(): void {
    if (this.shutdown.signal.aborted) throw this.shutdown.signal.reason;
  }

  private async run(
    requests: TranslationRequest[],
    fields: readonly string[],
    batch: boolean,
  ): Promise<HybridTranslation[]> {
    this.translationsInFlight++;
    try {
      return await this.runAdmitted(requests, fields, batch);
    } finally {
      this.translationsInFlight--;
    }
  }

  private async runAdmitted(
    requests: TranslationRequest[],
    fields: readonly string[],
    batch: boolean,
  ): Promise<HybridTranslation[]> {
    const started = performance.now();
    const count = requests.length;
    this.throwIfShuttingDown();
    if (!this.smallGate.tryAcquire(count)) {
      throw new ServerError(
        "RLMT_ERR_OVERLOADED",
        `the small engine's queue is full (${this.smallGate.depth} of ${this.smallGate.limit} places taken, ${count} asked): retry later`,
        { retryAfterSeconds: 1 },
      );
    }
    let smallPlaces = count;
    const releaseSmall = (places: number) => {
      const released = Math.min(places, smallPlaces);
      smallPlaces -= released;
      this.smallGate.release(released);
    };
    try {
      const prefillStarted = performance.now();
      // See the module comment: a batch never holds its prefills.
      const holdsPrefills = requests.length === 1;
      const prefills = await this.prefillAll(requests, fields, holdsPrefills);
      const prefillMs = performance.now() - prefillStarted;

      const decisionStarted = performance.now();
      const weights = requests.map((request, index) => this.weigher?.weigh(prefills[index]!, request) ?? 1);
      const decisions = batch
        ? await this.decideBatch(prefills, weights)
        : [await this.decideOne(prefills[0]!, weights[0]!)];
      const decisionMs = performance.now() - decisionStarted;

      return await Promise.all(
        requests.map(async (request, index) => {
          const decision = decisions[index]!;
          const prefilled = prefills[index]!;
          const stages: StageTimings = { prefill: prefillMs, decision: decisionMs };
          this.metrics?.observeStage("prefill", prefillMs);
          this.metrics?.observeStage("decision", decisionMs);
          this.metrics?.predictedGain.observe(Number.isFinite(decision.gain) ? decision.gain : 0);
          let result: Omit<HybridTranslation, "latencyMs" | "stages" | "predictedGain" | "guarded">;
          if (decision.large) {
            await prefilled.release();
            // The request no longer needs the small engine unless it falls back.
            releaseSmall(1);
            result = await this.callLarge(request, fields[index]!, stages);
          } else {
            result = await this.decodeSmall(
              holdsPrefills ? prefilled : request,
              fields[index]!,
              stages,
              decision.fallbackReason,
            );
            releaseSmall(1);
          }
          this.onAnswer?.(request, result.model, result.promptTokens, result.outputTokens);
          const latencyMs = performance.now() - started;
          this.metrics?.observeStage("total", latencyMs);
          this.metrics?.requests.inc({
            model: result.model,
            outcome: result.fallback ? "fallback" : decision.guarded ? "guarded" : "ok",
          });
          return { ...result, predictedGain: decision.gain, guarded: decision.guarded, latencyMs, stages };
        }),
      );
    } finally {
      releaseSmall(smallPlaces);
    }
  }

  /**
   * Prefills every request (releasing each at once unless `hold`); if one fails, releases the
   * others and throws its error, naming its field.
   */
  private async prefillAll(
    requests: TranslationRequest[],
    fields: readonly string[],
    hold: boolean,
  ): Promise<Prefilled[]> {
    const settled = await Promise.allSettled(
      requests.map(async (request) => {
        const prefilled = await this.small.prefill(request, { signal: this.shutdown.signal });
        // Released before the next prefill can wait on this one's sequence (its features stay readable).
        if (!hold) await prefilled.release();
        return prefilled;
      }),
    );
    const failed = settled.findIndex((outcome) => outcome.status === "rejected");
    if (failed >= 0 || this.shutdown.signal.aborted) {
      await Promise.all(
        settled.map((outcome) => (outcome.status === "fulfilled" ? outcome.value.release() : undefined)),
      );
      this.throwIfShuttingDown();
      throw this.smallFailure((settled[failed] as PromiseRejectedResult).reason, fields[failed]!);
    }
    this.lastSmallError = null;
    return settled.map((outcome) => (outcome as PromiseFulfilledResult<Prefilled>).value);
  }

  /**
   * A small-engine error as the client sees it: its own input problem (400 on `field`, where the
   * text came from) or the engine down (503).
   */
  private smallFailure(error: unknown, field: string): ServerError {
    if (error instanceof ServerError) return error;
    if (
      error instanceof RoutelmtError &&
      (error.code === "RLMT_ERR_INPUT" || error.code === "RLMT_ERR_USAGE")
    ) {
      return new ServerError(
        "RLMT_ERR_INVALID_REQUEST",
        `${field}: the small engine refused the text: ${error.message}`,
        { field, cause: error },
      );
    }
    this.lastSmallError = describe(error);
    this.metrics?.backendErrors.inc({ engine: "small", kind: errorKind(error) });
    return new ServerError(
      "RLMT_ERR_SMALL_ENGINE_UNAVAILABLE",
      `small engine ${this.smallName} failed: ${describe(error)}`,
      { retryAfterSeconds: 1, cause: error },
    );
  }

  private scores(prefills: Prefilled[]): HeadScores {
    const dim = this.router.feature.dim;
    const features = new Float32Array(prefills.length * dim);
    prefills.forEach((prefilled, row) => {
      features.set(prefilled.features.subarray(0, dim), row * dim);
    });
    return predictHeads(this.router, features, prefills.length);
  }

  private signals(scores: HeadScores, row: number): GuardSignals {
    return { qualityPrediction: scores.quality?.[row] ?? null, riskProbability: scores.risk?.[row] ?? null };
  }

  /**
   * Online decision for one request. The threshold and the guards decide synchronously; the ledger
   * then checks the cap and records the decision in one step nothing can interleave with (see the
   * module comment, and the shared ledger's script).
   */
  private async decideOne(prefilled: Prefilled, weight: number): Promise<Decision> {
    const scores = this.scores([prefilled]);
    const gain = scores.gain![0]!;
    const verdict = this.controller.decide(gain, weight);
    let wantsLarge = verdict.target === "large";
    let guarded = false;
    if (verdict.target === "small" && verdict.reason === "budget-cap") this.metrics?.capBlocked.inc();
    if (wantsLarge && firedGuard(this.signals(scores, 0), this.thresholds) !== null) {
      wantsLarge = false;
      guarded = true;
      this.metrics?.guarded.inc();
    }
    const [decision] = await this.admitAndRecord([{ wantsLarge, weight }]);
    // A shared ledger's realized fraction is every replica's: the threshold aims at it.
    if (this.sharedLedger) this.controller.observeRealized(this.ledger.state().realizedFraction);
    return { ...decision!, gain, guarded };
  }

  /**
   * Takes a large-engine place for each item that wants one, records the items in the ledger in
   * order, and gives back the places of those the cap kept small. A place is taken first because a
   * decision the ledger has recorded large cannot be taken back when the queue turns out full.
   */
  private async admitAndRecord(
    items: readonly LedgerItem[],
  ): Promise<Pick<Decision, "large" | "fallbackReason">[]> {
    const asked = items.map((item) => {
      if (!item.wantsLarge) return { item, fallbackReason: null };
      if (this.largeGate.tryAcquire()) return { item, fallbackReason: null };
      return { item: { ...item, wantsLarge: false }, fallbackReason: "large-queue-full" as const };
    });
    const outcomes = await this.ledger.decide(asked.map(({ item }) => item));
    return asked.map(({ item, fallbackReason }, index) => {
      const large = outcomes[index]!;
      if (item.wantsLarge && !large) {
        this.largeGate.release();
        this.metrics?.capBlocked.inc();
      }
      return { large, fallbackReason };
    });
  }

  /**
   * Batch decision: the top ⌊p·n⌋ by gain (guards refill dropped slots from the next candidates);
   * the items are then recorded in the ledger in priority order, so if the hard cap binds it is the
   * lowest-gain candidates that stay small.
   */
  private async decideBatch(prefills: Prefilled[], weights: readonly number[]): Promise<Decision[]> {
    const count = prefills.length;
    const scores = this.scores(prefills);
    const gains = Array.from(scores.gain!);
    const ids = gains.map((_, index) => String(index).padStart(8, "0"));
    const order = routingOrder(gains, ids);
    const signals = gains.map((_, row) => this.signals(scores, row));
    const allocation = allocateGuarded(order, signals, this.thresholds, this.budget);
    // Candidates the allocation looked at: everything up to the last one it routed (all when it ran short).
    let visited = count;
    if (allocation.routedCount === allocation.target) {
      visited = 0;
      for (let rank = 0, routed = 0; rank < count && routed < allocation.target; rank++) {
        if (allocation.routed[order[rank]!]) routed++;
        visited = rank + 1;
      }
    }
    const guarded = order.map(
      (index, rank) =>
        !allocation.routed[index]! &&
        rank < visited &&
        routedCount(this.budget, count) > 0 &&
        firedGuard(signals[index]!, this.thresholds) !== null,
    );
    for (const fired of guarded) if (fired) this.metrics?.guarded.inc();
    const recorded = await this.admitAndRecord(
      order.map((index) => ({ wantsLarge: allocation.routed[index]!, weight: weights[index]! })),
    );
    const decisions: Decision[] = new Array(count);
    order.forEach((index, rank) => {
      decisions[index] = { ...recorded[rank]!, gain: gains[index]!, guarded: guarded[rank]! };
    });
    return decisions;
  }

  private async decodeSmall(
    source: Prefilled | TranslationRequest,
    field: string,
    stages: StageTimings,
    fallbackReason: FallbackReason | null,
  ): Promise<Omit<HybridTranslation, "latencyMs" | "stages" | "predictedGain" | "guarded">> {
    const started = performance.now();
    let translation: Translation;
    try {
      translation =
        "continue" in source
          ? await source.continue({ maxTokens: this.maxTokens, signal: this.shutdown.signal })
          : await this.translateSmallAfresh(source);
    } catch (error) {
      if ("release" in source) await source.release();
      throw this.smallFailure(error, field);
    }
    // An in-process decode stops early at the abort rather than failing: its text is cut short.
    this.throwIfShuttingDown();
    this.lastSmallError = null;
    stages.smallDecode = performance.now() - started;
    this.metrics?.observeStage("small_decode", stages.smallDecode);
    if (fallbackReason !== null) this.metrics?.fallbacks.inc({ reason: fallbackReason });
    return this.outcome(translation, "small", fallbackReason);
  }

  /** Calls the large model under the deadline; any failure falls back to a fresh small translation. */
  private async callLarge(
    request: TranslationRequest,
    field: string,
    stages: StageTimings,
  ): Promise<Omit<HybridTranslation, "latencyMs" | "stages" | "predictedGain" | "guarded">> {
    const started = performance.now();
    let failure: unknown;
    try {
      const [translation] = await this.large.translate([request], {
        maxTokens: this.maxTokens,
        signal: AbortSignal.any([AbortSignal.timeout(this.largeTimeoutMs), this.shutdown.signal]),
      });
      this.throwIfShuttingDown();
      stages.largeCall = performance.now() - started;
      this.metrics?.observeStage("large_call", stages.largeCall);
      return this.outcome(translation!, "large", null);
    } catch (error) {
      failure = error;
    } finally {
      this.largeGate.release();
    }
    this.throwIfShuttingDown();
    stages.largeCall = performance.now() - started;
    this.metrics?.observeStage("large_call", stages.largeCall);
    const kind = errorKind(failure);
    this.metrics?.backendErrors.inc({ engine: "large", kind });
    const reason: FallbackReason = kind === "timeout" ? "large-timeout" : "large-error";
    this.metrics?.fallbacks.inc({ reason });
    const fallbackStarted = performance.now();
    this.smallGate.forceAcquire();
    try {
      const translation = await this.translateSmallAfresh(request);
      this.lastSmallError = null;
      stages.fallbackDecode = performance.now() - fallbackStarted;
      this.metrics?.observeStage("fallback_decode", stages.fallbackDecode);
      return this.outcome(translation, "small", reason);
    } catch (error) {
      throw this.smallFailure(error, field);
    } finally {
      this.smallGate.release();
    }
  }

  /**
   * A small translation without a held prefill: prefill again and continue, the same decoding path
   * as a kept request (a remote engine's plain `translate` would go through its chat template
   * instead, so the same text could come out differently on the batch or fallback path).
   */
  private async translateSmallAfresh(request: TranslationRequest): Promise<Translation> {
    const prefilled = await this.small.prefill(request, { signal: this.shutdown.signal });
    try {
      return await prefilled.continue({ maxTokens: this.maxTokens, signal: this.shutdown.signal });
    } finally {
      await prefilled.release();
    }
  }

  private outcome(
    translation: Translation,
    model: "small" | "large",
    fallbackReason: FallbackReason | null,
  ): Omit<HybridTranslation, "latencyMs" | "stages" | "predictedGain" | "guarded"> {
    return {
      translation: translation.text,
      model,
      fallback: fallbackReason !== null,
      fallbackReason,
      promptTokens: translation.promptTokens,
      outputTokens: translation.outputTokens,
      finishReason: translation.finishReason,
    };
  }

  /** Names of the engines, for logs and errors. */
  get engineNames(): { small: string; large: string } {
    return { small: this.smallName, large: this.largeName };
  }
}
