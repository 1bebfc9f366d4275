import { existsSync } from "node:fs";
import { readFile, rename, writeFile } from "node:fs/promises";
import path from "node:path";
import { UsageError } from "../errors/index.js";
import { makeDirectory } from "../util/make-directory.js";
import { extractTarFiles } from "../util/tar.js";
import type { CollectSegment } from "./collect-input.js";

/**
 * FLORES-200 (NLLB Team, 2022; CC BY-SA 4.0): 997 `dev` and 1,012 `devtest` sentences, professionally
 * translated into 200 languages — small, public and licensed for this use. The demo trains on `dev`
 * and tests on `devtest`. ROUTELMT_FLORES_URL overrides where it is downloaded from.
 */
export const FLORES_URL = "https://dl.fbaipublicfiles.com/nllb/flores200_dataset.tar.gz";
export const FLORES_LICENSE = "CC BY-SA 4.0 (FLORES-200, NLLB Team 2022)";

/** FLORES-200 language codes for ISO 639-1 codes the demo accepts. */
const FLORES_CODES: Record<string, string> = {
  ar: "arb_Arab",
  cs: "ces_Latn",
  de: "deu_Latn",
  en: "eng_Latn",
  es: "spa_Latn",
  fi: "fin_Latn",
  fr: "fra_Latn",
  hi: "hin_Deva",
  it: "ita_Latn",
  ja: "jpn_Jpan",
  ko: "kor_Hang",
  nl: "nld_Latn",
  pl: "pol_Latn",
  pt: "por_Latn",
  ru: "rus_Cyrl",
  sv: "swe_Latn",
  tr: "tur_Latn",
  uk: "ukr_Cyrl",
  zh: "zho_Hans",
  "zh-Hant": "zho_Hant",
};

export function floresCode(language: string): string {
  const code = FLORES_CODES[language];
  if (!code) {
    throw new UsageError(
      `the demo's FLORES-200 data has no mapping for ${JSON.stringify(language)} (known: ${Object.keys(FLORES_CODES).join(", ")}); pass --data FILE.jsonl`,
    );
  }
  return code;
}

export type DownloadProgress = (received: number, total: number | null) => void;

/** Downloads `url` to `file` (via a temporary file, so a cut download never looks complete). */
export async function downloadFile(url: string, file: string, onProgress?: DownloadProgress): Promise<void> {
  await makeDirectory(path.dirname(file));
  const response = await fetch(url, { signal: AbortSignal.timeout(30_000) });
  if (!response.ok || !response.body) throw new Error(`HTTP ${response.status} from ${url}`);
  const total = Number(response.headers.get("content-length")) || null;
  const chunks: Uint8Array[] = [];
  let received = 0;
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
    chunks.push(chunk);
    received += chunk.length;
    onProgress?.(received, total);
  }
  const temporary = `${file}.part-${process.pid}`;
  await writeFile(temporary, Buffer.concat(chunks));
  await rename(temporary, file);
}

/** The demo's train (`dev`) and test (`devtest`) segments for a language pair, downloaded once and cached. */
export async function floresSplits(options: {
  cacheDirectory: string;
  srcLang: string;
  tgtLang: string;
  onProgress?: DownloadProgress;
}): Promise<{ train: CollectSegment[]; test: CollectSegment[] }> {
  const src = floresCode(options.srcLang);
  const tgt = floresCode(options.tgtLang);
  const archive = path.join(options.cacheDirectory, "flores200_dataset.tar.gz");
  if (!existsSync(archive)) {
    const url = process.env.ROUTELMT_FLORES_URL ?? FLORES_URL;
    try {
      await downloadFile(url, archive, options.onProgress);
    } catch (error) {
      throw new UsageError(
        `cannot download the demo data from ${url} (${(error as Error).message}). Offline, pass your own parallel data as --data FILE.jsonl (one {"id","src","ref"} per line)`,
        { cause: error },
      );
    }
  }
  const wanted = new Set(
    ["dev", "devtest"].flatMap((split) => [src, tgt].map((code) => `${split}/${code}.${split}`)),
  );
  const files = extractTarFiles(
    await readFile(archive),
    (name) => wanted.has(name.split("/").slice(-2).join("/")),
    archive,
  );
  const lines = (split: string, code: string): string[] => {
    const entry = [...files.entries()].find(([name]) => name.endsWith(`${split}/${code}.${split}`));
    if (!entry)
      throw new UsageError(`${archive} has no ${split}/${code}.${split}; delete it to download it again`);
    return entry[1]
      .toString("utf8")
      .split("\n")
      .filter((line, index, all) => line !== "" || index < all.length - 1);
  };
  const split = (name: string): CollectSegment[] => {
    const sources = lines(name, src);
    const references = lines(name, tgt);
    if (sources.length !== references.length)
      throw new UsageError(
        `${archive}: ${name} has ${sources.length} ${src} lines but ${references.length} ${tgt} lines`,
      );
    return sources.map((text, index) => ({
      id: `${name}-${String(index + 1).padStart(4, "0")}`,
      line: index + 1,
      src: text,
      ref: references[index] as string,
      srcLang: options.srcLang,
      tgtLang: options.tgtLang,
    }));
  };
  return { train: split("dev"), test: split("devtest") };
}
