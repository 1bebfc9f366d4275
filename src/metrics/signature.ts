import { UsageError } from "../errors/index.js";
import { VERSION } from "../version.js";

/** One signature value; `null`/`undefined` fields are left out, as sacreBLEU leaves out unset ones. */
export type SignatureValue = string | number | boolean | null | undefined;

/** The version field every routelmt metric signature ends with: `routelmt-<package version>`. */
export const SIGNATURE_VERSION = `routelmt-${VERSION}`;

/**
 * Builds a sacreBLEU-style reproducibility signature: `key:value` pairs in the given order, joined
 * by `|`, with `version:routelmt-<version>` always last. Booleans print as `yes`/`no` (sacreBLEU's
 * convention); `null`/`undefined` values are skipped, so a field that is not known yet (such as
 * `nrefs` before any reference was seen) simply does not appear.
 *
 * @example formatSignature([["nrefs", 1], ["case", "mixed"]]) // "nrefs:1|case:mixed|version:routelmt-0.1.0"
 * @throws UsageError when a key or value contains `|` (it would make the signature ambiguous) or a key is `version`.
 */
export function formatSignature(
  fields: ReadonlyArray<readonly [key: string, value: SignatureValue]>,
): string {
  const pairs: string[] = [];
  for (const [key, value] of fields) {
    if (key === "version") throw new UsageError("signature field 'version' is added automatically");
    if (value === null || value === undefined) continue;
    const text = typeof value === "boolean" ? (value ? "yes" : "no") : String(value);
    if (key.includes("|") || text.includes("|")) {
      throw new UsageError(`signature field ${key}:${text} must not contain '|'`);
    }
    pairs.push(`${key}:${text}`);
  }
  pairs.push(`version:${SIGNATURE_VERSION}`);
  return pairs.join("|");
}
