import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { z } from "zod";
import { InputError, UsageError } from "../errors/index.js";
import { FEATURE_POOLINGS } from "../features/feature-views.js";
import { readJsonl } from "../util/jsonl.js";
import { UniqueIds } from "../util/unique-ids.js";
import {
  appendSourceBlocks,
  checkFeatureBlocks,
  type FeatureBlock,
  isSourceBlock,
  legacyFeatureBlocks,
  resolveFeatureBlocks,
  sliceFeatureBlocks,
} from "./feature-blocks.js";
import { CHECKPOINT_FILE, FEATURES_FILE, META_FILE, RECORDS_FILE } from "./files.js";
import type { DatasetMeta, DatasetRecord } from "./types.js";

/** A dataset directory loaded into memory. `features` is row-major n × dim, or null for replay data. */
export interface Dataset {
  directory: string;
  meta: DatasetMeta;
  records: DatasetRecord[];
  features: Float32Array | null;
  /** The named blocks of a feature row, in order (empty without features). */
  blocks: FeatureBlock[];
}

/** Feature rows of a dataset restricted to some of its blocks (the shape probes train on). */
export interface DatasetFeatureMatrix {
  features: Float32Array;
  rows: number;
  dim: number;
  /** The blocks the columns hold, in order. */
  blocks: FeatureBlock[];
}

/**
 * The dataset's features restricted to the named blocks, concatenated in the order given (every
 * block, in stored order, when `names` is omitted). Source-text blocks (`words`, `length`) are
 * computed from the records' sources.
 * @throws UsageError when the dataset has no features or lacks a block.
 */
export function datasetFeatures(dataset: Dataset, names?: readonly string[]): DatasetFeatureMatrix {
  if (dataset.features === null || dataset.meta.dim === null) {
    throw new UsageError(`${dataset.directory} has no features (replay data)`);
  }
  const stored = {
    features: dataset.features,
    rows: dataset.meta.n,
    dim: dataset.meta.dim,
    blocks: dataset.blocks,
  };
  // Only the source-text blocks asked for: each costs its width in every row.
  const wantedSources = (names ?? [])
    .flatMap((name) => name.split(","))
    .filter((name) => isSourceBlock(name));
  const rows =
    wantedSources.length > 0
      ? appendSourceBlocks(
          stored,
          dataset.records.map((record) => record.src),
          wantedSources,
        )
      : stored;
  const blocks =
    names === undefined
      ? dataset.blocks
      : resolveFeatureBlocks(rows.blocks, names, `the features of ${dataset.directory}`);
  return { ...sliceFeatureBlocks(rows.features, rows.rows, rows.dim, blocks), blocks };
}

const nullableNumber = z.number().nullable();

const recordSchema = z.object({
  id: z.string(),
  src: z.string(),
  ref: z.string().nullable(),
  src_lang: z.string().nullable(),
  tgt_lang: z.string().nullable(),
  small: z.string().nullable(),
  large: z.string().nullable(),
  scores: z.record(z.string(), z.object({ small: nullableNumber, large: nullableNumber })),
  q_small: nullableNumber,
  q_large: nullableNumber,
  gain: nullableNumber,
  src_chars: z.number(),
  prompt_tokens: nullableNumber,
  entropy: nullableNumber,
  large_prompt_tokens: nullableNumber.optional(),
  large_output_tokens: nullableNumber.optional(),
  small_mean_logprob: nullableNumber.optional(),
  large_logprob_of_small: nullableNumber.optional(),
});

const featureBlockSchema = z.object({
  name: z.string(),
  pooling: z.enum(FEATURE_POOLINGS),
  layer: z.union([z.number().int().nonnegative(), z.string()]),
  dim: z.number().int().positive(),
  offset: z.number().int().nonnegative(),
});

const metaSchema = z
  .object({
    n: z.number().int().nonnegative(),
    dim: z.number().int().positive().nullable(),
    feature_blocks: z.array(featureBlockSchema).optional(),
    label_metric: z.string(),
    label_higher_is_better: z.boolean(),
    metric_signatures: z.record(z.string(), z.string()),
    small: z.object({}).passthrough(),
    large: z.object({}).passthrough(),
    template: z.string().nullable(),
    src_lang: z.string().nullable(),
    tgt_lang: z.string().nullable(),
    created: z.string(),
    routelmt_version: z.string(),
    source: z.object({ kind: z.enum(["collect", "import"]) }).passthrough(),
  })
  .passthrough();

/** Loads and checks a dataset directory written by `collect` or `import`. */
export async function loadDataset(directory: string): Promise<Dataset> {
  const metaPath = path.join(directory, META_FILE);
  if (!existsSync(metaPath)) {
    const inFlight = existsSync(path.join(directory, CHECKPOINT_FILE));
    throw new UsageError(
      inFlight
        ? `${directory} holds an unfinished collection (no ${META_FILE} yet); rerun the same collect command to finish it`
        : `${directory} is not a routelmt dataset (no ${META_FILE})`,
    );
  }
  let metaJson: unknown;
  try {
    metaJson = JSON.parse(await readFile(metaPath, "utf8"));
  } catch (error) {
    throw new InputError(
      `malformed JSON (${(error as Error).message})`,
      { file: metaPath },
      { cause: error },
    );
  }
  const parsedMeta = metaSchema.safeParse(metaJson);
  if (!parsedMeta.success) {
    throw new InputError(`not a dataset meta file: ${formatIssue(parsedMeta.error)}`, { file: metaPath });
  }
  const meta = parsedMeta.data as unknown as DatasetMeta;
  const blocks = blocksOf(meta, metaPath);

  const recordsPath = path.join(directory, RECORDS_FILE);
  const records: DatasetRecord[] = [];
  // External scores are joined on the id and batch allocation breaks ties by it.
  const ids = new UniqueIds(recordsPath);
  for (const { line, value } of await readJsonl(recordsPath)) {
    const parsed = recordSchema.safeParse(value);
    if (!parsed.success)
      throw new InputError(`not a dataset record: ${formatIssue(parsed.error)}`, { file: recordsPath, line });
    ids.add(parsed.data.id, line);
    records.push(parsed.data);
  }
  if (records.length !== meta.n) {
    throw new InputError(`${records.length} records but meta.json says n = ${meta.n}`, { file: recordsPath });
  }

  let features: Float32Array | null = null;
  if (meta.dim !== null) {
    const featuresPath = path.join(directory, FEATURES_FILE);
    if (!existsSync(featuresPath))
      throw new InputError("missing; meta.json gives a feature dimension", { file: featuresPath });
    features = littleEndianBytesToFloat32(await readFile(featuresPath));
    if (features.length !== meta.n * meta.dim) {
      throw new InputError(
        `${features.length} floats, expected n × dim = ${meta.n} × ${meta.dim}; features are not aligned with records`,
        { file: featuresPath },
      );
    }
    // A NaN or infinity would reach a probe as a singular system, or rank its row silently.
    for (let index = 0; index < features.length; index++) {
      if (Number.isFinite(features[index])) continue;
      const row = Math.floor(index / meta.dim);
      throw new InputError(
        `row ${row + 1} (id ${JSON.stringify(records[row]!.id)}, records.jsonl line ${row + 1}) holds ${features[index]} at column ${index % meta.dim}; the features are damaged`,
        { file: featuresPath },
      );
    }
  }
  return { directory, meta, records, features, blocks };
}

/** The blocks meta.json lists, checked against its dim, or the one block of an older dataset. */
function blocksOf(meta: DatasetMeta, metaPath: string): FeatureBlock[] {
  if (meta.dim === null) {
    if (meta.feature_blocks !== undefined && meta.feature_blocks.length > 0)
      throw new InputError("feature_blocks listed but dim is null (no features)", { file: metaPath });
    return [];
  }
  if (meta.feature_blocks === undefined) {
    try {
      return legacyFeatureBlocks(meta.small.layer, meta.dim);
    } catch (error) {
      throw new InputError(`small.layer: ${(error as Error).message}`, { file: metaPath }, { cause: error });
    }
  }
  try {
    checkFeatureBlocks(meta.feature_blocks, meta.dim, { file: metaPath });
  } catch (error) {
    // View names that do not parse are reported as the file's problem, not the user's flags.
    if (error instanceof UsageError)
      throw new InputError(error.message, { file: metaPath }, { cause: error });
    throw error;
  }
  return meta.feature_blocks;
}

export function littleEndianBytesToFloat32(bytes: Uint8Array): Float32Array {
  if (bytes.length % 4 !== 0)
    throw new InputError(`feature file length ${bytes.length} is not a multiple of 4`);
  const values = new Float32Array(bytes.length / 4);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < values.length; i++) values[i] = view.getFloat32(i * 4, true);
  return values;
}

function formatIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return "invalid";
  return `${issue.path.join(".") || "(root)"}: ${issue.message}`;
}
