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
 *
 * A single request can stream its text (`onText`): the kept request's small decode or the routed
 * request's large answer, as the engine produces it. A large call that fails before any text went
 * out falls back to the small model as usual, streaming that instead; once text went out, another
 * model cannot take over (the client would get two translations spliced together), so the failure
 * ends the stream with an error (`RLMT_ERR_ENGINE_STREAM_FAILED`).
 */
import { setMaxListeners } from "node:events";
import { EngineCallError, EngineTimeoutError, RoutelmtError } from "../errors/index.js";
import { type SourceBlock, sourceBlocksNamed, writeSourceBlocks } from "../features/source-blocks.js";
import type { PosthocObservation } from "../probe/gain-restack.js";
import type { GuardReport, QeSignal } from "../probe/guard-choice.js";
import type { HeadScores, RouterFile } from "../probe/router-file.js";
import {
  guardedScore,
  languagePairName,
  predictHeads,
  qeGuardAdjusts,
  qeGuardedScore,
  qeGuardReads,
  qeGuardWithoutLargeLikelihood,
  routerBlocks,
  trainedPairNames,
} from "../probe/router-file.js";
import {
  allocateGuarded,
  BudgetController,
  carriedRoutedCount,
  firedGuard,
  type GuardSignals,
  type GuardThresholds,
  routingOrder,
} from "../routing/index.js";
import type {
  DecodeOptions,
  Prefilled,
  ProbedTranslator,
  Translation,
  TranslationRequest,
  Translator,
} from "../translators/types.js";
import { type LinkedSignal, linkedSignal } from "../util/linked-signal.js";
import { type BudgetLedger, type LedgerItem, LocalBudgetLedger } from "./budget-ledger.js";
import type { RequestWeigher } from "./budget-units.js";
import { AdmissionGate } from "./decision-window.js";
import { ServerError } from "./errors.js";
import type { ServerMetrics } from "./metrics.js";
import { TrimmedTextStream } from "./trimmed-text-stream.js";

export type RoutingPolicy = "routelmt" | "guarded" | "guarded-qe";

/** Why a translation came from the small model although it was routed large. */
export type FallbackReason = "large-error" | "large-timeout" | "large-queue-full";

/** Which model produces a translation, and why: what a streamed answer's headers say. */
export interface TranslationSource {
  model: "small" | "large";
  /** The router's gain prediction (NaN when the features gave none). */
  predictedGain: number;
  guarded: boolean;
  fallbackReason: FallbackReason | null;
}

/** Options of {@link HybridRouter.translate}. */
export interface TranslateOptions {
  /** Aborts the request's engine calls (the client went away); the translation rejects with its reason. */
  signal?: AbortSignal;
  /**
   * Streams the translation's text as it decodes, trimmed so the deltas add up to exactly the final
   * `translation` (see `trimmed-text-stream.ts`). `source` is fixed from the first delta on.
   */
  onText?: (delta: string, source: TranslationSource) => void;
}

/** Options of {@link HybridRouter.translateBatch}. */
export interface TranslateBatchOptions {
  /** Aborts the batch's engine calls (the client went away); the batch rejects with its reason. */
  signal?: AbortSignal;
  /** Called once every item is decided, before any is translated, with the decided source of each. */
  onDecided?: (sources: TranslationSource[]) => void;
  /** Called as each item's translation is done, in the order they finish. */
  onTranslation?: (index: number, result: HybridTranslation) => void;
}

/** What one run of the router is asked for: a single request's or a batch's options. */
type RunOptions = TranslateOptions & TranslateBatchOptions;

/** Milliseconds per stage; absent stages did not run. */
export interface StageTimings {
  prefill: number;
  decision: number;
  smallDecode?: number;
  /** guarded-qe on the large model's likelihood: the large model scoring the small translation. */
  qeScore?: number;
  largeCall?: number;
  fallbackDecode?: number;
  /** Streamed requests: from arrival in the router to the first text sent. */
  firstText?: number;
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
  /**
   * Called the first time a text of a language pair the router was not trained on arrives (e.g.
   * `en→fr`), with the pairs it was trained on; such texts are counted in the metrics.
   */
  onUnseenPair?: (pair: string, trainedOn: string) => void;
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
  if (
    error instanceof EngineTimeoutError ||
    (error instanceof Error && error.cause instanceof EngineTimeoutError)
  )
    return "timeout";
  if (error instanceof DOMException && (error.name === "TimeoutError" || error.name === "AbortError"))
    return "timeout";
  if (error instanceof EngineCallError) return error.status === undefined ? "network" : "http";
  return "other";
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Throws the signal's reason (the shutdown error, or the client's disconnect) once it aborted. */
function throwIfAborted(signal: AbortSignal): void {
  if (signal.aborted) throw signal.reason;
}

/** What a decision says about the model that will produce the text. */
function decidedSource(decision: Decision): TranslationSource {
  return {
    model: decision.large ? "large" : "small",
    predictedGain: decision.gain,
    guarded: decision.guarded,
    fallbackReason: decision.fallbackReason,
  };
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

/**
 * guarded-qe with a router whose post-hoc guard ranks by the large model's likelihood, served by a
 * large engine that cannot score a given text (a remote one): the guard training measured on the
 * small model's confidence instead, where there is one, with a notice saying so; else the router as
 * it is (the constructor then refuses it, naming why).
 */
function servableQeRouter(
  router: RouterFile,
  large: Translator,
): { router: RouterFile; notice: string | null } {
  const guard = router.guard_qe;
  if (!guard || !qeGuardReads(guard, "large-likelihood") || large.scoreTranslation)
    return { router, notice: null };
  const fallback = qeGuardWithoutLargeLikelihood(router);
  if (!fallback) return { router, notice: null };
  const what = fallback.restack
    ? `the gain re-estimated from ${fallback.restack.inputs.join(", ")}`
    : "the small model's confidence";
  return {
    router: { ...router, guard_qe: fallback },
    notice: `guarded-qe: this router's post-hoc guard reads the large model's likelihood of the small translation, which the large engine ${large.engine} cannot give; it ranks by ${what} instead, the best guard training measured without it (λ ${fallback.lambda.toPrecision(3)}${fallback.lambda === 0 && !fallback.restack ? ": no cut worth its cost, so by gain alone" : ""})`,
  };
}

/**
 * The signal a post-hoc guard reads from the decode that these engines cannot give (the large
 * model's likelihood needs a large engine that scores a given text, the small model's confidence a
 * small engine that reports it); null when they give all it reads, or when it reads nothing (λ = 0
 * and no re-estimate: nothing is decoded before the decision).
 */
function unservableSignal(
  guard: GuardReport,
  small: Pick<ProbedTranslator, "reportsConfidence">,
  large: Pick<Translator, "scoreTranslation">,
): QeSignal | null {
  if (!qeGuardAdjusts(guard)) return null;
  if (qeGuardReads(guard, "large-likelihood") && large.scoreTranslation === undefined)
    return "large-likelihood";
  if (qeGuardReads(guard, "small-confidence") && !small.reportsConfidence) return "small-confidence";
  return null;
}

/**
 * The policy a request is served by: `guarded` with a router whose guard is post-hoc (ROUTER.json
 * `guarded_by`) is served as `guarded-qe` where the engines give what that guard reads (`qeRouter`:
 * the router as guarded-qe serves it), else by the in-model guard; the notice says which, for the
 * log at start.
 */
function servedPolicy(
  asked: RoutingPolicy,
  qeRouter: RouterFile,
  options: Pick<HybridRouterOptions, "router" | "small" | "large">,
): { policy: RoutingPolicy; notice: string | null } {
  if (asked !== "guarded" || options.router.guarded_by !== "post-hoc") return { policy: asked, notice: null };
  const guard = qeRouter.guard_qe;
  const unservable = guard ? unservableSignal(guard, options.small, options.large) : null;
  const missing = !guard
    ? "it has no post-hoc guard"
    : unservable === "large-likelihood"
      ? `its post-hoc guard reads the large model's likelihood of the small translation, which the large engine ${options.large.engine} cannot give`
      : unservable === "small-confidence"
        ? `its post-hoc guard reads the small model's confidence, which the small engine ${options.small.engine} does not report`
        : null;
  if (missing !== null)
    return {
      policy: "guarded",
      notice: `guarded: this router's guard is post-hoc (guarded_by), but ${missing}; requests are ranked by the in-model guard instead`,
    };
  return {
    policy: "guarded-qe",
    notice:
      "guarded: this router's guard is post-hoc (guarded_by, chosen in training): every request's small translation is decoded before the decision, as guarded-qe does (train --guard in-model for a guard that decides at the prefill)",
  };
}

/** What the post-hoc guard reads of a request's decoded small translation, besides its predicted gain. */
type DecodedObservation = Omit<PosthocObservation, "gain">;

export class HybridRouter {
  readonly budget: number;
  readonly policy: RoutingPolicy;
  readonly thresholds: GuardThresholds;
  private readonly small: ProbedTranslator;
  private readonly large: Translator;
  private readonly smallName: string;
  private readonly largeName: string;
  private readonly router: RouterFile;
  /** The source-text blocks the router reads, after the model's values. */
  private readonly sourceBlocks: readonly SourceBlock[];
  /** `guarded` with a router that carries a risk-adjusted guard: rank by gain − λ·risk instead of vetoing. */
  private readonly riskAdjusted: boolean;
  /**
   * `guarded-qe`: decode the small translation first and rank by gain − λ · its mean token
   * log-probability (the router's post-hoc guard), deciding only then. Off when the guard's λ is 0:
   * its ranking is then the gain's, and a routed request would wait for a decode that changes nothing.
   */
  private readonly confidenceAdjusted: boolean;
  /** Whether the post-hoc guard reads the large model's likelihood of each small translation. */
  private readonly qeNeedsLarge: boolean;
  /** Why guarded-qe ranks by another signal than the router kept (for the log at start); null if it does not. */
  readonly qeNotice: string | null;
  /** Which guard `guarded` serves with when the router's guard is post-hoc (for the log at start); null otherwise. */
  readonly guardedNotice: string | null;
  /** Whether every request's small translation is decoded before its decision (`guarded-qe` with λ > 0). */
  get decodesSmallFirst(): boolean {
    return this.confidenceAdjusted;
  }
  /** Whether the large model scores every request's small translation before the decision. */
  get qeScoredByLarge(): boolean {
    return this.confidenceAdjusted && this.qeNeedsLarge;
  }
  /**
   * λ × a typical confidence, from the medians of the training scores (gain head against post-hoc
   * guard): a request kept small that would have passed with this shift was kept by its confidence.
   */
  private readonly typicalConfidenceShift: number;
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
  /** Fraction of a text the batches so far were owed and did not route (see `carriedRoutedCount`). */
  private batchCarry = 0;
  /** Aborted at the shutdown deadline: every engine call still running gives up. */
  private readonly shutdown = new AbortController();
  /** The signals of runs whose caller gave a signal of its own: the shutdown aborts them too. */
  private readonly linkedRuns = new Set<LinkedSignal>();
  private translationsInFlight = 0;
  /** The router's language pairs (`en→de`); null when it recorded none or only partly, so nothing is judged. */
  private readonly trainedPairs: ReadonlySet<string> | null;
  private readonly unseenPairsSeen = new Set<string>();
  private readonly onUnseenPair: HybridRouterOptions["onUnseenPair"];

  constructor(options: HybridRouterOptions) {
    // Every engine call of a run without a signal of its own listens to it: many, on purpose.
    setMaxListeners(0, this.shutdown.signal);
    const gainHead = options.router.heads.gain;
    if (!gainHead) {
      throw new RoutelmtError("RLMT_ERR_USAGE", "the router has no gain head: retrain it with --heads gain");
    }
    this.budget = options.budget;
    const asked = options.policy ?? "routelmt";
    // The router as guarded-qe serves it, whether asked for or reached through guarded.
    const qe =
      asked === "guarded-qe" || (asked === "guarded" && options.router.guarded_by === "post-hoc")
        ? servableQeRouter(options.router, options.large)
        : { router: options.router, notice: null };
    const served = servedPolicy(asked, qe.router, options);
    this.policy = served.policy;
    this.guardedNotice = served.notice;
    const { router, notice } = this.policy === "guarded-qe" ? qe : { router: options.router, notice: null };
    this.qeNotice = notice;
    const guard = router.guard;
    this.riskAdjusted = this.policy === "guarded" && guard !== undefined && router.heads.risk !== undefined;
    this.confidenceAdjusted = this.policy === "guarded-qe" && qeGuardAdjusts(router.guard_qe);
    this.qeNeedsLarge = router.guard_qe !== undefined && qeGuardReads(router.guard_qe, "large-likelihood");
    this.typicalConfidenceShift = router.guard_qe
      ? gainHead.score_quantiles[50]! - router.guard_qe.score_quantiles[50]!
      : 0;
    if (this.policy === "guarded-qe" && !router.guard_qe) {
      throw new RoutelmtError(
        "RLMT_ERR_USAGE",
        "policy guarded-qe needs a router with a post-hoc guard: train it on a dataset whose records carry the small model's confidence (small_mean_logprob: collected with an in-process small model, or a remote one whose server returns token log-probabilities)",
      );
    }
    const unservable =
      this.policy === "guarded-qe" && router.guard_qe
        ? unservableSignal(router.guard_qe, options.small, options.large)
        : null;
    if (unservable === "large-likelihood") {
      throw new RoutelmtError(
        "RLMT_ERR_USAGE",
        `policy guarded-qe: this router's post-hoc guard ranks by the large model's likelihood of the small translation, which needs a large engine that scores a given text (an in-process GGUF model); ${options.large.engine} does not. Serve --policy routelmt or guarded, or retrain on a dataset without large_logprob_of_small`,
      );
    }
    if (unservable === "small-confidence") {
      throw new RoutelmtError(
        "RLMT_ERR_USAGE",
        `policy guarded-qe needs a small engine that reports its confidence in each translation (an in-process GGUF model, or an openai: small model); ${options.small.engine} does not`,
      );
    }
    // The guard whose adjusted score requests are ranked and thresholded by, if any (else vetoes).
    const scoreGuard = this.confidenceAdjusted ? router.guard_qe : this.riskAdjusted ? guard : undefined;
    this.thresholds = scoreGuard
      ? {}
      : guardThresholds(router, this.policy, options.guardQualityQuantile, options.guardRisk);
    if (this.policy === "guarded" && !this.riskAdjusted && Object.keys(this.thresholds).length === 0) {
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
    this.router = router;
    this.sourceBlocks = sourceBlocksNamed(routerBlocks(router));
    this.trainedPairs = trainedPairNames(router);
    this.onUnseenPair = options.onUnseenPair;
    this.weigher = options.weigher;
    this.onAnswer = options.onAnswer;
    this.sharedLedger = options.ledger !== undefined;
    this.controller = new BudgetController({
      budget: options.budget,
      window,
      // The controller thresholds the score requests are ranked by, so it starts from that score's quantiles.
      trainingScores: (scoreGuard ?? gainHead).score_quantiles,
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
  async translate(
    request: TranslationRequest,
    field = "text",
    options: TranslateOptions = {},
  ): Promise<HybridTranslation> {
    const [result] = await this.run([request], [field], false, options);
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
    options: TranslateBatchOptions = {},
  ): Promise<HybridTranslation[]> {
    return this.run(requests, fields, true, options);
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
    const reason = new ServerError(
      "RLMT_ERR_SHUTTING_DOWN",
      "the server is shutting down and its deadline passed before this translation finished: retry on another replica",
      { retryAfterSeconds: 1 },
    );
    this.shutdown.abort(reason);
    for (const run of this.linkedRuns) run.abort(reason);
  }

  private async run(
    requests: TranslationRequest[],
    fields: readonly string[],
    batch: boolean,
    options: RunOptions,
  ): Promise<HybridTranslation[]> {
    this.translationsInFlight++;
    if (this.trainedPairs !== null) this.noteUnseenPairs(requests, this.trainedPairs);
    // Every engine call of the run stops at the shutdown deadline or when the caller gives up.
    const linked = options.signal ? linkedSignal(options.signal) : undefined;
    if (linked) {
      if (this.shutdown.signal.aborted) linked.abort(this.shutdown.signal.reason);
      this.linkedRuns.add(linked);
    }
    try {
      return await this.runAdmitted(requests, fields, batch, options, linked?.signal ?? this.shutdown.signal);
    } finally {
      if (linked) {
        linked.dispose();
        this.linkedRuns.delete(linked);
      }
      this.translationsInFlight--;
    }
  }

  /** Counts texts of pairs the router never saw, and reports each such pair once. */
  private noteUnseenPairs(requests: readonly TranslationRequest[], trained: ReadonlySet<string>): void {
    for (const request of requests) {
      const pair = languagePairName(request.srcLang, request.tgtLang);
      if (trained.has(pair)) continue;
      this.metrics?.unseenPairs.inc();
      if (this.unseenPairsSeen.has(pair)) continue;
      this.unseenPairsSeen.add(pair);
      this.onUnseenPair?.(pair, [...trained].join(", "));
    }
  }

  private async runAdmitted(
    requests: TranslationRequest[],
    fields: readonly string[],
    batch: boolean,
    options: RunOptions,
    signal: AbortSignal,
  ): Promise<HybridTranslation[]> {
    const started = performance.now();
    const count = requests.length;
    throwIfAborted(signal);
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
      const prefills = await this.prefillAll(requests, fields, holdsPrefills, signal);
      const prefillMs = performance.now() - prefillStarted;
      // guarded-qe decides on the decoded small translations' confidence: they come first.
      const smallFirstStarted = performance.now();
      const smallFirst = this.confidenceAdjusted
        ? await this.decodeAllSmall(holdsPrefills ? prefills : requests, fields, signal)
        : null;
      const smallFirstMs = performance.now() - smallFirstStarted;
      const qeStarted = performance.now();
      const qeValues = smallFirst ? await this.posthocObservations(requests, smallFirst) : undefined;
      const qeMs = performance.now() - qeStarted;

      const decisionStarted = performance.now();
      const weights = requests.map((request, index) => this.weigher?.weigh(prefills[index]!, request) ?? 1);
      const decisions = batch
        ? await this.decideBatch(prefills, requests, weights, qeValues)
        : [await this.decideOne(prefills[0]!, requests[0]!, weights[0]!, qeValues?.[0] ?? null)];
      const decisionMs = performance.now() - decisionStarted;
      options.onDecided?.(decisions.map(decidedSource));

      return await Promise.all(
        requests.map(async (request, index) => {
          const decision = decisions[index]!;
          const prefilled = prefills[index]!;
          const stages: StageTimings = { prefill: prefillMs, decision: decisionMs };
          if (smallFirst) {
            // Decoded before the decision, also for a request then routed large.
            stages.smallDecode = smallFirstMs;
            this.metrics?.observeStage("small_decode", smallFirstMs);
            if (this.qeNeedsLarge) {
              stages.qeScore = qeMs;
              this.metrics?.observeStage("qe_score", qeMs);
            }
          }
          this.metrics?.observeStage("prefill", prefillMs);
          this.metrics?.observeStage("decision", decisionMs);
          this.metrics?.predictedGain.observe(Number.isFinite(decision.gain) ? decision.gain : 0);
          const text = options.onText ? this.textStream(options.onText, started, stages) : undefined;
          let result: Omit<HybridTranslation, "latencyMs" | "stages" | "predictedGain" | "guarded">;
          if (decision.large) {
            await prefilled.release();
            // The request no longer needs the small engine unless it falls back.
            releaseSmall(1);
            result = await this.callLarge(
              request,
              fields[index]!,
              stages,
              decision,
              signal,
              text,
              smallFirst?.[index],
            );
          } else if (smallFirst) {
            result = this.keptSmall(smallFirst[index]!, decision, text);
            releaseSmall(1);
          } else {
            result = await this.decodeSmall(
              holdsPrefills ? prefilled : request,
              fields[index]!,
              stages,
              decision,
              signal,
              text,
            );
            releaseSmall(1);
          }
          this.onAnswer?.(request, result.model, result.promptTokens, result.outputTokens);
          const latencyMs = performance.now() - started;
          this.metrics?.observeStage("total", latencyMs);
          this.metrics?.countTranslation(
            result.model,
            result.fallback ? "fallback" : decision.guarded ? "guarded" : "ok",
          );
          const translation: HybridTranslation = {
            ...result,
            predictedGain: decision.gain,
            guarded: decision.guarded,
            latencyMs,
            stages,
          };
          options.onTranslation?.(index, translation);
          return translation;
        }),
      );
    } finally {
      releaseSmall(smallPlaces);
    }
  }

  /**
   * guarded-qe: the small translation of every request, before the decision (from its held prefill,
   * or afresh for a batch, whose prefills are not held); if one fails, throws its error, naming its field.
   */
  private async decodeAllSmall(
    sources: readonly (Prefilled | TranslationRequest)[],
    fields: readonly string[],
    signal: AbortSignal,
  ): Promise<Translation[]> {
    const decode = { maxTokens: this.maxTokens, signal, confidence: true };
    const settled = await Promise.allSettled(
      sources.map((source) =>
        "continue" in source ? source.continue(decode) : this.translateSmallAfresh(source, decode),
      ),
    );
    // A held prefill frees its sequence when its decode ends, failed or not.
    throwIfAborted(signal);
    const failed = settled.findIndex((outcome) => outcome.status === "rejected");
    if (failed >= 0)
      throw this.smallFailure((settled[failed] as PromiseRejectedResult).reason, fields[failed]!);
    this.lastSmallError = null;
    return settled.map((outcome) => (outcome as PromiseFulfilledResult<Translation>).value);
  }

  /**
   * guarded-qe: what the post-hoc guard reads of each decoded small translation — its confidence,
   * its length, and where the guard needs it the large model's likelihood of it. A failed score is
   * null (that request ranks by its gain alone), counted as a large-engine error, never fails the request.
   * A score is large-engine work, so it takes a large-engine place like a routed request; with none
   * free it is skipped (null, counted as `queue-full`) rather than queued past the bound.
   */
  private async posthocObservations(
    requests: readonly TranslationRequest[],
    translations: readonly Translation[],
  ): Promise<DecodedObservation[]> {
    const score = this.qeNeedsLarge ? this.large.scoreTranslation?.bind(this.large) : undefined;
    return await Promise.all(
      translations.map(async (translation, index) => {
        let largeLikelihood: number | null = null;
        if (score && !this.largeGate.tryAcquire()) {
          this.metrics?.backendErrors.inc({ engine: "large", kind: "queue-full" });
        } else if (score) {
          try {
            largeLikelihood = await score(requests[index]!, translation.text);
          } catch (error) {
            this.metrics?.backendErrors.inc({ engine: "large", kind: errorKind(error) });
          } finally {
            this.largeGate.release();
          }
        }
        return {
          smallConfidence: translation.meanLogProbability ?? null,
          largeLikelihood,
          promptTokens: translation.promptTokens,
          src: requests[index]!.text,
          small: translation.text,
        };
      }),
    );
  }

  /** guarded-qe: a request kept small answers with the translation decoded before the decision. */
  private keptSmall(
    translation: Translation,
    decision: Decision,
    text: TrimmedTextStream<TranslationSource> | undefined,
  ): Omit<HybridTranslation, "latencyMs" | "stages" | "predictedGain" | "guarded"> {
    // Nothing streamed before the decision: the whole text goes out now, in one delta.
    if (text) text.finish(translation.text, { ...decidedSource(decision), model: "small" });
    if (decision.fallbackReason !== null) this.metrics?.fallbacks.inc({ reason: decision.fallbackReason });
    return this.outcome(translation, "small", decision.fallbackReason);
  }

  /**
   * Prefills every request (releasing each at once unless `hold`); if one fails, releases the
   * others and throws its error, naming its field.
   */
  private async prefillAll(
    requests: TranslationRequest[],
    fields: readonly string[],
    hold: boolean,
    signal: AbortSignal,
  ): Promise<Prefilled[]> {
    const settled = await Promise.allSettled(
      requests.map(async (request) => {
        const prefilled = await this.small.prefill(request, { signal });
        // Released before the next prefill can wait on this one's sequence (its features stay readable).
        if (!hold) await prefilled.release();
        return prefilled;
      }),
    );
    const failed = settled.findIndex((outcome) => outcome.status === "rejected");
    if (failed >= 0 || signal.aborted) {
      await Promise.all(
        settled.map((outcome) => (outcome.status === "fulfilled" ? outcome.value.release() : undefined)),
      );
      throwIfAborted(signal);
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

  /** Head scores of requests from their prefills' features and the source-text blocks of their texts. */
  private scores(prefills: readonly Prefilled[], requests: readonly TranslationRequest[]): HeadScores {
    const dim = this.router.feature.dim;
    const modelDim = dim - this.sourceBlocks.reduce((sum, block) => sum + block.dim, 0);
    const features = new Float32Array(prefills.length * dim);
    prefills.forEach((prefilled, row) => {
      features.set(prefilled.features.subarray(0, modelDim), row * dim);
      if (this.sourceBlocks.length > 0) {
        const out = features.subarray(row * dim + modelDim, (row + 1) * dim);
        writeSourceBlocks(requests[row]!.text, this.sourceBlocks, out);
      }
    });
    return predictHeads(this.router, features, prefills.length);
  }

  /**
   * The score requests are ranked and thresholded by: the gain, the risk-adjusted gain, or for
   * guarded-qe the gain adjusted by the small translation's post-hoc signal (the gain alone where
   * there is none).
   */
  private rankScore(scores: HeadScores, row: number, decoded: DecodedObservation | null = null): number {
    const gain = scores.gain![row]!;
    if (this.confidenceAdjusted)
      return decoded ? (qeGuardedScore(this.router, { ...decoded, gain }) ?? gain) : gain;
    return this.riskAdjusted ? (guardedScore(this.router, scores, row) ?? gain) : gain;
  }

  private signals(scores: HeadScores, row: number): GuardSignals {
    return { qualityPrediction: scores.quality?.[row] ?? null, riskProbability: scores.risk?.[row] ?? null };
  }

  /**
   * Online decision for one request. The threshold and the guards decide synchronously; the ledger
   * then checks the cap and records the decision in one step nothing can interleave with (see the
   * module comment, and the shared ledger's script).
   */
  private async decideOne(
    prefilled: Prefilled,
    request: TranslationRequest,
    weight: number,
    decoded: DecodedObservation | null = null,
  ): Promise<Decision> {
    const scores = this.scores([prefilled], [request]);
    const gain = scores.gain![0]!;
    const verdict = this.controller.decide(this.rankScore(scores, 0, decoded), weight);
    let wantsLarge = verdict.target === "large";
    // Risk-adjusted: kept small by the risk term alone, its gain would have passed the threshold.
    // Confidence-adjusted: kept small, it would have passed with the training median's adjustment.
    let guarded =
      verdict.reason === "score-below-threshold" &&
      ((this.riskAdjusted && gain >= verdict.threshold) ||
        (this.confidenceAdjusted && gain - this.typicalConfidenceShift >= verdict.threshold));
    if (guarded) this.metrics?.guarded.inc();
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
   * Batch decision: the top ⌊p·n + c⌋ by gain, c the fraction of a text earlier batches left owed
   * (guards refill dropped slots from the next candidates); the items are then recorded in the
   * ledger in priority order, so if the hard cap binds it is the lowest-gain candidates that stay
   * small.
   */
  private async decideBatch(
    prefills: Prefilled[],
    requests: readonly TranslationRequest[],
    weights: readonly number[],
    decoded: readonly DecodedObservation[] | undefined,
  ): Promise<Decision[]> {
    const count = prefills.length;
    const scores = this.scores(prefills, requests);
    const gains = Array.from(scores.gain!);
    const ids = gains.map((_, index) => String(index).padStart(8, "0"));
    const order = routingOrder(
      gains.map((_, row) => this.rankScore(scores, row, decoded?.[row] ?? null)),
      ids,
    );
    // Taken before any await, so concurrent batches each see the carry the last one left.
    const { count: target, carry } = carriedRoutedCount(this.budget, count, this.batchCarry);
    this.batchCarry = carry;
    // Adjusted scores: a text the gain alone would have routed but the adjustment kept small is guarded.
    const byGain =
      this.riskAdjusted || this.confidenceAdjusted
        ? new Set(routingOrder(gains, ids).slice(0, target))
        : null;
    const signals = gains.map((_, row) => this.signals(scores, row));
    const allocation = allocateGuarded(order, signals, this.thresholds, this.budget, target);
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
        (byGain?.has(index) ??
          (rank < visited && target > 0 && firedGuard(signals[index]!, this.thresholds) !== null)),
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
    decision: Decision,
    signal: AbortSignal,
    text: TrimmedTextStream<TranslationSource> | undefined,
  ): Promise<Omit<HybridTranslation, "latencyMs" | "stages" | "predictedGain" | "guarded">> {
    const started = performance.now();
    const { fallbackReason } = decision;
    const producer = text ? { ...decidedSource(decision), model: "small" as const } : undefined;
    const decode = {
      maxTokens: this.maxTokens,
      signal,
      ...(text && producer ? { onText: text.sinkFor(producer) } : {}),
    };
    let translation: Translation;
    try {
      translation =
        "continue" in source
          ? await source.continue(decode)
          : await this.translateSmallAfresh(source, decode);
    } catch (error) {
      if ("release" in source) await source.release();
      throwIfAborted(signal);
      throw text?.started ? this.streamFailure("small", error) : this.smallFailure(error, field);
    }
    // An in-process decode stops early at the abort rather than failing: its text is cut short.
    throwIfAborted(signal);
    this.lastSmallError = null;
    if (text && producer) text.finish(translation.text, producer);
    stages.smallDecode = performance.now() - started;
    this.metrics?.observeStage("small_decode", stages.smallDecode);
    if (fallbackReason !== null) this.metrics?.fallbacks.inc({ reason: fallbackReason });
    return this.outcome(translation, "small", fallbackReason);
  }

  /**
   * Calls the large model under the deadline; a failure before any text was streamed falls back to
   * a fresh small translation (or, under guarded-qe, the one `decoded` before the decision), one
   * after it ends the stream.
   */
  private async callLarge(
    request: TranslationRequest,
    field: string,
    stages: StageTimings,
    decision: Decision,
    signal: AbortSignal,
    text: TrimmedTextStream<TranslationSource> | undefined,
    decoded?: Translation,
  ): Promise<Omit<HybridTranslation, "latencyMs" | "stages" | "predictedGain" | "guarded">> {
    const started = performance.now();
    const producer = text ? { ...decidedSource(decision), model: "large" as const } : undefined;
    const deadline = linkedSignal(signal, this.largeTimeoutMs);
    let failure: unknown;
    try {
      const [translation] = await this.large.translate([request], {
        maxTokens: this.maxTokens,
        signal: deadline.signal,
        ...(text && producer ? { onText: text.sinkFor(producer) } : {}),
      });
      throwIfAborted(signal);
      if (text && producer) text.finish(translation!.text, producer);
      stages.largeCall = performance.now() - started;
      this.metrics?.observeStage("large_call", stages.largeCall);
      return this.outcome(translation!, "large", null);
    } catch (error) {
      failure = error;
    } finally {
      deadline.dispose();
      this.largeGate.release();
    }
    throwIfAborted(signal);
    stages.largeCall = performance.now() - started;
    this.metrics?.observeStage("large_call", stages.largeCall);
    const kind = errorKind(failure);
    this.metrics?.backendErrors.inc({ engine: "large", kind });
    if (text?.started) throw this.streamFailure("large", failure);
    const reason: FallbackReason = kind === "timeout" ? "large-timeout" : "large-error";
    this.metrics?.fallbacks.inc({ reason });
    const fallbackStarted = performance.now();
    const fallback = { ...decidedSource(decision), model: "small" as const, fallbackReason: reason };
    if (decoded) {
      text?.finish(decoded.text, fallback);
      return this.outcome(decoded, "small", reason);
    }
    this.smallGate.forceAcquire();
    try {
      const translation = await this.translateSmallAfresh(request, {
        maxTokens: this.maxTokens,
        signal,
        ...(text ? { onText: text.sinkFor(fallback) } : {}),
      });
      throwIfAborted(signal);
      this.lastSmallError = null;
      text?.finish(translation.text, fallback);
      stages.fallbackDecode = performance.now() - fallbackStarted;
      this.metrics?.observeStage("fallback_decode", stages.fallbackDecode);
      return this.outcome(translation, "small", reason);
    } catch (error) {
      throwIfAborted(signal);
      throw text?.started ? this.streamFailure("small", error) : this.smallFailure(error, field);
    } finally {
      this.smallGate.release();
    }
  }

  /** An engine failure after text was streamed: the stream ends with this error. */
  private streamFailure(engine: "small" | "large", error: unknown): ServerError {
    if (error instanceof ServerError) return error;
    this.metrics?.streamErrors.inc({ engine });
    if (engine === "small") {
      this.lastSmallError = describe(error);
      this.metrics?.backendErrors.inc({ engine, kind: errorKind(error) });
    }
    const name = engine === "small" ? this.smallName : this.largeName;
    return new ServerError(
      "RLMT_ERR_ENGINE_STREAM_FAILED",
      `${engine} engine ${name} failed after the translation began streaming: ${describe(error)}`,
      { cause: error },
    );
  }

  /** The text stream of one streamed request; its first delta's time is the first_text stage. */
  private textStream(
    onText: (delta: string, source: TranslationSource) => void,
    started: number,
    stages: StageTimings,
  ): TrimmedTextStream<TranslationSource> {
    return new TrimmedTextStream<TranslationSource>((delta, source) => {
      if (stages.firstText === undefined) {
        stages.firstText = performance.now() - started;
        this.metrics?.observeStage("first_text", stages.firstText);
      }
      onText(delta, source);
    });
  }

  /**
   * A small translation without a held prefill: prefill again and continue, the same decoding path
   * as a kept request (a remote engine's plain `translate` would go through its chat template
   * instead, so the same text could come out differently on the batch or fallback path).
   */
  private async translateSmallAfresh(
    request: TranslationRequest,
    decode: DecodeOptions,
  ): Promise<Translation> {
    const prefilled = await this.small.prefill(request, { signal: decode.signal });
    try {
      return await prefilled.continue(decode);
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
