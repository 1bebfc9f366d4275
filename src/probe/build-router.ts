import path from "node:path";
import {
  appendSourceBlocks,
  type Dataset,
  type DatasetRecord,
  type FeatureBlock,
  featureSelectionText,
  isSourceBlock,
  RECORDS_FILE,
  resolveFeatureBlocks,
  sliceFeatureBlocks,
} from "../dataset/index.js";
import { InputError, UsageError } from "../errors/index.js";
import { VERSION } from "../version.js";
import { kFoldAssignment } from "./cross-validation.js";
import {
  availableRestackInputs,
  fitRestack,
  outOfFoldRestack,
  type PosthocObservation,
  type RestackInput,
} from "./gain-restack.js";
import {
  chooseGuardKind,
  chooseGuardLambda,
  chooseQeGuard,
  chosenPoint,
  DEFAULT_GUARD_TOLERANCE,
  type GuardKind,
  type GuardReport,
  QE_SIGNAL_RULE,
  type QeSignal,
  restackCutOf,
  riskAdjustedScore,
} from "./guard-choice.js";
import { measureLearningCurve } from "./learning-curve.js";
import {
  DEFAULT_INNER_FOLDS,
  DEFAULT_SELECTION_BUDGETS,
  SELECTABLE_PROBES,
  type SelectableProbe,
  type SelectionResult,
  selectGainProbe,
} from "./probe-selection.js";
import type { HeadName, RouterFile } from "./router-file.js";
import { ROUTER_FORMAT } from "./router-file.js";
import { type ProbeKind, trainHeads } from "./train-router.js";

export interface BuildRouterOptions {
  heads: readonly HeadName[];
  /** Probe of the heads not chosen by selection (quality, risk; gain too with `select: false`). */
  probe: ProbeKind;
  /** Outer folds of the selection, folds of every head's CV. */
  folds: number;
  seed: number;
  /** δ of the risk label g < −δ, also the severe loss the selection and the guard report. */
  riskDelta: number;
  /** Choose the gain head's feature blocks and probe kind by nested CV. Defaults to true. */
  select?: boolean;
  /** Probe kinds the selection compares. Defaults to ridge, ridge-rank and mlp. */
  probes?: readonly SelectableProbe[];
  /** Budgets of MeanDelta@p for the selection, the learning curve and the guard. Defaults to 0.1, 0.2, 0.3, 0.5. */
  budgets?: readonly number[];
  /** Inner folds of the selection. Defaults to 3. */
  innerFolds?: number;
  /** MeanDelta share the guard may cost. Defaults to 0.05. */
  guardTolerance?: number;
  /** The guard `guarded` ranks by (see `chooseGuardKind`). Defaults to `auto`. */
  guard?: GuardKind | "auto";
  /**
   * Feature blocks to consider (with selection) or to read (without); defaults to every block of the
   * data, plus the source-text blocks when selecting.
   */
  blocks?: readonly string[];
  /**
   * Offer the source-text blocks (`words`, `length`: see `features/source-blocks.ts`) next to the
   * data's blocks. Defaults to `select`: the search keeps them only where they pay; without
   * selection a block list that names one offers them too.
   */
  sourceBlocks?: boolean;
  onHead?: (message: string) => void;
  /** Called with a line per candidate the selection measures. */
  onProgress?: (message: string) => void;
}

export interface BuiltRouter {
  router: RouterFile;
  notes: string[];
  /** Segments left out because their gain is unknown. */
  skipped: number;
  /** Wall time of each stage, in seconds. */
  seconds: { selection: number; learning_curve: number; heads: number; guard: number };
}

/** Whether a record is a training row: both its gain and the small model's quality are known. */
export function isTrainingRow<Row extends Pick<DatasetRecord, "gain" | "q_small">>(
  record: Row,
): record is Row & { gain: number; q_small: number } {
  return record.gain !== null && record.q_small !== null;
}

/**
 * Trains one router from one or more dataset directories (e.g. several directions of the same small
 * model). Datasets must share the small model, layer, dimension, template and label metric:
 * features from different models or prompts are not comparable.
 */
export function buildRouter(datasets: readonly Dataset[], options: BuildRouterOptions): BuiltRouter {
  const first = datasets[0];
  if (!first) throw new UsageError("train needs at least one --data directory");
  for (const dataset of datasets) {
    if (dataset.meta.dim === null || dataset.features === null) {
      throw new UsageError(
        `${dataset.directory} has no features (replay data); the router reads the small model's hidden states — build the dataset with routelmt collect`,
      );
    }
    if (dataset.meta.small.fingerprint === null)
      throw new UsageError(`${dataset.directory}: meta.json has no small-model fingerprint`);
  }
  for (const dataset of datasets.slice(1)) {
    const differences: string[] = [];
    const compare = (name: string, a: unknown, b: unknown) => {
      if (a !== b) differences.push(`${name} ${JSON.stringify(b)} vs ${JSON.stringify(a)}`);
    };
    compare("small-model fingerprint", first.meta.small.fingerprint, dataset.meta.small.fingerprint);
    compare(
      "feature blocks",
      first.blocks.map((block) => `${block.name}×${block.dim}`).join(","),
      dataset.blocks.map((block) => `${block.name}×${block.dim}`).join(","),
    );
    compare("dim", first.meta.dim, dataset.meta.dim);
    compare("template", first.meta.template, dataset.meta.template);
    compare("label metric", first.meta.label_metric, dataset.meta.label_metric);
    if (differences.length > 0) {
      throw new UsageError(
        `${dataset.directory} cannot be trained with ${first.directory}: ${differences.join("; ")}`,
      );
    }
  }

  assertNoSegmentTwice(datasets);

  const storedDim = first.meta.dim as number;
  let rows = 0;
  let skipped = 0;
  for (const dataset of datasets) {
    for (const record of dataset.records) {
      if (!isTrainingRow(record)) skipped++;
      else rows++;
    }
  }
  const stored = new Float32Array(rows * storedDim);
  const gain = new Float64Array(rows);
  const qSmall = new Float64Array(rows);
  const sources: string[] = [];
  // What the decode makes known of each row (the post-hoc guard's signals, the re-estimate's inputs).
  const decoded: Omit<PosthocObservation, "gain">[] = [];
  let row = 0;
  for (const dataset of datasets) {
    const source = dataset.features as Float32Array;
    dataset.records.forEach((record, index) => {
      if (!isTrainingRow(record)) return;
      stored.set(source.subarray(index * storedDim, (index + 1) * storedDim), row * storedDim);
      gain[row] = record.gain;
      qSmall[row] = record.q_small;
      sources.push(record.src);
      decoded.push({
        smallConfidence: record.small_mean_logprob ?? null,
        largeLikelihood: record.large_logprob_of_small ?? null,
        promptTokens: record.prompt_tokens,
        src: record.src,
        small: record.small,
      });
      row++;
    });
  }

  const select = options.select ?? true;
  const offerSourceBlocks =
    options.sourceBlocks ?? (select || (options.blocks ?? []).some((name) => isSourceBlock(name)));
  const {
    features,
    dim,
    blocks: availableBlocks,
  } = offerSourceBlocks
    ? appendSourceBlocks({ features: stored, rows, dim: storedDim, blocks: first.blocks }, sources)
    : { features: stored, dim: storedDim, blocks: first.blocks };
  const candidateBlocks = options.blocks
    ? resolveFeatureBlocks(availableBlocks, options.blocks, `the features of ${first.directory}`)
    : availableBlocks;
  const budgets = options.budgets ?? DEFAULT_SELECTION_BUDGETS;
  const wantsGain = options.heads.includes("gain");
  const seconds = { selection: 0, learning_curve: 0, heads: 0, guard: 0 };

  // With selection the gain head is the chosen candidate; without, the one configuration is still
  // measured by nested CV, for the learning curve.
  let selection: SelectionResult | null = null;
  const innerFolds = options.innerFolds ?? DEFAULT_INNER_FOLDS;
  // Nested CV needs every inner validation fold to hold rows; below that, the one configuration.
  const nestedPossible = rows >= options.folds * innerFolds;
  const selectionNotes: string[] = [];
  if (wantsGain && !nestedPossible) {
    selectionNotes.push(
      `${rows} segments are too few for ${options.folds} × ${innerFolds} nested folds: the gain head is one ${options.probe} on ${featureSelectionText(candidateBlocks)}, without selection or learning curve`,
    );
  }
  if (wantsGain && nestedPossible) {
    const started = performance.now();
    selection = selectGainProbe(
      // Block offsets are positions in the full row: the selection slices what it measures.
      { features, rows, dim, blocks: candidateBlocks, gains: gain },
      {
        budgets,
        folds: options.folds,
        innerFolds,
        seed: options.seed,
        severeDelta: options.riskDelta,
        probes: select ? (options.probes ?? SELECTABLE_PROBES) : [options.probe === "mlp" ? "mlp" : "ridge"],
        mode: select ? "search" : "fixed",
        onProgress: options.onProgress,
      },
    );
    seconds.selection = (performance.now() - started) / 1000;
  }
  const chosenBlocks: FeatureBlock[] = select && selection ? selection.head.blocks : candidateBlocks;
  const matrix = sliceFeatureBlocks(features, rows, dim, chosenBlocks);
  const learningCurve = selection
    ? measureLearningCurve(selection.measureOnShare, {
        budgets,
        trainingRows: Math.ceil((rows * (options.folds - 1)) / options.folds),
      })
    : null;
  seconds.learning_curve = learningCurve?.seconds ?? 0;

  const headsStarted = performance.now();
  const {
    heads,
    notes: headNotes,
    outOfFold,
  } = trainHeads(
    { matrix, gain, qSmall },
    {
      heads: options.heads,
      probe: options.probe,
      folds: options.folds,
      seed: options.seed,
      riskDelta: options.riskDelta,
      gainHead: select && selection ? selection.head : undefined,
      onHead: options.onHead,
    },
  );
  seconds.heads = (performance.now() - headsStarted) / 1000;
  const notes = [...selectionNotes, ...headNotes];

  const guardStarted = performance.now();
  const guardChoice = {
    gains: gain,
    folds: selection && select ? selection.folds.outer : kFoldAssignment(rows, options.folds, options.seed),
    budgets,
    tolerance: options.guardTolerance ?? DEFAULT_GUARD_TOLERANCE,
    severeDelta: options.riskDelta,
  };
  const guard =
    outOfFold.gain && outOfFold.risk
      ? chooseGuardLambda({ ...guardChoice, gainScores: outOfFold.gain, riskScores: outOfFold.risk })
      : null;
  // A post-hoc signal is offered only where every row has it (collected by engines that read
  // logits): a dataset with gaps (NaN where unknown) gets no guard on it rather than one fitted
  // on a biased subset.
  const qeSignals: [QeSignal, Float64Array][] = [
    ["small-confidence", Float64Array.from(decoded, (each) => each.smallConfidence ?? Number.NaN)],
    ["large-likelihood", Float64Array.from(decoded, (each) => each.largeLikelihood ?? Number.NaN)],
  ];
  const offered = qeSignals.filter(
    ([, values]) => outOfFold.gain && rows > 0 && values.every(Number.isFinite),
  );
  const qeGuards = offered.map(([signal, values]) =>
    chooseGuardLambda({
      ...guardChoice,
      gainScores: outOfFold.gain as Float64Array,
      riskScores: values,
      method: "qe-adjusted",
      signal,
    }),
  );
  const restackedGuards = outOfFold.gain
    ? restackedQeGuards(outOfFold.gain, decoded, offered, guardChoice)
    : [];
  const candidates = [...qeGuards, ...restackedGuards];
  // Every plain guard's grid starts at λ = 0: the gain head alone.
  const chosenQeGuard = qeGuards[0]
    ? chooseQeGuard(candidates, qeGuards[0].grid[0]!.mean_delta, guardChoice.tolerance)
    : null;
  const qeGuard =
    chosenQeGuard && candidates.length > 1
      ? {
          ...chosenQeGuard,
          signal_choice: {
            rule: QE_SIGNAL_RULE,
            candidates: candidates.map((report) => ({
              signal: report.signal ?? "small-confidence",
              ...(report.restack ? { restack: report.restack, restack_cut: report.restack_cut } : {}),
              ...chosenPoint(report),
              score_quantiles: report.score_quantiles,
            })),
          },
        }
      : chosenQeGuard;
  if (wantsGain && !guard)
    notes.push(
      "no risk-adjusted guard: it needs the gain and risk heads (the guarded policy falls back to vetoes)",
    );
  const guardedBy =
    guard || qeGuard
      ? chooseGuardKind(options.guard ?? "auto", guard ?? undefined, qeGuard ?? undefined)
      : null;
  seconds.guard = (performance.now() - guardStarted) / 1000;
  const pairs = new Map<string, [string | null, string | null]>();
  for (const dataset of datasets) {
    for (const record of dataset.records)
      pairs.set(`${record.src_lang}\u0000${record.tgt_lang}`, [record.src_lang, record.tgt_lang]);
  }
  const router: RouterFile = {
    format: ROUTER_FORMAT,
    routelmt_version: VERSION,
    created: new Date().toISOString(),
    label_metric: first.meta.label_metric,
    label_signature: first.meta.metric_signatures[first.meta.label_metric] ?? null,
    label_higher_is_better: first.meta.label_higher_is_better,
    feature: {
      fingerprint: first.meta.small.fingerprint as string,
      arch: first.meta.small.arch,
      layer: featureSelectionText(chosenBlocks),
      dim: matrix.dim,
      template: first.meta.template,
      spec: first.meta.small.spec,
      blocks: chosenBlocks.flatMap((block) => block.name.split(",")),
    },
    src_lang: first.meta.src_lang ?? first.records[0]?.src_lang ?? null,
    tgt_lang: first.meta.tgt_lang ?? first.records[0]?.tgt_lang ?? null,
    language_pairs: [...pairs.values()],
    training: {
      n: rows,
      datasets: datasets.map((dataset) => dataset.directory),
      seed: options.seed,
      folds: options.folds,
    },
    heads,
    ...(select && selection ? { selection: selection.report } : {}),
    ...(learningCurve ? { learning_curve: learningCurve } : {}),
    ...(guard ? { guard } : {}),
    ...(qeGuard ? { guard_qe: qeGuard } : {}),
    ...(guardedBy ? { guarded_by: guardedBy } : {}),
  };
  return { router, notes, skipped, seconds };
}

/**
 * The post-hoc guards on the re-estimated gain (see `gain-restack.ts`), one per signal offered to
 * the plain guards (with its values): the re-estimate reads every input the data has (the large
 * model's likelihood only for the guard on that signal, so the small-confidence one can serve where
 * the large engine cannot score), measured out of fold on the folds of the plain guards.
 */
function restackedQeGuards(
  gainScores: Float64Array,
  decoded: readonly Omit<PosthocObservation, "gain">[],
  signals: readonly [QeSignal, Float64Array][],
  choice: {
    gains: Float64Array;
    folds: Int32Array;
    budgets: readonly number[];
    tolerance: number;
    severeDelta: number;
  },
): GuardReport[] {
  const observations = decoded.map((each, row) => ({ ...each, gain: gainScores[row]! }));
  return signals.flatMap(([signal, signalValues]) => {
    const wanted: RestackInput[] = ["gain", "small-confidence", "log-prompt-tokens", "length-ratio"];
    if (signal === "large-likelihood") wanted.splice(2, 0, "large-likelihood");
    const inputs = availableRestackInputs(observations, wanted);
    // The gain alone would only rescale the gain head's prediction.
    if (inputs.length < 2) return [];
    const scores = outOfFoldRestack(inputs, observations, choice.gains, choice.folds);
    const guard = chooseGuardLambda({
      ...choice,
      gainScores: scores,
      riskScores: signalValues,
      method: "qe-adjusted",
      signal,
      restack: fitRestack(inputs, observations, choice.gains),
    });
    const guarded = scores.map((score, row) => riskAdjustedScore(score, signalValues[row]!, guard.lambda));
    return [{ ...guard, restack_cut: restackCutOf(gainScores, guarded, choice) }];
  });
}

/**
 * Refuses one segment in two datasets — the same direction, id and source: a directory given twice,
 * or one input collected into two directories. Its rows would fall into different cross-validation
 * folds, so the reported scores would be measured partly on training rows. An id alone may repeat
 * across datasets: it is unique only within the input file it came from, and the directions of one
 * corpus (FLORES, WMT) share their ids. Within one dataset the reader refuses a repeated id.
 * @throws InputError naming both records.
 */
function assertNoSegmentTwice(datasets: readonly Dataset[]): void {
  const firstSeen = new Map<string, { file: string; line: number }>();
  for (const dataset of datasets) {
    const file = path.join(dataset.directory, RECORDS_FILE);
    dataset.records.forEach((record, row) => {
      const key = JSON.stringify([record.src_lang, record.tgt_lang, record.id, record.src]);
      const first = firstSeen.get(key);
      if (first === undefined) {
        firstSeen.set(key, { file, line: row + 1 });
        return;
      }
      throw new InputError(
        `segment ${JSON.stringify(record.id)} (${record.src_lang}→${record.tgt_lang}) is also ${first.file}:${first.line}; pass each dataset once, or collect each input once`,
        { file, line: row + 1 },
      );
    });
  }
}
