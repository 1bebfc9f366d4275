import type { Command } from "commander";
import { importReplay, parseExtraScore } from "../../collect/index.js";
import type { CliIo } from "../io.js";

interface ImportFlags {
  in: string;
  out: string;
  smallField: string;
  largeField: string;
  smallLabel: string;
  largeLabel: string;
  labelName?: string;
  lowerIsBetter?: boolean;
  score: string[];
  srcField: string;
  refField: string;
  idField: string;
  srcLang?: string;
  tgtLang?: string;
}

export function registerImport(program: Command, io: CliIo): void {
  program
    .command("import")
    .description(
      "Build a dataset from records that already hold two systems' outputs and scores (no models run)",
    )
    .requiredOption("--in <file>", "input JSONL records")
    .requiredOption("--out <dir>", "dataset directory to write")
    .requiredOption(
      "--small-field <path>",
      "dot path of the small system's translation, e.g. systems.NLLB_Greedy",
    )
    .requiredOption("--large-field <path>", "dot path of the large system's translation")
    .requiredOption(
      "--small-label <path>",
      "dot path of the small system's label score, e.g. mqm.NLLB_Greedy",
    )
    .requiredOption("--large-label <path>", "dot path of the large system's label score")
    .option("--label-name <name>", "name of the label metric (default: first key of --small-label)")
    .option("--lower-is-better", "the label is error-like (gain is then small − large)")
    .option(
      "--score <spec>",
      "extra score NAME=SMALL_PATH,LARGE_PATH (repeatable)",
      (v, prev: string[]) => [...prev, v],
      [],
    )
    .option("--src-field <path>", "dot path of the source text", "src")
    .option("--ref-field <path>", "dot path of the reference", "ref")
    .option("--id-field <path>", "dot path of the segment id", "id")
    .option("--src-lang <code>", "source language (default: record src_lang or lp)")
    .option("--tgt-lang <code>", "target language (default: record tgt_lang or lp)")
    .action(async (flags: ImportFlags) => {
      const started = Date.now();
      const summary = await importReplay({
        input: flags.in,
        out: flags.out,
        smallField: flags.smallField,
        largeField: flags.largeField,
        smallLabel: flags.smallLabel,
        largeLabel: flags.largeLabel,
        labelName: flags.labelName,
        labelLowerIsBetter: flags.lowerIsBetter,
        scores: flags.score.map(parseExtraScore),
        srcField: flags.srcField,
        refField: flags.refField,
        idField: flags.idField,
        srcLang: flags.srcLang,
        tgtLang: flags.tgtLang,
      });
      if (summary.alreadyComplete) {
        io.stderr(`${flags.out} already holds this import; nothing to do\n`);
        return;
      }
      const records = summary.written;
      io.stderr(
        `imported ${records} segments into ${flags.out} (${summary.skippedNullLabel} skipped: null label) in ${((Date.now() - started) / 1000).toFixed(1)} s\n`,
      );
    });
}
