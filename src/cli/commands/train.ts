import type { Command } from "commander";
import { type Dataset, loadDataset } from "../../dataset/index.js";
import { UsageError } from "../../errors/index.js";
import { defaultSevereDelta } from "../../metrics/severe-delta.js";
import { buildRouter } from "../../probe/build-router.js";
import { HEAD_NAMES, type HeadName } from "../../probe/router-file.js";
import type { ProbeKind } from "../../probe/train-router.js";
import { AtomicFileWriter } from "../../util/atomic-file.js";
import type { CliIo } from "../io.js";
import { finiteNumber, positiveInteger } from "../options.js";

interface TrainFlags {
  data: string[];
  out: string;
  heads: string;
  probe: string;
  folds: number;
  seed: number;
  riskDelta?: number;
}

export function registerTrain(program: Command, io: CliIo): void {
  program
    .command("train")
    .description("Fit the router's probes (gain, quality, risk) on collected datasets and write ROUTER.json")
    .requiredOption(
      "--data <dir>",
      "dataset directory from collect (repeatable)",
      (v, prev: string[]) => [...prev, v],
      [],
    )
    .requiredOption("--out <file>", "router file to write")
    .option("--heads <list>", "heads to fit: gain, quality, risk", "gain,quality,risk")
    .option("--probe <kind>", "ridge (closed form, λ by CV) or mlp (one hidden layer)", "ridge")
    .option("--folds <k>", "cross-validation folds", positiveInteger("--folds"), 5)
    .option(
      "--seed <n>",
      "seed of folds and MLP initialisation",
      finiteNumber("--seed"),
      Number(process.env.ROUTELMT_SEED ?? 0),
    )
    .option(
      "--risk-delta <x>",
      "risk label is gain < -x (default per metric: 10 for chrF/BLEU, 5 for MQM, 0.1 for COMET-like)",
      finiteNumber("--risk-delta"),
    )
    .action(async (flags: TrainFlags) => {
      const heads = parseHeads(flags.heads);
      const probe = parseProbe(flags.probe);
      const datasets = [];
      for (const directory of flags.data) datasets.push(await loadDataset(directory));
      // Opened before training, so an unusable --out fails at once; replaces --out only when complete.
      const output = await AtomicFileWriter.open(flags.out);
      try {
        await trainAndWrite(datasets, { heads, probe }, flags, output, io);
      } finally {
        await output.discard();
      }
    });
}

async function trainAndWrite(
  datasets: Dataset[],
  { heads, probe }: { heads: HeadName[]; probe: ProbeKind },
  flags: TrainFlags,
  output: AtomicFileWriter,
  io: CliIo,
): Promise<void> {
  const labelMetric = datasets[0]?.meta.label_metric ?? "chrf";
  const riskDelta = flags.riskDelta ?? defaultSevereDelta(labelMetric);
  const started = performance.now();
  const { router, notes, skipped } = buildRouter(datasets, {
    heads,
    probe,
    folds: flags.folds,
    seed: flags.seed,
    riskDelta,
    onHead: (message) => io.stderr(`${message}\n`),
  });
  for (const note of notes) io.stderr(`note: ${note}\n`);
  await output.write(`${JSON.stringify(router)}\n`);
  await output.commit();
  const format = (value: number | null | undefined) =>
    value === null || value === undefined ? "n/a" : value.toFixed(3);
  const lines = [
    `trained on ${router.training.n} segments (${skipped} without a label skipped), ${flags.folds}-fold CV, label ${router.label_metric}, probe ${probe}, ${((performance.now() - started) / 1000).toFixed(1)} s`,
    "head     target            cv_spearman  cv_pearson  spearman_vs_gain  cv_mse      lambda",
  ];
  for (const name of HEAD_NAMES) {
    const head = router.heads[name];
    if (!head) continue;
    const r = head.report;
    lines.push(
      `${name.padEnd(8)} ${r.target.padEnd(17)} ${format(r.cv_spearman).padStart(11)}  ${format(r.cv_pearson).padStart(10)}  ${format(r.cv_spearman_gain).padStart(16)}  ${format(r.cv_mse).padStart(10)}  ${r.lambda === null ? "n/a" : r.lambda.toExponential(1)}${r.cv_auc !== undefined ? `  auc ${format(r.cv_auc)}` : ""}`,
    );
  }
  lines.push(`router written to ${flags.out}`);
  io.stdout(`${lines.join("\n")}\n`);
}

function parseProbe(text: string): ProbeKind {
  if (text !== "ridge" && text !== "mlp")
    throw new UsageError(`--probe must be ridge or mlp, got ${JSON.stringify(text)}`);
  return text;
}

function parseHeads(text: string): HeadName[] {
  const heads = text
    .split(",")
    .map((head) => head.trim())
    .filter(Boolean);
  if (heads.length === 0) throw new UsageError("--heads needs at least one of gain, quality, risk");
  for (const head of heads) {
    if (!HEAD_NAMES.includes(head as HeadName))
      throw new UsageError(`unknown head ${JSON.stringify(head)} (expected gain, quality, risk)`);
  }
  return [...new Set(heads)] as HeadName[];
}
