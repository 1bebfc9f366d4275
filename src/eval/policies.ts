/**
 * Routing policies for evaluation: each turns a dataset into per-segment routing decisions.
 *
 * Most policies are pure rankings (a score per segment, higher routes first, batch allocation takes
 * the top ⌊p·N⌋). Guarded policies are allocations: they walk a ranking but may veto candidates, so
 * what they route at a budget is not the top of any single score. Both kinds are expressed as a
 * {@link PolicyRealization} whose `allocate(budget)` returns the routed mask; rankings also expose
 * their `scores`, which streaming replay and the rank correlations need. A policy holds one
 * realization, except `random`, whose measures are averaged over several seeds.
 */
import type { DatasetMeta, DatasetRecord } from "../dataset/types.js";
import { InputError, UsageError } from "../errors/index.js";
import {
  guardedScore,
  type HeadScores,
  posthocObservationOf,
  qeGuardedScore,
  qeGuardReads,
  qeSignalOf,
  type RouterFile,
} from "../probe/router-file.js";
import { maskFromOrder, routedCount, routingOrder } from "../routing/batch-allocation.js";
import { allocateGuarded, type GuardSignals, type GuardThresholds } from "../routing/guard.js";
import { quantile, sortScores } from "../stats/quantiles.js";
import { createRandom } from "../stats/random.js";
import { readJsonl } from "../util/jsonl.js";
import type { SegmentOutcomes } from "./measures.js";

/** Who a policy is: the learned router, a router-free baseline, or an oracle that reads the labels. */
export type PolicyFamily = "router" | "baseline" | "oracle";

/** What a policy routes at one budget. */
export interface PolicyAllocation {
  /** `routed[i]`: segment i goes to the large model. */
  routed: boolean[];
  /** Candidates a guard vetoed while filling the budget (0 for plain rankings). */
  guarded: number;
}

/** One concrete run of a policy. */
export interface PolicyRealization {
  /** Ranking score per segment (higher routes first), or null for guarded allocations. */
  scores: Float64Array | null;
  /** Batch allocation at budget p (a fraction in [0, 1]). */
  allocate(budget: number): PolicyAllocation;
}

export interface EvalPolicy {
  /** Key in summary.json, legend label: `routelmt`, `length`, `external:NAME`, … */
  name: string;
  family: PolicyFamily;
  /** One sentence for the report: what the policy ranks by. */
  description: string;
  /** Several for `random` (measures are averaged over them), one otherwise. */
  realizations: PolicyRealization[];
  /**
   * Scores a streaming controller starts from (its threshold is their (1 − p) quantile): the
   * router head's out-of-fold training quantiles when known; undefined means the policy's own scores.
   */
  streamingStartScores?: readonly number[];
  /** Extra cost of deploying the policy beyond computing its score, stated in the report; null if none. */
  cost: string | null;
}

/** Every policy name `--policies` accepts, besides `external:NAME`. */
export const POLICY_NAMES = [
  "routelmt",
  "routelmt-q",
  "guarded",
  "guarded-qe",
  "length",
  "entropy",
  "random",
  "oracle-gain",
  "oracle-quality",
] as const;

/** Number of seeds the random policy averages over. */
export const RANDOM_SEEDS = 20;
/** Default risk-guard threshold: drop candidates the risk head gives at least this probability. */
export const DEFAULT_GUARD_RISK = 0.5;
/** Default quality-guard and QE-guard level: the 90th percentile of the signal. */
export const DEFAULT_GUARD_LEVEL = 0.9;

export const GUARDED_QE_COST =
  "guarded-qe must decode the small model's translation of every request and call a QE model on it before deciding, so every routed request pays for a small-model decode it then discards, plus one QE call per request.";

export const CONFIDENCE_GUARD_COST =
  "guarded-qe decodes the small model's translation of every request before deciding (its confidence comes from that decode, with no QE call), so every routed request pays for a small-model decode it then discards and waits for it.";

export const LARGE_LIKELIHOOD_GUARD_COST =
  "guarded-qe decodes the small model's translation of every request and has the large model score it (one large-model prefill of prompt and translation, no decode) before deciding, so every request pays for that prefill and every routed one for a small-model decode it then discards.";

/**
 * The labelled segments of a dataset in the orientation the measures need: `outcomes` hold
 * `orientation × q`, so that large − small is the dataset's gain (positive = large better) also for
 * error-like metrics; multiply a hybrid quality by `orientation` to get back to the metric's scale.
 */
export interface EvalSegments {
  records: DatasetRecord[];
  /** Row of each kept record in the dataset (its feature row). */
  rows: number[];
  outcomes: SegmentOutcomes;
  orientation: 1 | -1;
  /** Records left out because their label (q_small or q_large) is unknown. */
  unlabelled: number;
}

/** Keeps the records with both label qualities and orients them; ids must be unique. */
export function evalSegmentsFromDataset(meta: DatasetMeta, records: readonly DatasetRecord[]): EvalSegments {
  const orientation: 1 | -1 = meta.label_higher_is_better ? 1 : -1;
  const kept: DatasetRecord[] = [];
  const rows: number[] = [];
  const seen = new Set<string>();
  records.forEach((record, row) => {
    if (seen.has(record.id)) throw new InputError(`segment id ${JSON.stringify(record.id)} occurs twice`);
    seen.add(record.id);
    if (record.q_small === null || record.q_large === null) return;
    if (!Number.isFinite(record.q_small) || !Number.isFinite(record.q_large)) return;
    kept.push(record);
    rows.push(row);
  });
  if (kept.length === 0) throw new InputError("no segment has both label qualities (q_small, q_large)");
  return {
    records: kept,
    rows,
    orientation,
    unlabelled: records.length - kept.length,
    outcomes: {
      ids: kept.map((record) => record.id),
      qualitySmall: kept.map((record) => orientation * record.q_small!),
      qualityLarge: kept.map((record) => orientation * record.q_large!),
    },
  };
}

/** A ranking policy's realization: batch allocation of the top ⌊p·N⌋ by score (ties by id). */
export function rankingRealization(scores: Float64Array, ids: readonly string[]): PolicyRealization {
  const order = routingOrder(Array.from(scores), ids);
  return {
    scores,
    allocate: (budget) => ({ routed: maskFromOrder(order, routedCount(budget, ids.length)), guarded: 0 }),
  };
}

/** A guarded realization: candidates in the order of `candidateScores`, vetoed by the guards. */
export function guardedRealization(
  candidateScores: Float64Array,
  ids: readonly string[],
  signals: readonly GuardSignals[],
  thresholds: GuardThresholds,
): PolicyRealization {
  const order = routingOrder(Array.from(candidateScores), ids);
  return {
    scores: null,
    allocate: (budget) => {
      const allocation = allocateGuarded(order, signals, thresholds, budget);
      return { routed: allocation.routed, guarded: allocation.guarded };
    },
  };
}

/** Random scores per segment from `seed` (xoshiro128**), for the random baseline. */
export function randomScores(count: number, seed: number): Float64Array {
  const random = createRandom(seed);
  const scores = new Float64Array(count);
  for (let index = 0; index < count; index++) scores[index] = random.nextFloat();
  return scores;
}

/** Parses `NAME=FILE` of `--external`. */
export function parseExternalFlag(value: string): { name: string; file: string } {
  const equals = value.indexOf("=");
  const name = equals > 0 ? value.slice(0, equals).trim() : "";
  const file = equals > 0 ? value.slice(equals + 1).trim() : "";
  if (name === "" || file === "")
    throw new UsageError(`--external expects NAME=FILE, got ${JSON.stringify(value)}`);
  return { name, file };
}

/** External router scores read from a JSONL file of `{"id", "score"}` lines. */
export interface ExternalScores {
  name: string;
  file: string;
  scores: Map<string, number>;
}

/**
 * Reads `{"id": string or number, "score": finite number}` lines (a number id names the record
 * whose id reads the same, as collect, import and translate read ids). A malformed line, a
 * duplicate id or a missing/non-finite score is an InputError naming the file and line.
 */
export async function readExternalScores(name: string, file: string): Promise<ExternalScores> {
  const scores = new Map<string, number>();
  for (const { line, value } of await readJsonl(file)) {
    const { score } = value;
    if (typeof value.id !== "string" && typeof value.id !== "number")
      throw new InputError('expected an "id" (a string or number)', { file, line });
    const id = String(value.id);
    if (typeof score !== "number" || !Number.isFinite(score)) {
      throw new InputError(`expected a finite number "score" for id ${JSON.stringify(id)}`, { file, line });
    }
    if (scores.has(id)) throw new InputError(`id ${JSON.stringify(id)} occurs twice`, { file, line });
    scores.set(id, score);
  }
  return { name, file, scores };
}

/**
 * External scores aligned with the dataset. Every dataset id (labelled or not) must have a score;
 * ids the dataset does not hold are ignored and counted.
 */
export function alignExternalScores(
  external: ExternalScores,
  datasetIds: readonly string[],
  evaluatedIds: readonly string[],
): { scores: Float64Array; unknownIds: number } {
  const missing = datasetIds.filter((id) => !external.scores.has(id));
  if (missing.length > 0) {
    const shown = missing.slice(0, 3).map((id) => JSON.stringify(id));
    throw new InputError(
      `no score for ${missing.length} dataset id${missing.length === 1 ? "" : "s"} (${shown.join(", ")}${missing.length > 3 ? ", …" : ""}); every dataset id needs one`,
      { file: external.file },
    );
  }
  const known = new Set(datasetIds);
  let unknownIds = 0;
  for (const id of external.scores.keys()) if (!known.has(id)) unknownIds++;
  return { scores: Float64Array.from(evaluatedIds, (id) => external.scores.get(id)!), unknownIds };
}

/** Everything policies are built from. */
export interface PolicyInputs {
  segments: EvalSegments;
  /** The router, or null (router policies are then skipped). */
  router: RouterFile | null;
  /** Head predictions for the evaluated segments (aligned with `segments.records`), or null without features. */
  heads: HeadScores | null;
  externals: readonly ExternalScores[];
  /** Every id of the dataset, labelled or not (external files must cover them all). */
  datasetIds: readonly string[];
  /** Name of the dataset score used as quality estimate of the small output by guarded-qe. */
  qeScore?: string;
  /** QE threshold; defaults to the 90th percentile of the QE score over the data. */
  qeThreshold?: number;
  /** Quality-guard threshold on the metric's scale; defaults to the 90th percentile of the quality head's training scores. */
  guardQuality?: number;
  /** Risk-guard threshold (probability); defaults to 0.5. */
  guardRisk?: number;
  /** Seed of the random policy (its realizations use seed, seed + 1, …). */
  seed: number;
}

/** A policy left out, and why (printed as a note). */
export interface SkippedPolicy {
  name: string;
  reason: string;
}

export interface PolicySet {
  policies: EvalPolicy[];
  skipped: SkippedPolicy[];
  /** Remarks that are not skips (unknown external ids, default thresholds chosen). */
  notes: string[];
}

/**
 * Parses `--policies` (comma-separated). Known names plus `external:NAME`; unknown names are a
 * UsageError. Undefined gives every policy, with every external.
 */
export function parsePolicyList(list: string | undefined, externalNames: readonly string[]): string[] {
  const defaults = [
    ...POLICY_NAMES.filter((name) => !name.startsWith("oracle")),
    ...externalNames.map((name) => `external:${name}`),
    "oracle-gain",
    "oracle-quality",
  ];
  if (list === undefined) return defaults;
  const names = list
    .split(",")
    .map((name) => name.trim())
    .filter((name) => name !== "");
  if (names.length === 0) throw new UsageError("--policies lists no policy");
  for (const name of names) {
    if (name.startsWith("external:")) {
      if (!externalNames.includes(name.slice("external:".length))) {
        throw new UsageError(`policy ${name} needs --external ${name.slice("external:".length)}=FILE`);
      }
    } else if (!(POLICY_NAMES as readonly string[]).includes(name)) {
      throw new UsageError(
        `unknown policy ${JSON.stringify(name)}; known: ${POLICY_NAMES.join(", ")}, external:NAME`,
      );
    }
  }
  return [...new Set(names)];
}

/** The 90th-percentile-style level of finite values (NaN when there are none). */
function levelOf(values: ArrayLike<number>, level: number): number {
  const finite = Array.from(values).filter(Number.isFinite);
  return finite.length === 0 ? Number.NaN : quantile(sortScores(finite), level);
}

function checkProbability(value: number, flag: string): void {
  if (!(Number.isFinite(value) && value >= 0 && value <= 1)) {
    throw new UsageError(`${flag} must be a probability in [0, 1], got ${value}`);
  }
}

/**
 * Builds the requested policies. Policies whose inputs are missing (no router, no features, no
 * head, no entropy, no `--qe`) are skipped with a reason instead of failing the run.
 */
export function buildPolicies(requested: readonly string[], inputs: PolicyInputs): PolicySet {
  const { segments, router, heads } = inputs;
  const { ids } = segments.outcomes;
  const orientation = segments.orientation;
  const count = ids.length;
  const policies: EvalPolicy[] = [];
  const skipped: SkippedPolicy[] = [];
  const notes: string[] = [];
  const skip = (name: string, reason: string) => skipped.push({ name, reason });
  if (inputs.guardRisk !== undefined) checkProbability(inputs.guardRisk, "--guard-risk");
  if (inputs.guardQuality !== undefined && !Number.isFinite(inputs.guardQuality)) {
    throw new UsageError(`--guard-quality must be a finite number, got ${inputs.guardQuality}`);
  }
  if (inputs.qeThreshold !== undefined && !Number.isFinite(inputs.qeThreshold)) {
    throw new UsageError(`--qe-threshold must be a finite number, got ${inputs.qeThreshold}`);
  }

  const routerAbsence =
    router === null ? "no --router given" : heads === null ? "the dataset has no features" : null;
  const gainHead = router?.heads.gain;
  const qualityHead = router?.heads.quality;
  const gainScores = routerAbsence === null ? heads?.gain : undefined;

  for (const name of requested) {
    switch (name) {
      case "routelmt": {
        if (routerAbsence !== null) skip(name, `needs a router and features (${routerAbsence})`);
        else if (!gainHead || !gainScores) skip(name, "the router has no gain head");
        else
          policies.push({
            name,
            family: "router",
            description: "RouteLMT: the router's gain head, highest predicted gain first.",
            realizations: [rankingRealization(gainScores, ids)],
            streamingStartScores: gainHead.score_quantiles,
            cost: null,
          });
        break;
      }
      case "routelmt-q": {
        const predictions = heads?.quality;
        if (routerAbsence !== null) skip(name, `needs a router and features (${routerAbsence})`);
        else if (!qualityHead || !predictions) skip(name, "the router has no quality head");
        else
          policies.push({
            name,
            family: "router",
            description: "RouteLMT-Q: the router's quality head, lowest predicted small-model quality first.",
            realizations: [
              rankingRealization(
                predictions.map((value) => -orientation * value),
                ids,
              ),
            ],
            streamingStartScores: qualityHead.score_quantiles.map((value) => -orientation * value),
            cost: null,
          });
        break;
      }
      case "guarded": {
        if (routerAbsence !== null) {
          skip(name, `needs a router and features (${routerAbsence})`);
          break;
        }
        if (!gainHead || !gainScores) {
          skip(name, "the router has no gain head to rank candidates");
          break;
        }
        const vetoAsked = inputs.guardQuality !== undefined || inputs.guardRisk !== undefined;
        if (router?.guarded_by === "post-hoc" && !vetoAsked) {
          const postHoc = confidenceGuardPolicy(router, gainScores, segments);
          if (postHoc !== null && typeof postHoc !== "string") {
            policies.push({
              ...postHoc,
              name,
              description: `Guarded RouteLMT by the router's guard, the post-hoc one (ROUTER.json guarded_by; the ranking of guarded-qe). ${postHoc.description}`,
            });
            break;
          }
          notes.push(
            `guarded: the router's guard is post-hoc, but ${postHoc ?? "it is missing"}; guarded ranks by the in-model guard instead`,
          );
        }
        const riskAdjusted =
          router?.guard && heads?.risk && !vetoAsked ? riskAdjustedPolicy(router, heads, ids) : null;
        if (riskAdjusted) {
          policies.push(riskAdjusted);
          break;
        }
        const policy = vetoGuardPolicy(inputs, notes);
        if (typeof policy === "string") skip(name, policy);
        else policies.push(policy);
        break;
      }
      case "guarded-qe": {
        const confidenceGuarded =
          inputs.qeScore === undefined && gainScores
            ? confidenceGuardPolicy(router, gainScores, segments)
            : null;
        if (confidenceGuarded !== null && typeof confidenceGuarded !== "string") {
          policies.push(confidenceGuarded);
          break;
        }
        if (inputs.qeScore === undefined) {
          skip(
            name,
            confidenceGuarded ??
              "needs a router with a post-hoc guard (train fits one when the records carry the small model's confidence, small_mean_logprob, or the large model's likelihood of the small translation, large_logprob_of_small) or --qe SCORE, a quality-estimate score of the small output",
          );
          break;
        }
        const policy = guardedQePolicy(inputs, gainScores ?? null, notes);
        if (typeof policy === "string") skip(name, policy);
        else policies.push(policy);
        break;
      }
      case "length":
        policies.push({
          name,
          family: "baseline",
          description: "Length: longest source (characters) first.",
          realizations: [
            rankingRealization(
              Float64Array.from(segments.records, (record) => record.src_chars),
              ids,
            ),
          ],
          cost: null,
        });
        break;
      case "entropy": {
        const known = segments.records.filter((record) => record.entropy !== null).length;
        if (known === 0) {
          skip(name, "no segment has an entropy value");
          break;
        }
        if (known < count) notes.push(`entropy: ${count - known} segments without entropy are routed last`);
        policies.push({
          name,
          family: "baseline",
          description: "Entropy: highest small-model decoding entropy first.",
          realizations: [
            rankingRealization(
              Float64Array.from(segments.records, (record) => record.entropy ?? Number.NaN),
              ids,
            ),
          ],
          cost: null,
        });
        break;
      }
      case "random":
        policies.push({
          name,
          family: "baseline",
          description: `Random: segments in random order (measures averaged over ${RANDOM_SEEDS} seeds).`,
          realizations: Array.from({ length: RANDOM_SEEDS }, (_, offset) =>
            rankingRealization(randomScores(count, inputs.seed + offset), ids),
          ),
          cost: null,
        });
        break;
      case "oracle-gain":
        policies.push({
          name,
          family: "oracle",
          description: "Gain oracle: the true gain, highest first (reads the labels; the headroom).",
          realizations: [
            rankingRealization(
              Float64Array.from(
                ids,
                (_, index) => segments.outcomes.qualityLarge[index]! - segments.outcomes.qualitySmall[index]!,
              ),
              ids,
            ),
          ],
          cost: null,
        });
        break;
      case "oracle-quality":
        policies.push({
          name,
          family: "oracle",
          description: "Quality oracle: the true small-model quality, worst first (reads the labels).",
          realizations: [
            rankingRealization(
              Float64Array.from(segments.outcomes.qualitySmall, (quality) => -quality),
              ids,
            ),
          ],
          cost: null,
        });
        break;
      default: {
        const externalName = name.slice("external:".length);
        const external = inputs.externals.find((candidate) => candidate.name === externalName);
        if (!name.startsWith("external:") || !external)
          throw new UsageError(`unknown policy ${JSON.stringify(name)}`);
        const aligned = alignExternalScores(external, inputs.datasetIds, ids);
        if (aligned.unknownIds > 0) {
          notes.push(
            `${name}: ${aligned.unknownIds} ids in ${external.file} are not in the dataset and were ignored`,
          );
        }
        policies.push({
          name,
          family: "baseline",
          description: `External router ${externalName}: scores from ${external.file}, highest first.`,
          realizations: [rankingRealization(aligned.scores, ids)],
          cost: null,
        });
      }
    }
  }
  return { policies, skipped, notes };
}

/**
 * guarded, as trained: one ranking by the risk-adjusted score gain − λ·P(gain < −δ) with the λ
 * train chose (so the streaming controller starts from that score's training quantiles).
 */
function riskAdjustedPolicy(
  router: RouterFile,
  heads: HeadScores,
  ids: readonly string[],
): EvalPolicy | null {
  const guard = router.guard;
  if (!guard || !heads.gain || !heads.risk) return null;
  const scores = Float64Array.from(heads.gain, (_, row) => guardedScore(router, heads, row)!);
  return {
    name: "guarded",
    family: "router",
    description: `Guarded RouteLMT: predicted gain − λ · predicted P(gain < −${formatThreshold(guard.severe_delta)}), λ = ${formatThreshold(guard.lambda)} (chosen in training: the largest that kept cross-validated MeanDelta within ${formatThreshold(100 * guard.tolerance)} % of the unguarded router at every budget), highest first.`,
    realizations: [rankingRealization(scores, ids)],
    streamingStartScores: guard.score_quantiles,
    cost: null,
  };
}

/**
 * guarded-qe, as trained: one ranking by gain − λ · the router's post-hoc signal of the decoded small
 * translation (the small model's confidence in it or the large model's likelihood of it), with the λ
 * train chose; null when the router has no post-hoc guard, the skip reason when segments lack the
 * signal it reads.
 */
function confidenceGuardPolicy(
  router: RouterFile | null,
  gainScores: Float64Array,
  segments: EvalSegments,
): EvalPolicy | string | null {
  const guard = router?.guard_qe;
  const signal = router ? qeSignalOf(router) : null;
  if (!router || !guard || !signal) return null;
  const scores = Float64Array.from(
    gainScores,
    (gain, row) => qeGuardedScore(router, posthocObservationOf(segments.records[row]!, gain)) ?? Number.NaN,
  );
  const missing = scores.filter((score) => !Number.isFinite(score)).length;
  if (missing > 0) {
    const field = signal === "large-likelihood" ? "large_logprob_of_small" : "small_mean_logprob";
    return `the router's post-hoc guard reads ${field} of each record, which ${missing} of ${scores.length} records lack (an engine that does not report it, or a collect run with --no-large-likelihood); or pass --qe SCORE to guard with a quality estimate`;
  }
  return {
    name: "guarded-qe",
    family: "router",
    description: guard.restack
      ? `Guarded after the small decode (post-hoc): the gain re-estimated from the predicted gain and ${guard.restack.inputs.slice(1).join(", ")} of the decoded small translation (a ridge regression fitted in training on out-of-fold predictions)${guard.lambda === 0 ? "" : ` − λ · ${signal === "large-likelihood" ? "the large model's" : "the small model's"} mean token log-probability of it, λ = ${formatThreshold(guard.lambda)}`}; kept in training as it routed no more cross-validated severe losses than the unguarded router, within ${formatThreshold(100 * guard.tolerance)} % of its MeanDelta at every budget; highest first.`
      : `Guarded by ${signal === "large-likelihood" ? "the large model's likelihood of the small translation" : "the small model's confidence"} (post-hoc): predicted gain − λ · ${signal === "large-likelihood" ? "the large model's" : "the small model's"} mean token log-probability of the decoded small translation, λ = ${formatThreshold(guard.lambda)} (chosen in training: the λ that cut cross-validated severe losses most while keeping MeanDelta within ${formatThreshold(100 * guard.tolerance)} % of the unguarded router at every budget), highest first.`,
    realizations: [rankingRealization(scores, segments.outcomes.ids)],
    streamingStartScores: guard.score_quantiles,
    cost: qeGuardReads(guard, "large-likelihood") ? LARGE_LIKELIHOOD_GUARD_COST : CONFIDENCE_GUARD_COST,
  };
}

/**
 * guarded with vetoes (routers trained without a risk-adjusted guard, or `--guard-quality` /
 * `--guard-risk` given): gain-head candidates, dropping those the quality head predicts are
 * already good or the risk head flags, refilled from the next candidates. Returns the skip reason
 * when the router has neither head.
 */
function vetoGuardPolicy(inputs: PolicyInputs, notes: string[]): EvalPolicy | string {
  const { segments, router, heads } = inputs;
  const orientation = segments.orientation;
  const qualityHead = router?.heads.quality;
  const riskHead = router?.heads.risk;
  const thresholds: GuardThresholds = {};
  const parts: string[] = [];
  if (qualityHead && heads?.quality) {
    thresholds.qualityPrediction =
      inputs.guardQuality !== undefined
        ? orientation * inputs.guardQuality
        : levelOf(
            qualityHead.score_quantiles.map((value) => orientation * value),
            DEFAULT_GUARD_LEVEL,
          );
    parts.push(
      `predicted quality ${orientation === 1 ? "≥" : "≤"} ${formatThreshold(orientation * thresholds.qualityPrediction)}${inputs.guardQuality === undefined ? " (90th percentile of the quality head's training scores)" : ""}`,
    );
  } else if (inputs.guardQuality !== undefined) {
    notes.push("--guard-quality ignored: the router has no quality head");
  }
  if (riskHead && heads?.risk) {
    thresholds.riskProbability = inputs.guardRisk ?? DEFAULT_GUARD_RISK;
    parts.push(`risk probability ≥ ${formatThreshold(thresholds.riskProbability)}`);
  } else if (inputs.guardRisk !== undefined) {
    notes.push("--guard-risk ignored: the router has no risk head");
  }
  if (parts.length === 0) return "the router has neither a quality nor a risk head to guard with";
  const signals: GuardSignals[] = Array.from({ length: segments.outcomes.ids.length }, (_, index) => ({
    qualityPrediction: heads?.quality ? orientation * heads.quality[index]! : null,
    riskProbability: heads?.risk ? heads.risk[index]! : null,
  }));
  return {
    name: "guarded",
    family: "router",
    description: `Guarded RouteLMT (vetoes): gain-head candidates, dropping those with ${parts.join(" or ")}, refilled from the next candidates.`,
    realizations: [guardedRealization(heads!.gain!, segments.outcomes.ids, signals, thresholds)],
    cost: null,
  };
}

/**
 * guarded-qe: the QE guard on the decoded small hypothesis. Candidates come from the gain head
 * when the router can score the data; without one, from the QE score itself (worst estimated small
 * output first), which is the classic QE-threshold router. Returns the skip reason when impossible.
 */
function guardedQePolicy(
  inputs: PolicyInputs,
  gainScores: Float64Array | null,
  notes: string[],
): EvalPolicy | string {
  const scoreName = inputs.qeScore;
  if (scoreName === undefined) return "needs --qe SCORE, a quality-estimate score of the small output";
  const { records, outcomes } = inputs.segments;
  if (!records.some((record) => record.scores[scoreName] !== undefined)) {
    const available = [...new Set(records.flatMap((record) => Object.keys(record.scores)))].sort();
    throw new UsageError(
      `--qe ${scoreName}: no such score in the dataset; available: ${available.join(", ") || "(none)"}`,
    );
  }
  const qe = Float64Array.from(records, (record) => record.scores[scoreName]?.small ?? Number.NaN);
  const known = qe.filter(Number.isFinite).length;
  if (known === 0) return `the dataset has no small-output value for score ${scoreName}`;
  if (known < qe.length)
    notes.push(`guarded-qe: ${qe.length - known} segments without ${scoreName} are never vetoed`);
  const threshold = inputs.qeThreshold ?? levelOf(qe, DEFAULT_GUARD_LEVEL);
  const signals: GuardSignals[] = Array.from(qe, (value) => ({
    smallQeScore: Number.isFinite(value) ? value : null,
  }));
  const candidates = gainScores ?? qe.map((value) => -value);
  const ranking = gainScores
    ? "gain-head candidates"
    : `candidates by ${scoreName} of the small output, lowest first`;
  const thresholdText = `${formatThreshold(threshold)}${inputs.qeThreshold === undefined ? " (90th percentile over the data)" : ""}`;
  return {
    name: "guarded-qe",
    family: gainScores ? "router" : "baseline",
    description: `Guarded by QE: ${ranking}, dropping those whose ${scoreName} of the decoded small output is ≥ ${thresholdText}.`,
    realizations: [guardedRealization(candidates, outcomes.ids, signals, { smallQeScore: threshold })],
    cost: GUARDED_QE_COST,
  };
}

function formatThreshold(value: number): string {
  return Number(value.toPrecision(4)).toString();
}
