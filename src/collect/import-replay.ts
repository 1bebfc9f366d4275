import path from "node:path";
import { type DatasetMeta, type DatasetRecord, DatasetWriter, type SystemScores } from "../dataset/index.js";
import { InputError, UsageError } from "../errors/index.js";
import { isKnownLanguage } from "../translators/index.js";
import { parseDotPath, readAtKeys } from "../util/dot-path.js";
import { readHashedJsonl } from "../util/jsonl.js";
import { UniqueIds } from "../util/unique-ids.js";
import { VERSION } from "../version.js";
import { orientedGain } from "./gain.js";
import { refuseDuplicateScoreNames } from "./score-names.js";

/** An extra score to keep under `scores`: NAME=SMALL_PATH,LARGE_PATH. */
export interface ExtraScoreFields {
  name: string;
  small: string;
  large: string;
}

export interface ImportOptions {
  input: string;
  out: string;
  smallField: string;
  largeField: string;
  smallLabel: string;
  largeLabel: string;
  /** Name of the label metric in the dataset. Defaults to the first key of the small label path (`mqm`). */
  labelName?: string;
  /** For error-like labels (e.g. MetricX as raw errors): gain is then small − large. Defaults to false. */
  labelLowerIsBetter?: boolean;
  scores?: ExtraScoreFields[];
  srcField?: string;
  refField?: string;
  idField?: string;
  srcLang?: string;
  tgtLang?: string;
}

export interface ImportSummary {
  written: number;
  skippedNullLabel: number;
  /** True when the directory already held this exact import. */
  alreadyComplete: boolean;
  meta: DatasetMeta | null;
}

/** Parses `NAME=SMALL_PATH,LARGE_PATH`; the comma may not sit inside a quoted key. */
export function parseExtraScore(text: string): ExtraScoreFields {
  const equals = text.indexOf("=");
  if (equals <= 0)
    throw new UsageError(`--score ${JSON.stringify(text)}: expected NAME=SMALL_PATH,LARGE_PATH`);
  const name = text.slice(0, equals);
  const rest = text.slice(equals + 1);
  let inQuotes = false;
  for (let i = 0; i < rest.length; i++) {
    const char = rest[i];
    if (char === "\\" && inQuotes) i++;
    else if (char === '"') inQuotes = !inQuotes;
    else if (char === "," && !inQuotes) {
      const small = rest.slice(0, i);
      const large = rest.slice(i + 1);
      parseDotPath(small);
      parseDotPath(large);
      return { name, small, large };
    }
  }
  throw new UsageError(`--score ${JSON.stringify(text)}: expected NAME=SMALL_PATH,LARGE_PATH`);
}

/**
 * Builds a dataset directory from records that already hold two systems' outputs and their scores
 * (replay data: no models run). Segments whose label is null for either system are skipped and counted.
 */
export async function importReplay(options: ImportOptions): Promise<ImportSummary> {
  const fields = {
    id: options.idField ?? "id",
    src: options.srcField ?? "src",
    ref: options.refField ?? "ref",
    small: options.smallField,
    large: options.largeField,
    small_label: options.smallLabel,
    large_label: options.largeLabel,
  };
  const keys = Object.fromEntries(
    Object.entries(fields).map(([name, path]) => [name, parseDotPath(path)]),
  ) as Record<keyof typeof fields, string[]>;
  const extras = (options.scores ?? []).map((score) => ({
    ...score,
    smallKeys: parseDotPath(score.small),
    largeKeys: parseDotPath(score.large),
  }));
  const labelName = options.labelName ?? (keys.small_label[0] as string);
  const higherIsBetter = !options.labelLowerIsBetter;
  refuseDuplicateScoreNames(
    [
      {
        name: labelName,
        source:
          options.labelName === undefined
            ? `--small-label ${options.smallLabel} (the label's name is its first key)`
            : `--label-name ${labelName}`,
      },
      ...extras.map((extra) => ({
        name: extra.name,
        source: `--score ${extra.name}=${extra.small},${extra.large}`,
      })),
    ],
    "give each --score its own NAME, other than the label's (--label-name renames the label)",
  );

  // Parsed and hashed from one read: the identity must describe the records this import writes.
  const { lines, sha256: inputSha256 } = await readHashedJsonl(options.input);
  if (lines.length === 0) throw new InputError("no records to import", { file: options.input });
  // A path found in no record at all is a typo, not missing data: say so before writing anything.
  const required = [
    ...Object.entries(fields)
      .filter(([name]) => name !== "ref")
      .map(([name, path]) => ({
        path,
        what: `${name.replace("_", "-")} field`,
        pathKeys: keys[name as keyof typeof fields],
      })),
    ...extras.flatMap((extra) => [
      { path: extra.small, what: `--score ${extra.name}, small`, pathKeys: extra.smallKeys },
      { path: extra.large, what: `--score ${extra.name}, large`, pathKeys: extra.largeKeys },
    ]),
  ];
  for (const { path, what, pathKeys } of required) {
    if (!lines.some(({ value }) => readAtKeys(value, pathKeys) !== undefined)) {
      throw new UsageError(`${path} (${what}) is missing from every record of ${options.input}`);
    }
  }

  const records: DatasetRecord[] = [];
  const ids = new UniqueIds(options.input);
  let skippedNullLabel = 0;
  for (const { line, value } of lines) {
    const where = { file: options.input, line };
    const id = readAtKeys(value, keys.id);
    if (typeof id !== "string" && typeof id !== "number")
      throw new InputError(`no id at ${fields.id}`, where);
    const idText = String(id);
    ids.add(idText, line);
    const src = readAtKeys(value, keys.src);
    if (typeof src !== "string" || src.trim() === "")
      throw new InputError(`empty or missing source at ${fields.src}`, where);

    const labelSmall = readNumberOrNull(value, keys.small_label, fields.small_label, where);
    const labelLarge = readNumberOrNull(value, keys.large_label, fields.large_label, where);
    if (labelSmall === null || labelLarge === null) {
      skippedNullLabel++;
      continue;
    }
    const scores: Record<string, SystemScores> = { [labelName]: { small: labelSmall, large: labelLarge } };
    for (const extra of extras) {
      scores[extra.name] = {
        small: readNumberOrNull(value, extra.smallKeys, extra.small, where),
        large: readNumberOrNull(value, extra.largeKeys, extra.large, where),
      };
    }
    const lp = typeof value.lp === "string" ? languagePairOf(value.lp) : [];
    const srcLang = options.srcLang ?? stringOrNull(value.src_lang) ?? lp[0] ?? null;
    const tgtLang = options.tgtLang ?? stringOrNull(value.tgt_lang) ?? lp[1] ?? null;
    for (const code of [srcLang, tgtLang]) {
      if (code !== null && !isKnownLanguage(code))
        throw new InputError(`unknown language code ${JSON.stringify(code)}`, where);
    }
    const gain = orientedGain(labelSmall, labelLarge, higherIsBetter);
    // Finite labels can still differ by more than a double holds (±1e308): the record would store null.
    if (!Number.isFinite(gain))
      throw new InputError(
        `the labels ${labelSmall} and ${labelLarge} differ by more than a number can hold; is the label on its usual scale?`,
        where,
      );
    records.push({
      id: idText,
      src,
      ref: readStringOrNull(value, keys.ref, fields.ref, where),
      src_lang: srcLang,
      tgt_lang: tgtLang,
      small: readStringOrNull(value, keys.small, fields.small, where),
      large: readStringOrNull(value, keys.large, fields.large, where),
      scores,
      q_small: labelSmall,
      q_large: labelLarge,
      gain,
      src_chars: [...src].length,
      prompt_tokens: null,
      entropy: null,
    });
  }

  if (records.length === 0) {
    throw new InputError(
      `no record has both labels (${fields.small_label}, ${fields.large_label}): all ${skippedNullLabel} are null in one`,
      { file: options.input },
    );
  }
  const identity = {
    kind: "import",
    // By where it is, not as typed: the same file named from elsewhere is the same input (its
    // content is checked by the hash below).
    input: path.resolve(options.input),
    // The file's content and the pairs the flags give its records: a rerun that changes either is
    // another import, not this one finished.
    input_sha256: inputSha256,
    languages: [...new Set(records.map((record) => `${record.src_lang}-${record.tgt_lang}`))].sort(),
    fields,
    scores: options.scores ?? [],
    labelName,
    higherIsBetter,
  };
  const { writer, complete } = await DatasetWriter.open(options.out, identity, null, {
    // Identities written before this hold the path as typed: resolved against today's working
    // directory, the best reading left.
    readStoredIdentity: (stored) =>
      typeof stored.input === "string" ? { ...stored, input: path.resolve(stored.input) } : stored,
  });
  if (complete) {
    await writer.close();
    return { written: 0, skippedNullLabel, alreadyComplete: true, meta: null };
  }
  // Records are a pure function of the input, so an interrupted import continues where it stopped.
  const pending = records.slice(writer.done);
  try {
    await writer.append(pending, null);
  } catch (error) {
    await writer.close();
    throw error;
  }
  const languages = uniqueOrNull(records.map((r) => `${r.src_lang}\u0000${r.tgt_lang}`));
  const metricSignatures: Record<string, string> = {
    [labelName]: `precomputed:${fields.small_label},${fields.large_label}`,
  };
  for (const extra of extras) metricSignatures[extra.name] = `precomputed:${extra.small},${extra.large}`;
  const meta: DatasetMeta = {
    n: records.length,
    dim: null,
    label_metric: labelName,
    label_higher_is_better: higherIsBetter,
    metric_signatures: metricSignatures,
    small: { spec: null, fingerprint: null, arch: null, layer: null, field: fields.small },
    large: { spec: null, field: fields.large },
    template: null,
    src_lang: languages?.split("\u0000")[0] ?? null,
    tgt_lang: languages?.split("\u0000")[1] ?? null,
    created: new Date().toISOString(),
    routelmt_version: VERSION,
    source: { kind: "import", input: options.input, fields, skipped_null_label: skippedNullLabel },
  };
  await writer.finish(meta);
  return { written: records.length, skippedNullLabel, alreadyComplete: false, meta };
}

function readNumberOrNull(
  record: unknown,
  keys: readonly string[],
  path: string,
  where: { file: string; line: number },
): number | null {
  const value = readAtKeys(record, keys);
  if (value === undefined || value === null) return null;
  if (typeof value !== "number" || !Number.isFinite(value)) {
    throw new InputError(`${path} is ${JSON.stringify(value)}, expected a finite number or null`, where);
  }
  return value;
}

function readStringOrNull(
  record: unknown,
  keys: readonly string[],
  path: string,
  where: { file: string; line: number },
): string | null {
  const value = readAtKeys(record, keys);
  if (value === undefined || value === null) return null;
  if (typeof value !== "string")
    throw new InputError(`${path} is ${JSON.stringify(value)}, expected a string`, where);
  return value;
}

function stringOrNull(value: unknown): string | null {
  return typeof value === "string" && value !== "" ? value : null;
}

function uniqueOrNull(values: string[]): string | null {
  const unique = new Set(values);
  return unique.size === 1 ? (values[0] ?? null) : null;
}

/**
 * The two languages of an `lp` field such as `en-de`. Codes have hyphens of their own (`zh-Hant`,
 * `pt-BR`), so the pair is split at the hyphen that leaves a known code on both sides; with no such
 * hyphen, at the first, so that the unknown code is the one reported.
 */
export function languagePairOf(lp: string): string[] {
  const parts = lp.split("-");
  if (parts.length < 2) return [];
  for (let split = 1; split < parts.length; split++) {
    const source = parts.slice(0, split).join("-");
    const target = parts.slice(split).join("-");
    if (isKnownLanguage(source) && isKnownLanguage(target)) return [source, target];
  }
  return [parts[0]!, parts.slice(1).join("-")];
}
