import type { Command } from "commander";
import { type Dataset, loadDataset } from "../../dataset/index.js";
import { InputError, UsageError } from "../../errors/index.js";
import { severeDeltaFor } from "../../metrics/severe-delta.js";
import { type BuiltRouter, buildRouter, isTrainingRow } from "../../probe/build-router.js";
import {
  DEFAULT_GUARD_TOLERANCE,
  GUARD_KINDS,
  type GuardKind,
  type GuardReport,
} from "../../probe/guard-choice.js";
import {
  DEFAULT_INNER_FOLDS,
  DEFAULT_SELECTION_BUDGETS,
  SELECTABLE_PROBES,
  type SelectableProbe,
} from "../../probe/probe-selection.js";
import { HEAD_NAMES, type HeadName, type RouterFile } from "../../probe/router-file.js";
import type { ProbeKind } from "../../probe/train-router.js";
import { AtomicFileWriter, writeFileAtomic } from "../../util/atomic-file.js";
import type { CliIo } from "../io.js";
import { finiteNumber, nonNegativeNumber, positiveInteger } from "../options.js";

interface TrainFlags {
  data: string[];
  out: string;
  heads: string;
  probe: string;
  folds: number;
  seed: number;
  riskDelta?: number;
  select: string;
  probes: string;
  budgets: string;
  innerFolds: number;
  blocks?: string;
  sourceBlocks?: string;
  guardTolerance: number;
  guard: string;
}

export function registerTrain(program: Command, io: CliIo): void {
  program
    .command("train")
    .description(
      "Choose the gain probe's feature blocks and kind by nested CV, fit the router's probes (gain, quality, risk) and the guard, and write ROUTER.json",
    )
    .requiredOption(
      "--data <dir>",
      "dataset directory from collect (repeatable)",
      (v, prev: string[]) => [...prev, v],
      [],
    )
    .requiredOption("--out <file>", "router file to write")
    .option("--heads <list>", "heads to fit: gain, quality, risk", "gain,quality,risk")
    .option(
      "--select <on|off>",
      "on: choose the gain head's feature blocks and probe kind by nested CV; off: one ridge (or --probe) on every block, as before",
      "on",
    )
    .option(
      "--probes <list>",
      "probe kinds the selection compares: ridge, ridge-rank (ridge on normal scores of the gain), mlp",
      SELECTABLE_PROBES.join(","),
    )
    .option(
      "--budgets <list>",
      "budgets p of MeanDelta@p that the selection, the learning curve and the guard judge by",
      DEFAULT_SELECTION_BUDGETS.join(","),
    )
    .option(
      "--blocks <list>",
      "feature blocks to consider (default: every block of the data, and the source-text blocks when selecting)",
    )
    .option(
      "--source-blocks <on|off>",
      "offer the blocks computed from the source text, words (a hashed bag of its words) and length (default: on with --select on, where CV keeps them only if they pay)",
    )
    .option(
      "--probe <kind>",
      "ridge or mlp: the quality and risk heads (and the gain head with --select off)",
      "ridge",
    )
    .option(
      "--folds <k>",
      "cross-validation folds (the outer folds of the selection)",
      positiveInteger("--folds"),
      5,
    )
    .option(
      "--inner-folds <k>",
      "inner folds of the selection (they choose the ridge penalty)",
      positiveInteger("--inner-folds"),
      DEFAULT_INNER_FOLDS,
    )
    .option(
      "--guard-tolerance <x>",
      "share of MeanDelta the guard may cost at any budget (chooses its λ)",
      finiteNumber("--guard-tolerance"),
      DEFAULT_GUARD_TOLERANCE,
    )
    .option(
      "--guard <kind>",
      "the guard the guarded policy ranks by: in-model (from the prefill, nothing decoded first), post-hoc (decode the small translation and score it before deciding), or auto: in-model when its λ cuts cross-validated severe losses, else post-hoc when that guard changes the ranking",
      "auto",
    )
    .option(
      "--seed <n>",
      "seed of folds and MLP initialisation",
      finiteNumber("--seed"),
      Number(process.env.ROUTELMT_SEED ?? 0),
    )
    .option(
      "--risk-delta <x>",
      "risk label is gain < -x (default per metric: 10 for chrF/BLEU, 5 for MQM, 0.1 for COMET-like, 2.5 for MetricX)",
      nonNegativeNumber("--risk-delta"),
    )
    .action(async (flags: TrainFlags) => {
      const heads = parseHeads(flags.heads);
      const probe = parseProbe(flags.probe);
      const select = parseSwitch(flags.select, "--select");
      const probes = parseProbes(flags.probes);
      const budgets = parseSelectionBudgets(flags.budgets);
      if (flags.innerFolds < 2) throw new UsageError("--inner-folds must be at least 2");
      if (!(flags.guardTolerance >= 0 && flags.guardTolerance < 1))
        throw new UsageError(`--guard-tolerance must be in [0, 1), got ${flags.guardTolerance}`);
      const guard = parseGuardKind(flags.guard);
      const sourceBlocks =
        flags.sourceBlocks === undefined ? undefined : parseSwitch(flags.sourceBlocks, "--source-blocks");
      const blocks = flags.blocks
        ?.split(",")
        .map((name) => name.trim())
        .filter(Boolean);
      const datasets = [];
      for (const directory of flags.data) datasets.push(await loadDataset(directory));
      if (guard === "post-hoc") checkPostHocSignal(datasets);
      // Checked before training, so an unusable --out fails at once; replaced only when complete. No
      // temporary file exists while training: its CPU-bound work would hold an interrupt's cleanup.
      await AtomicFileWriter.check(flags.out);
      await trainAndWrite(
        datasets,
        { heads, probe, select, probes, budgets, blocks, sourceBlocks, guard },
        flags,
        io,
      );
    });
}

interface TrainChoices {
  heads: HeadName[];
  probe: ProbeKind;
  select: boolean;
  probes: SelectableProbe[];
  budgets: number[];
  blocks: string[] | undefined;
  sourceBlocks: boolean | undefined;
  guard: GuardKind | "auto";
}

async function trainAndWrite(
  datasets: Dataset[],
  choices: TrainChoices,
  flags: TrainFlags,
  io: CliIo,
): Promise<void> {
  const labelMetric = datasets[0]?.meta.label_metric ?? "chrf";
  let riskDelta = flags.riskDelta;
  if (riskDelta === undefined) {
    const chosen = severeDeltaFor(
      labelMetric,
      datasets.flatMap((dataset) => dataset.records.flatMap((record) => [record.q_small, record.q_large])),
    );
    riskDelta = chosen.delta;
    if (chosen.note) io.stderr(`note: ${chosen.note}; --risk-delta sets it\n`);
  }
  const started = performance.now();
  const built = buildRouter(datasets, {
    heads: choices.heads,
    probe: choices.probe,
    folds: flags.folds,
    seed: flags.seed,
    riskDelta,
    select: choices.select,
    probes: choices.probes,
    budgets: choices.budgets,
    innerFolds: flags.innerFolds,
    guardTolerance: flags.guardTolerance,
    guard: choices.guard,
    blocks: choices.blocks,
    sourceBlocks: choices.sourceBlocks,
    onHead: (message) => io.stderr(`${message}\n`),
    onProgress: (message) => io.stderr(`candidate ${message}\n`),
  });
  const { router, notes } = built;
  for (const note of notes) io.stderr(`note: ${note}\n`);
  // A router without a head routes nothing: every policy that reads one would be skipped later.
  if (Object.keys(router.heads).length === 0) {
    throw new InputError(
      `no head could be trained (asked: ${choices.heads.join(", ")}; see the notes above); ${flags.out} was not written`,
    );
  }
  await writeFileAtomic(flags.out, `${JSON.stringify(router)}\n`);
  const totalSeconds = (performance.now() - started) / 1000;
  io.stdout(
    `${trainingSummary(built, flags, choices, totalSeconds).join("\n")}\nrouter written to ${flags.out}\n`,
  );
}

function format(value: number | null | undefined, digits = 3): string {
  return value === null || value === undefined || !Number.isFinite(value) ? "n/a" : value.toFixed(digits);
}

function percent(value: number | null | undefined): string {
  return value === null || value === undefined || !Number.isFinite(value)
    ? "n/a"
    : `${(100 * value).toFixed(1)}%`;
}

/** A difference of rates in percentage points: cuts of a few hundredths are real and must not print as 0.0. */
function points(value: number): string {
  return Number.isFinite(value) ? (100 * value).toFixed(2) : "n/a";
}

/** The selection table: one line per candidate, the chosen one and the default marked. */
export function selectionTable(router: RouterFile): string[] {
  const selection = router.selection;
  if (!selection) return [];
  const budgets = selection.budgets.map((budget) => `MD@${budget}`.padStart(8)).join(" ");
  const lines = [
    `selection (${selection.folds} outer × ${selection.inner_folds} inner folds, ${selection.seconds.toFixed(1)} s): ${selection.rule}`,
    `   ${"blocks".padEnd(34)} ${"probe".padEnd(10)} ${"dim".padStart(6)} ${"form".padEnd(6)} ${budgets}  ${"mean ± se".padStart(13)}  spearman  ${"lambda".padStart(7)}  ${"time".padStart(6)}`,
  ];
  selection.candidates.forEach((candidate, index) => {
    const mark = index === selection.chosen ? "*" : index === selection.default ? "d" : " ";
    const stage = candidate.stage === "screen" ? " (screen)" : "";
    lines.push(
      `${mark}  ${(candidate.blocks.join("+") + stage).padEnd(34)} ${candidate.probe.padEnd(10)} ${String(candidate.dim).padStart(6)} ${(candidate.form ?? "-").padEnd(6)} ${candidate.mean_delta.map((value) => format(value, 2).padStart(8)).join(" ")}  ${`${format(candidate.score, 2)} ± ${format(candidate.score_se, 2)}`.padStart(13)}  ${format(candidate.spearman).padStart(8)}  ${(candidate.lambda === null ? "-" : candidate.lambda.toExponential(0)).padStart(7)}  ${`${candidate.seconds.toFixed(1)}s`.padStart(6)}`,
    );
  });
  const chosen = selection.candidates[selection.chosen]!;
  const versus = selection.versus_default;
  lines.push(
    `chosen (*): ${chosen.blocks.join("+")}, ${chosen.probe}${versus ? `; vs the default last:final ridge (d): ${versus.diff >= 0 ? "+" : ""}${format(versus.diff, 2)} ± ${format(versus.se, 2)} mean MeanDelta on the folds that chose it` : ""}`,
  );
  const estimate = selection.estimate;
  if (estimate) {
    const against = estimate.versus_default;
    lines.push(
      `the choice out of sample (bootstrap bias-corrected CV, ${estimate.resamples} resamples; the chosen row is the best of ${selection.candidates.length} on the same folds, so its own score runs high): mean MeanDelta ${format(estimate.score, 2)} [${format(estimate.lo, 2)}, ${format(estimate.hi, 2)}]${against ? `, vs the default ${against.diff >= 0 ? "+" : ""}${format(against.diff, 2)} [${format(against.lo, 2)}, ${format(against.hi, 2)}]` : ""}`,
    );
  }
  return lines;
}

function trainingSummary(
  built: BuiltRouter,
  flags: TrainFlags,
  choices: Pick<TrainChoices, "probe" | "guard">,
  totalSeconds: number,
): string[] {
  const probe = choices.probe;
  const { router, skipped, seconds } = built;
  const lines = [
    `trained on ${router.training.n} segments (${skipped} without a label skipped), ${flags.folds}-fold CV, label ${router.label_metric}, feature blocks ${router.feature.blocks?.join(",") ?? router.feature.layer} (dim ${router.feature.dim}), ${totalSeconds.toFixed(1)} s (selection ${seconds.selection.toFixed(1)} s, learning curve ${seconds.learning_curve.toFixed(1)} s, heads ${seconds.heads.toFixed(1)} s, guard ${seconds.guard.toFixed(1)} s)`,
    ...selectionTable(router),
  ];
  const curve = router.learning_curve;
  if (curve) {
    lines.push(
      `learning curve (mean MeanDelta over the budgets, 95 % CI over folds): ${curve.points
        .map(
          (point) =>
            `${(100 * point.share).toFixed(0)}% (${point.rows} rows) ${format(point.mean_delta, 2)} [${format(point.lo, 2)}, ${format(point.hi, 2)}]`,
        )
        .join("; ")}`,
      curve.reading,
    );
  }
  if (router.guard) {
    lines.push(guardLine(router.guard, "guard: rank by gain − λ·P(gain < −δ)", "guarded"));
  }
  if (router.guard_qe) {
    const qe = router.guard_qe;
    lines.push(
      guardLine(
        qe,
        `post-hoc guard: rank by ${qe.restack ? `the gain re-estimated after the decode from ${qe.restack.inputs.join(", ")}` : "gain"} − λ·${
          qe.signal === "large-likelihood"
            ? "(the large model's mean token log-probability of the small model's decoded translation)"
            : "(the small model's mean token log-probability of its decoded translation)"
        }`,
        "guarded-qe",
      ),
    );
    if (qe.signal_choice) {
      const mean = (values: readonly number[]) =>
        values.reduce((sum, value) => sum + value, 0) / values.length;
      lines.push(
        `post-hoc guard chosen: ${qe.signal}${qe.restack ? " on the re-estimated gain" : ""} (candidates: ${qe.signal_choice.candidates
          .map(
            (candidate) =>
              `${candidate.signal}${candidate.restack ? " on the re-estimated gain" : ""} λ = ${format(candidate.lambda, 2)}, CV severe loss ${percent(mean(candidate.severe_loss))}, MeanDelta ${format(mean(candidate.mean_delta), 2)}`,
          )
          .join("; ")}; mean over budgets)`,
      );
    }
  }
  if (router.guarded_by) lines.push(guardedByLine(router.guarded_by, router, choices.guard));
  lines.push(
    "head     target            probe       cv_spearman  cv_pearson  spearman_vs_gain  cv_mse      lambda",
  );
  for (const name of HEAD_NAMES) {
    const head = router.heads[name];
    if (!head) continue;
    const r = head.report;
    lines.push(
      `${name.padEnd(8)} ${r.target.padEnd(17)} ${r.probe.padEnd(10)} ${format(r.cv_spearman).padStart(11)}  ${format(r.cv_pearson).padStart(10)}  ${format(r.cv_spearman_gain).padStart(16)}  ${format(r.cv_mse).padStart(10)}  ${r.lambda === null ? "n/a" : r.lambda.toExponential(1)}${r.cv_auc !== undefined ? `  auc ${format(r.cv_auc)}` : ""}`,
    );
  }
  if (!router.selection && router.heads.gain) lines.push(`gain head: ${probe} on every block (--select off)`);
  return lines;
}

/** Which guard the guarded policy ranks by, and why, as train prints it. */
function guardedByLine(kind: GuardKind, router: RouterFile, requested: GuardKind | "auto"): string {
  if (requested !== "auto") return `guarded policy: the ${kind} guard (--guard ${requested})`;
  if (kind === "in-model")
    return router.guard && router.guard.lambda !== 0
      ? "guarded policy: the in-model guard (it cuts cross-validated severe losses without decoding first)"
      : "guarded policy: the in-model guard, λ = 0 (no guard cut cross-validated severe losses: guarded ranks as RouteLMT)";
  return "guarded policy: the post-hoc guard (the in-model guard cut no cross-validated severe losses beyond fold noise; serve decodes each request's small translation before deciding, --guard in-model keeps decisions at the prefill)";
}

/** One guard's choice and cross-validated trade-off, as train prints it. */
function guardLine(guard: GuardReport, ranking: string, policy: string): string {
  // A re-estimated guard is measured against the gain head alone, not its own λ = 0.
  const restackCut = guard.restack ? guard.restack_cut : undefined;
  const base = restackCut?.unguarded ?? guard.grid[0]!;
  const chosen = guard.grid.find((point) => point.lambda === guard.lambda) ?? guard.grid[0]!;
  const how = restackCut
    ? ` (the re-estimate${guard.lambda === 0 ? " alone: no λ term on it cut severe losses beyond fold noise" : ` with the λ that cut severe losses most within ${percent(guard.tolerance)} of its MeanDelta`}; against the gain head alone it cuts the cross-validated severe-loss rate by ${points(restackCut.diff)} ± ${points(restackCut.se)} percentage points)`
    : guard.lambda === 0
      ? ` (no affordable λ cut the cross-validated severe losses beyond fold noise: ${policy} ranks as routelmt)`
      : ` (fewest severe losses within ${percent(guard.tolerance)} of unguarded MeanDelta at every budget)`;
  const cut =
    guard.best_cut && !restackCut
      ? `; best affordable cut of the severe-loss rate ${points(guard.best_cut.diff)} ± ${points(guard.best_cut.se)} percentage points`
      : "";
  return `${ranking.replace("δ", String(guard.severe_delta))}, λ = ${format(guard.lambda, 2)}${how}${cut}; CV at ${guard.budgets.join("/")}: MeanDelta ${chosen.mean_delta.map((value) => format(value, 2)).join("/")} vs ${base.mean_delta.map((value) => format(value, 2)).join("/")} unguarded, severe loss ${chosen.severe_loss.map(percent).join("/")} vs ${base.severe_loss.map(percent).join("/")}`;
}

function parseProbe(text: string): ProbeKind {
  if (text !== "ridge" && text !== "mlp")
    throw new UsageError(`--probe must be ridge or mlp, got ${JSON.stringify(text)}`);
  return text;
}

function parseGuardKind(text: string): GuardKind | "auto" {
  const kinds: readonly string[] = ["auto", ...GUARD_KINDS];
  if (kinds.includes(text)) return text as GuardKind | "auto";
  throw new UsageError(`--guard must be one of ${kinds.join(", ")}, got ${JSON.stringify(text)}`);
}

/** `--guard post-hoc` needs a signal of the decoded translation on every training row: refused before training. */
function checkPostHocSignal(datasets: readonly Dataset[]): void {
  const carries = (field: "small_mean_logprob" | "large_logprob_of_small") =>
    datasets.every((dataset) =>
      dataset.records.every(
        (record) => !isTrainingRow(record) || Number.isFinite(record[field] ?? Number.NaN),
      ),
    );
  if (!carries("small_mean_logprob") && !carries("large_logprob_of_small"))
    throw new UsageError(
      "--guard post-hoc needs every record to carry the small model's confidence (small_mean_logprob) or the large model's likelihood of the small translation (large_logprob_of_small), as collect writes by default with in-process models",
    );
}

function parseSwitch(text: string, flag: string): boolean {
  if (text === "on") return true;
  if (text === "off") return false;
  throw new UsageError(`${flag} must be on or off, got ${JSON.stringify(text)}`);
}

function parseProbes(text: string): SelectableProbe[] {
  const probes = text
    .split(",")
    .map((probe) => probe.trim())
    .filter(Boolean);
  if (probes.length === 0)
    throw new UsageError(`--probes needs at least one of ${SELECTABLE_PROBES.join(", ")}`);
  for (const probe of probes) {
    if (!SELECTABLE_PROBES.includes(probe as SelectableProbe))
      throw new UsageError(
        `unknown probe ${JSON.stringify(probe)} in --probes (expected ${SELECTABLE_PROBES.join(", ")})`,
      );
  }
  return [...new Set(probes)] as SelectableProbe[];
}

/** Budgets in (0, 1], sorted and deduplicated: a budget of 0 routes nothing and has no MeanDelta. */
function parseSelectionBudgets(text: string): number[] {
  const budgets = text
    .split(",")
    .map((part) => part.trim())
    .filter(Boolean)
    .map((part) => {
      const value = Number(part);
      // p = 1 routes every segment whatever the ranking: MeanDelta@1 cannot tell probes apart.
      if (!(Number.isFinite(value) && value > 0 && value < 1))
        throw new UsageError(
          `--budgets: ${JSON.stringify(part)} is not a fraction in (0, 1) (at 1 every probe routes everything alike)`,
        );
      return value;
    });
  if (budgets.length === 0) throw new UsageError("--budgets lists no budget");
  return [...new Set(budgets)].sort((a, b) => a - b);
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
