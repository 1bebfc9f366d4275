import { InputError, UsageError } from "../errors/index.js";
import { isKnownLanguage } from "../translators/languages.js";
import { readHashedJsonl } from "../util/jsonl.js";
import { UniqueIds } from "../util/unique-ids.js";

/** One validated input segment of `collect`. */
export interface CollectSegment {
  id: string;
  /** 1-based line of the segment in the file it was read from (named in messages about it). */
  line: number;
  src: string;
  ref: string | null;
  srcLang: string;
  tgtLang: string;
}

/** The segments of a `collect` input file and the hash of the bytes they were read from. */
export interface CollectInput {
  segments: CollectSegment[];
  /**
   * sha256 (hex) of the whole file as parsed (lines past `limit` included): the run's identity
   * records it, so it must be the content these segments came from, not the file's later state.
   */
  sha256: string;
}

export interface CollectInputOptions {
  /** Whether a reference is required on every line (a reference-based metric). */
  needsReference: boolean;
  srcLang?: string;
  tgtLang?: string;
  limit?: number;
}

/**
 * Reads and checks every input line before any model runs: `{"id","src","ref"}` with optional
 * `src_lang`/`tgt_lang`; errors name file and line (malformed JSON, missing or duplicate id, empty
 * source, missing reference for a reference-based metric, unknown language).
 */
export async function readCollectInput(file: string, options: CollectInputOptions): Promise<CollectInput> {
  const segments: CollectSegment[] = [];
  const ids = new UniqueIds(file);
  const { lines, sha256 } = await readHashedJsonl(file);
  for (const { line, value } of lines) {
    if (options.limit !== undefined && segments.length >= options.limit) break;
    const where = { file, line };
    const id = value.id;
    if (typeof id !== "string" && typeof id !== "number")
      throw new InputError('missing "id" (a string or number)', where);
    const idText = String(id);
    ids.add(idText, line);
    const src = value.src;
    if (typeof src !== "string" || src.trim() === "") throw new InputError('empty or missing "src"', where);
    const ref = value.ref;
    if (ref !== undefined && ref !== null && typeof ref !== "string")
      throw new InputError('"ref" must be a string', where);
    if (options.needsReference && (typeof ref !== "string" || ref.trim() === "")) {
      throw new InputError('missing "ref": the label metric compares against a reference', where);
    }
    const { srcLang, tgtLang } = lineLanguages(value, options, where);
    segments.push({ id: idText, line, src, ref: typeof ref === "string" ? ref : null, srcLang, tgtLang });
  }
  if (segments.length === 0) throw new InputError("no segments to collect", { file });
  return { segments, sha256 };
}

/**
 * The language pair of one input line: its own `src_lang`/`tgt_lang`, else the defaults (the
 * flags). A field that is not a code, a missing pair or an unknown code is an error naming the line.
 */
export function lineLanguages(
  value: Record<string, unknown>,
  defaults: { srcLang?: string | undefined; tgtLang?: string | undefined },
  where: { file: string; line: number },
): { srcLang: string; tgtLang: string } {
  const srcLang = languageField(value.src_lang, "src_lang", where) ?? defaults.srcLang;
  const tgtLang = languageField(value.tgt_lang, "tgt_lang", where) ?? defaults.tgtLang;
  if (srcLang === undefined || tgtLang === undefined) {
    throw new UsageError(
      `${where.file}:${where.line}: no language pair: pass --src-lang and --tgt-lang or give src_lang/tgt_lang per line`,
    );
  }
  for (const code of [srcLang, tgtLang]) {
    if (!isKnownLanguage(code)) throw new InputError(`unknown language code ${JSON.stringify(code)}`, where);
  }
  return { srcLang, tgtLang };
}

function languageField(
  value: unknown,
  name: string,
  where: { file: string; line: number },
): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "string" || value.trim() === "")
    throw new InputError(`"${name}" must be a language code`, where);
  return value;
}
