import path from "node:path";
import { datasetFeatures, loadDataset } from "../dataset/index.js";
import { UsageError } from "../errors/index.js";
import { severeDeltaFor } from "../metrics/severe-delta.js";
import {
  assertRouterMatches,
  type HeadScores,
  languagePairName,
  loadRouter,
  predictHeads,
  type RouterFile,
  trainedPairNames,
} from "../probe/router-file.js";
import { type CostBasis, segmentWeights } from "./cost-curves.js";
import {
  buildPolicies,
  type ExternalScores,
  evalSegmentsFromDataset,
  parseExternalFlag,
  parsePolicyList,
  readExternalScores,
} from "./policies.js";
import { budgetTableText, formatBudget, formatNumber, writeReport } from "./report/index.js";
import { routerFindings } from "./router-findings.js";
import { type EvalSummary, REPORTED_BUDGETS, runEval, seedFromEnvironment } from "./run-eval.js";

/** What `routelmt eval` (and the demo) evaluates. */
export interface EvaluateDatasetOptions {
  data: string;
  router?: string;
  policies?: string;
  budgets?: number[];
  qe?: string;
  qeThreshold?: number;
  guardQuality?: number;
  guardRisk?: number;
  /** `NAME=FILE` external score files. */
  external?: string[];
  severeDelta?: number;
  /** Report directory. Defaults to `<data>/eval`. */
  out?: string;
  /** Also draw quality against realized tokens or cost (the large model's, from the dataset's counts). */
  costBasis?: CostBasis;
  /** Receives notes (skipped policies, label mismatches) as they arise. */
  onNote?: (note: string) => void;
}

export interface EvaluatedDataset {
  summary: EvalSummary;
  files: Awaited<ReturnType<typeof writeReport>>;
}

async function readExternals(values: readonly string[]): Promise<ExternalScores[]> {
  const externals: ExternalScores[] = [];
  for (const value of values) {
    const { name, file } = parseExternalFlag(value);
    if (externals.some((external) => external.name === name)) {
      throw new UsageError(`--external ${name} is given twice`);
    }
    externals.push(await readExternalScores(name, file));
  }
  return externals;
}

/**
 * A note when some segments are of language pairs the router was not trained on (its scores there
 * are extrapolation), else null. Routers without known pairs ({@link trainedPairNames}) and
 * segments without languages are not judged, as `serve` does.
 */
export function unseenPairs(
  router: Pick<RouterFile, "language_pairs">,
  records: readonly { src_lang: string | null; tgt_lang: string | null }[],
): string | null {
  const known = trainedPairNames(router);
  if (known === null) return null;
  const unseen = new Map<string, number>();
  for (const record of records) {
    if (record.src_lang === null && record.tgt_lang === null) continue;
    const name = languagePairName(record.src_lang ?? "?", record.tgt_lang ?? "?");
    if (!known.has(name)) unseen.set(name, (unseen.get(name) ?? 0) + 1);
  }
  if (unseen.size === 0) return null;
  const count = [...unseen.values()].reduce((sum, value) => sum + value, 0);
  return `${count} of ${records.length} segments are of language pairs the router was not trained on (${[...unseen.keys()].join(", ")}; trained on ${[...known].join(", ")}): its scores there are extrapolation`;
}

/**
 * Loads a dataset (and a router), runs every requested policy at every budget and writes the
 * report files.
 */
export async function evaluateDataset(options: EvaluateDatasetOptions): Promise<EvaluatedDataset> {
  const note = options.onNote ?? (() => {});
  if (options.qeThreshold !== undefined && options.qe === undefined)
    throw new UsageError("--qe-threshold needs --qe SCORE");
  const seed = seedFromEnvironment();
  const dataset = await loadDataset(options.data);
  const { meta } = dataset;
  const notes: string[] = [];
  let router = null;
  let heads: HeadScores | null = null;
  const segments = evalSegmentsFromDataset(meta, dataset.records);
  if (options.router !== undefined) {
    router = await loadRouter(options.router);
    if (dataset.features === null || meta.dim === null) {
      throw new UsageError(
        `${options.data} has no features (replay data), so the router cannot score it; evaluate it without --router, or collect the data with the router's small model`,
      );
    }
    const blocks = assertRouterMatches(
      router,
      { fingerprint: meta.small.fingerprint, template: meta.template, dim: meta.dim, blocks: dataset.blocks },
      `the dataset ${options.data}`,
    );
    const unseen = unseenPairs(router, dataset.records);
    if (unseen !== null) notes.push(unseen);
    if (router.label_metric !== meta.label_metric) {
      notes.push(
        `the router was trained on ${router.label_metric} but the dataset's label metric is ${meta.label_metric}`,
      );
    }
    // Exactly the router's blocks, in its order: the dataset may hold more views than it reads (and
    // computes the source-text blocks from its records' sources).
    const features = datasetFeatures(
      dataset,
      blocks.map((block) => block.name),
    );
    const allHeads = predictHeads(router, features.features, meta.n);
    heads = {};
    for (const [name, scores] of Object.entries(allHeads) as [keyof HeadScores, Float64Array][]) {
      heads[name] = Float64Array.from(segments.rows, (row) => scores[row]!);
    }
  }
  const externals = await readExternals(options.external ?? []);
  const requested = parsePolicyList(
    options.policies,
    externals.map((external) => external.name),
  );
  const policySet = buildPolicies(requested, {
    segments,
    router,
    heads,
    externals,
    datasetIds: dataset.records.map((record) => record.id),
    qeScore: options.qe,
    qeThreshold: options.qeThreshold,
    guardQuality: options.guardQuality,
    guardRisk: options.guardRisk,
    seed,
  });
  notes.push(...policySet.notes);
  if (segments.unlabelled > 0) notes.push(`${segments.unlabelled} segments without a label were left out`);
  for (const skip of policySet.skipped) note(`${skip.name} skipped: ${skip.reason}`);
  for (const text of notes) note(text);
  if (policySet.policies.length === 0) throw new UsageError("no policy left to evaluate");

  let severeDelta = options.severeDelta;
  if (severeDelta === undefined) {
    const chosen = severeDeltaFor(
      meta.label_metric,
      segments.records.flatMap((record) => [record.q_small, record.q_large]),
    );
    severeDelta = chosen.delta;
    if (chosen.note) note(`${chosen.note}; --severe-delta sets it`);
  }
  const costs = options.costBasis
    ? { basis: options.costBasis, weights: segmentWeights(segments.records, options.costBasis) }
    : undefined;
  const summary = runEval(segments, policySet.policies, {
    ...(costs ? { costs } : {}),
    budgets: options.budgets,
    severeDelta,
    seed,
    labelMetric: meta.label_metric,
    skipped: policySet.skipped,
    notes,
  });
  if (router) {
    summary.router = routerFindings(router, heads, segments, REPORTED_BUDGETS, severeDelta);
  }
  const files = await writeReport(summary, options.out ?? path.join(options.data, "eval"));
  return { summary, files };
}

/** The budget whose table is printed on the terminal. */
const PRINTED_BUDGET = 0.3;

/** The terminal summary: qualities, the table at p = 0.3 (or the nearest budget), the CI and the report path. */
export function formatEvalSummary(summary: EvalSummary, reportPath: string): string {
  const printed =
    summary.budgets.find((budget) => Math.abs(budget - PRINTED_BUDGET) < 1e-9) ??
    summary.budgets.reduce((best, budget) =>
      Math.abs(budget - PRINTED_BUDGET) < Math.abs(best - PRINTED_BUDGET) ? budget : best,
    );
  let text = `${summary.label_metric}, N = ${summary.n}: small only ${formatNumber(summary.small_only)}, large only ${formatNumber(summary.large_only)}\n`;
  text += `At p = ${formatBudget(printed)}:\n${budgetTableText(summary, printed)}\n`;
  const interval = summary.ci[String(printed)];
  if (interval) {
    text += `RouteLMT − ${interval.vs} MeanDelta: ${formatNumber(interval.diff)}, 95 % CI [${formatNumber(interval.lo)}, ${formatNumber(interval.hi)}]\n`;
  }
  return `${text}report: ${reportPath}\n`;
}
