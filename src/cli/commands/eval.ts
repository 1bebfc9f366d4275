import { type Command, Option } from "commander";
import { UsageError } from "../../errors/index.js";
import { costUnits } from "../../eval/cost-curves.js";
import { evaluateDataset, formatEvalSummary } from "../../eval/evaluate-dataset.js";
import { parseBudgets } from "../../eval/run-eval.js";
import type { CliIo } from "../io.js";
import { finiteNumber, nonNegativeNumber } from "../options.js";

interface EvalFlags {
  data: string;
  router?: string;
  policies?: string;
  budgets?: string;
  qe?: string;
  qeThreshold?: number;
  guardQuality?: number;
  guardRisk?: number;
  external: string[];
  severeDelta?: number;
  out?: string;
  budgetUnit?: (typeof costUnits)[number];
  largeInputPrice?: number;
  largeOutputPrice?: number;
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
      finiteNumber("--qe-threshold"),
    )
    .option(
      "--guard-quality <x>",
      "guarded drops candidates whose predicted quality is ≥ x (default: 90th percentile of the quality head's training scores)",
      finiteNumber("--guard-quality"),
    )
    .option(
      "--guard-risk <p>",
      "guarded drops candidates whose risk probability is ≥ p (default 0.5)",
      finiteNumber("--guard-risk"),
    )
    .option(
      "--external <name=file>",
      'external router scores, JSONL of {"id","score"} (repeatable)',
      (value: string, previous: string[]) => [...previous, value],
      [],
    )
    .option(
      "--severe-delta <x>",
      "severe loss is gain < −x (default: per label metric)",
      nonNegativeNumber("--severe-delta"),
    )
    .option("--out <dir>", "report directory (default: <data>/eval)")
    .addOption(
      new Option(
        "--budget-unit <unit>",
        "also draw quality against realized tokens or cost of the large model (curves-cost.csv, pareto-cost.svg), from the token counts collect keeps",
      ).choices(costUnits),
    )
    .option(
      "--large-input-price <x>",
      "large model's price per 1000 input tokens (--budget-unit cost)",
      finiteNumber("--large-input-price"),
    )
    .option(
      "--large-output-price <x>",
      "large model's price per 1000 output tokens (--budget-unit cost)",
      finiteNumber("--large-output-price"),
    )
    .action(async (flags: EvalFlags) => {
      await runEvalCommand(flags, io);
    });
}

async function runEvalCommand(flags: EvalFlags, io: CliIo): Promise<void> {
  const pricesGiven = flags.largeInputPrice !== undefined || flags.largeOutputPrice !== undefined;
  if (pricesGiven && flags.budgetUnit !== "cost") {
    throw new UsageError("--large-input-price and --large-output-price apply to --budget-unit cost");
  }
  if (flags.budgetUnit === "cost") {
    if (flags.largeInputPrice === undefined || flags.largeOutputPrice === undefined) {
      throw new UsageError("--budget-unit cost needs --large-input-price and --large-output-price");
    }
    if (flags.largeInputPrice < 0 || flags.largeOutputPrice < 0) {
      throw new UsageError("--large-input-price and --large-output-price must be ≥ 0");
    }
    // As serve refuses: every segment would cost 0, and every budget would route everything.
    if (flags.largeInputPrice === 0 && flags.largeOutputPrice === 0) {
      throw new UsageError(
        "--large-input-price and --large-output-price are both 0: a budget in cost needs a price",
      );
    }
  }
  const { summary, files } = await evaluateDataset({
    ...(flags.budgetUnit
      ? {
          costBasis: {
            unit: flags.budgetUnit,
            ...(flags.budgetUnit === "cost"
              ? { prices: { input: flags.largeInputPrice!, output: flags.largeOutputPrice! } }
              : {}),
          },
        }
      : {}),
    data: flags.data,
    router: flags.router,
    policies: flags.policies,
    budgets: flags.budgets === undefined ? undefined : parseBudgets(flags.budgets),
    qe: flags.qe,
    qeThreshold: flags.qeThreshold,
    guardQuality: flags.guardQuality,
    guardRisk: flags.guardRisk,
    external: flags.external,
    severeDelta: flags.severeDelta,
    out: flags.out,
    onNote: (note) => io.stderr(`note: ${note}\n`),
  });
  io.stdout(formatEvalSummary(summary, files.html));
}
