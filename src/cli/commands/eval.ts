import path from "node:path";
import type { Command } from "commander";
import { loadDataset } from "../../dataset/index.js";
import { UsageError } from "../../errors/index.js";
import {
  buildPolicies,
  type ExternalScores,
  evalSegmentsFromDataset,
  parseExternalFlag,
  parsePolicyList,
  readExternalScores,
} from "../../eval/policies.js";
import { budgetTableText, formatBudget, formatNumber, writeReport } from "../../eval/report/index.js";
import { parseBudgets, runEval, seedFromEnvironment } from "../../eval/run-eval.js";
import { defaultSevereDelta } from "../../metrics/severe-delta.js";
import { assertRouterMatches, type HeadScores, loadRouter, predictHeads } from "../../probe/router-file.js";
import type { CliIo } from "../io.js";

interface EvalFlags {
  data: string;
  router?: string;
  policies?: string;
  budgets?: string;
  qe?: string;
  qeThreshold?: string;
  guardQuality?: string;
  guardRisk?: string;
  external: string[];
  severeDelta?: string;
  out?: string;
}

/** The budget whose table goes to stdout. */
const PRINTED_BUDGET = 0.3;

export function registerEval(program: Command, io: CliIo): void {
  program
    .command("eval")
    .description(
      "Evaluate routing policies on a dataset: quality–budget curves, batch and streaming measures, bootstrap CIs, and an HTML report",
    )
    .requiredOption("--data <dir>", "dataset directory (from collect or import)")
    .option("--router <file>", "ROUTER.json from train (router policies are skipped without it)")
    .option(
      "--policies <list>",
      "comma-separated: routelmt, routelmt-q, guarded, guarded-qe, length, entropy, random, external:NAME, oracle-gain, oracle-quality (default: all available)",
    )
    .option("--budgets <list>", "comma-separated budgets in [0, 1] (default 0, 0.05, …, 1)")
    .option(
      "--qe <score>",
      "dataset score holding a quality estimate of the small output (enables guarded-qe)",
    )
    .option(
      "--qe-threshold <x>",
      "guarded-qe drops candidates whose QE is ≥ x (default: its 90th percentile)",
    )
    .option(
      "--guard-quality <x>",
      "guarded drops candidates whose predicted quality is ≥ x (default: 90th percentile of the quality head's training scores)",
    )
    .option("--guard-risk <p>", "guarded drops candidates whose risk probability is ≥ p (default 0.5)")
    .option(
      "--external <name=file>",
      'external router scores, JSONL of {"id","score"} (repeatable)',
      (value: string, previous: string[]) => [...previous, value],
      [],
    )
    .option("--severe-delta <x>", "severe loss is gain < −x (default: per label metric)")
    .option("--out <dir>", "report directory (default: <data>/eval)")
    .action(async (flags: EvalFlags) => {
      await runEvalCommand(flags, io);
    });
}

function parseNumberFlag(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const parsed = Number(value);
  if (value.trim() === "" || !Number.isFinite(parsed)) {
    throw new UsageError(`${flag} expects a number, got ${JSON.stringify(value)}`);
  }
  return parsed;
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

async function runEvalCommand(flags: EvalFlags, io: CliIo): Promise<void> {
  const guardQuality = parseNumberFlag(flags.guardQuality, "--guard-quality");
  const guardRisk = parseNumberFlag(flags.guardRisk, "--guard-risk");
  const qeThreshold = parseNumberFlag(flags.qeThreshold, "--qe-threshold");
  const severeDeltaFlag = parseNumberFlag(flags.severeDelta, "--severe-delta");
  const budgets = flags.budgets === undefined ? undefined : parseBudgets(flags.budgets);
  if (qeThreshold !== undefined && flags.qe === undefined)
    throw new UsageError("--qe-threshold needs --qe SCORE");
  const seed = seedFromEnvironment();

  const dataset = await loadDataset(flags.data);
  const { meta } = dataset;
  const notes: string[] = [];
  let router = null;
  let heads: HeadScores | null = null;
  const segments = evalSegmentsFromDataset(meta, dataset.records);
  if (flags.router !== undefined) {
    router = await loadRouter(flags.router);
    if (dataset.features === null || meta.dim === null) {
      throw new UsageError(
        `${flags.data} has no features (replay data), so the router cannot score it; evaluate it without --router, or collect the data with the router's small model`,
      );
    }
    assertRouterMatches(
      router,
      {
        fingerprint: meta.small.fingerprint,
        layer: meta.small.layer,
        dim: meta.dim,
        template: meta.template,
      },
      `the dataset ${flags.data}`,
    );
    if (router.label_metric !== meta.label_metric) {
      notes.push(
        `the router was trained on ${router.label_metric} but the dataset's label metric is ${meta.label_metric}`,
      );
    }
    const allHeads = predictHeads(router, dataset.features, meta.n);
    heads = {};
    for (const [name, scores] of Object.entries(allHeads) as [keyof HeadScores, Float64Array][]) {
      heads[name] = Float64Array.from(segments.rows, (row) => scores[row]!);
    }
  }
  const externals = await readExternals(flags.external);
  const requested = parsePolicyList(
    flags.policies,
    externals.map((external) => external.name),
  );
  const policySet = buildPolicies(requested, {
    segments,
    router,
    heads,
    externals,
    datasetIds: dataset.records.map((record) => record.id),
    qeScore: flags.qe,
    qeThreshold,
    guardQuality,
    guardRisk,
    seed,
  });
  notes.push(...policySet.notes);
  if (segments.unlabelled > 0) notes.push(`${segments.unlabelled} segments without a label were left out`);
  for (const skip of policySet.skipped) io.stderr(`note: ${skip.name} skipped: ${skip.reason}\n`);
  for (const note of notes) io.stderr(`note: ${note}\n`);
  if (policySet.policies.length === 0) throw new UsageError("no policy left to evaluate");

  const summary = runEval(segments, policySet.policies, {
    budgets,
    severeDelta: severeDeltaFlag ?? defaultSevereDelta(meta.label_metric),
    seed,
    labelMetric: meta.label_metric,
    skipped: policySet.skipped,
    notes,
  });
  const outDirectory = flags.out ?? path.join(flags.data, "eval");
  const files = await writeReport(summary, outDirectory);

  const printed =
    summary.budgets.find((budget) => Math.abs(budget - PRINTED_BUDGET) < 1e-9) ??
    summary.budgets.reduce((best, budget) =>
      Math.abs(budget - PRINTED_BUDGET) < Math.abs(best - PRINTED_BUDGET) ? budget : best,
    );
  io.stdout(
    `${summary.label_metric}, N = ${summary.n}: small only ${formatNumber(summary.small_only)}, large only ${formatNumber(summary.large_only)}\n`,
  );
  io.stdout(`At p = ${formatBudget(printed)}:\n${budgetTableText(summary, printed)}\n`);
  const interval = summary.ci[String(printed)];
  if (interval) {
    io.stdout(
      `RouteLMT − ${interval.vs} MeanDelta: ${formatNumber(interval.diff)}, 95 % CI [${formatNumber(interval.lo)}, ${formatNumber(interval.hi)}]\n`,
    );
  }
  io.stdout(`report: ${files.html}\n`);
}
