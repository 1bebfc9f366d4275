import type { Command } from "commander";
import { UsageError } from "../../errors/index.js";
import { evaluateDataset, formatEvalSummary } from "../../eval/evaluate-dataset.js";
import { parseBudgets } from "../../eval/run-eval.js";
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

async function runEvalCommand(flags: EvalFlags, io: CliIo): Promise<void> {
  const { summary, files } = await evaluateDataset({
    data: flags.data,
    router: flags.router,
    policies: flags.policies,
    budgets: flags.budgets === undefined ? undefined : parseBudgets(flags.budgets),
    qe: flags.qe,
    qeThreshold: parseNumberFlag(flags.qeThreshold, "--qe-threshold"),
    guardQuality: parseNumberFlag(flags.guardQuality, "--guard-quality"),
    guardRisk: parseNumberFlag(flags.guardRisk, "--guard-risk"),
    external: flags.external,
    severeDelta: parseNumberFlag(flags.severeDelta, "--severe-delta"),
    out: flags.out,
    onNote: (note) => io.stderr(`note: ${note}\n`),
  });
  io.stdout(formatEvalSummary(summary, files.html));
}
