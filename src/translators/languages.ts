import { UsageError } from "../errors/index.js";

/**
 * Language codes Node's ICU accepts but has no English name for (checked with Node 20's ICU). They
 * are FLORES-200 language codes, which translation data sets use, so they must not be rejected.
 */
const namesMissingFromIcu: ReadonlyMap<string, string> = new Map([
  ["acm", "Mesopotamian Arabic"],
  ["acq", "Ta'izzi-Adeni Arabic"],
  ["ajp", "South Levantine Arabic"],
  ["apc", "North Levantine Arabic"],
  ["azb", "South Azerbaijani"],
  ["cjk", "Chokwe"],
  ["fuv", "Nigerian Fulfulde"],
  ["hne", "Chhattisgarhi"],
  ["kbp", "Kabiyè"],
  ["pbt", "Southern Pashto"],
  ["quy", "Ayacucho Quechua"],
  ["taq", "Tamasheq"],
]);

/** Codes ICU names that denote no natural language: a translation prompt cannot use them. */
const notLanguages: ReadonlySet<string> = new Set(["und", "zxx", "mul", "mis"]);

const englishLanguageNames = new Intl.DisplayNames(["en"], { type: "language", fallback: "none" });

/** The canonical BCP-47 form of `code` (`deu` → `de`, `EN` → `en`), or undefined when it is not a well-formed tag. */
function canonicalTag(code: string): string | undefined {
  try {
    return Intl.getCanonicalLocales(code)[0];
  } catch {
    return undefined;
  }
}

/**
 * Names already looked up (null: no language), by code as given: every request asks for its two
 * codes (validation, then the prompt), a server sees few distinct ones, and the ICU lookups cost
 * microseconds each. Bounded, so odd codes sent by clients cannot grow it without limit.
 */
const lookedUp = new Map<string, string | null>();
const LOOKED_UP_LIMIT = 1024;

function findLanguageName(code: string): string | undefined {
  const known = lookedUp.get(code);
  if (known !== undefined) return known ?? undefined;
  const name = lookUpLanguageName(code);
  if (lookedUp.size >= LOOKED_UP_LIMIT) lookedUp.clear();
  lookedUp.set(code, name ?? null);
  return name;
}

function lookUpLanguageName(code: string): string | undefined {
  const tag = canonicalTag(code.trim());
  if (tag === undefined) return undefined;
  const primary = tag.split("-")[0] ?? tag;
  if (notLanguages.has(primary)) return undefined;
  let icuName: string | undefined;
  try {
    icuName = englishLanguageNames.of(tag);
  } catch {
    icuName = undefined;
  }
  return icuName ?? namesMissingFromIcu.get(tag) ?? namesMissingFromIcu.get(primary);
}

/**
 * English name of a language code, as used in translation prompts: ISO 639-1 (`de` → `German`),
 * ISO 639-3 / 639-2 (`deu`, `ger` → `German`), or BCP-47 (`zh-Hant` → `Traditional Chinese`,
 * `pt-BR` → `Brazilian Portuguese`). Case-insensitive.
 *
 * @throws UsageError when the code is malformed or names no known language.
 */
export function languageName(code: string): string {
  const name = findLanguageName(code);
  if (name === undefined) {
    throw new UsageError(
      `unknown language code ${JSON.stringify(code)}: use an ISO 639-1/639-3 or BCP-47 code such as "de", "deu" or "zh-Hant"`,
    );
  }
  return name;
}

/** True when `languageName(code)` would return a name instead of throwing. */
export function isKnownLanguage(code: string): boolean {
  return findLanguageName(code) !== undefined;
}
