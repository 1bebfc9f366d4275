import path from "node:path";
import { type Dataset, RECORDS_FILE } from "../dataset/index.js";
import { InputError, UsageError } from "../errors/index.js";
import { sameFeatureViews } from "../features/feature-views.js";
import { VERSION } from "../version.js";
import type { HeadName, RouterFile } from "./router-file.js";
import { ROUTER_FORMAT } from "./router-file.js";
import { type ProbeKind, trainHeads } from "./train-router.js";

export interface BuildRouterOptions {
  heads: readonly HeadName[];
  probe: ProbeKind;
  folds: number;
  seed: number;
  riskDelta: number;
  onHead?: (message: string) => void;
}

export interface BuiltRouter {
  router: RouterFile;
  notes: string[];
  /** Segments left out because their gain is unknown. */
  skipped: number;
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
    // Datasets written when selections were layer lists spell the same views differently (`final`).
    if (!sameFeatureViews(first.meta.small.layer ?? "", dataset.meta.small.layer ?? "")) {
      compare("layer", first.meta.small.layer, dataset.meta.small.layer);
    }
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

  const dim = first.meta.dim as number;
  let rows = 0;
  let skipped = 0;
  for (const dataset of datasets) {
    for (const record of dataset.records) {
      if (record.gain === null || record.q_small === null) skipped++;
      else rows++;
    }
  }
  const features = new Float32Array(rows * dim);
  const gain = new Float64Array(rows);
  const qSmall = new Float64Array(rows);
  let row = 0;
  for (const dataset of datasets) {
    const source = dataset.features as Float32Array;
    dataset.records.forEach((record, index) => {
      if (record.gain === null || record.q_small === null) return;
      features.set(source.subarray(index * dim, (index + 1) * dim), row * dim);
      gain[row] = record.gain;
      qSmall[row] = record.q_small;
      row++;
    });
  }

  const { heads, notes } = trainHeads(
    { matrix: { features, dim, rows }, gain, qSmall },
    {
      heads: options.heads,
      probe: options.probe,
      folds: options.folds,
      seed: options.seed,
      riskDelta: options.riskDelta,
      onHead: options.onHead,
    },
  );
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
      layer: first.meta.small.layer ?? "final",
      dim,
      template: first.meta.template,
      spec: first.meta.small.spec,
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
  };
  return { router, notes, skipped };
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
