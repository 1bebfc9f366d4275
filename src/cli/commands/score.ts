import { type Command, Option } from "commander";
import { InputError, UsageError } from "../../errors/index.js";
import { corpusBleu, sentenceBleu } from "../../metrics/bleu.js";
import { corpusChrf, sentenceChrf } from "../../metrics/chrf.js";
import { TOKENIZER_NAMES, type TokenizerName } from "../../metrics/tokenizers/index.js";
import { readSegmentLines } from "../../util/text-lines.js";
import type { CliIo } from "../io.js";

interface ScoreFlags {
  metric: "bleu" | "chrf" | "chrf++";
  hyp: string;
  ref: string[];
  tokenize?: string;
  lowercase?: boolean;
  sentence?: boolean;
  json?: boolean;
}

/** What one command invocation scores: the hypotheses and parallel reference streams. */
interface ScoreInput {
  hypotheses: string[];
  referenceStreams: string[][];
}

export function registerScore(program: Command, io: CliIo): void {
  program
    .command("score")
    .description(
      "Score a hypothesis file against one or more reference files (sacreBLEU-exact BLEU, chrF, chrF++)",
    )
    .addOption(
      new Option("--metric <name>", "metric").choices(["bleu", "chrf", "chrf++"]).makeOptionMandatory(),
    )
    .requiredOption("--hyp <file>", "hypotheses, one segment a line (UTF-8)")
    .requiredOption(
      "--ref <file>",
      "references, one segment a line; repeat for several references",
      collect,
      [],
    )
    .addOption(new Option("--tokenize <name>", "BLEU tokenizer (default 13a)").choices([...TOKENIZER_NAMES]))
    .option("--lowercase", "case-insensitive scoring")
    .option("--sentence", "score every segment instead of the corpus")
    .option("--json", "machine-readable output (JSON; JSONL with --sentence)")
    .action(async (flags: ScoreFlags) => {
      await runScore(flags, io);
    });
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

async function readInput(flags: ScoreFlags): Promise<ScoreInput> {
  const hypotheses = await readNonEmptySegmentLines(flags.hyp);
  const referenceStreams: string[][] = [];
  for (const file of flags.ref) {
    const lines = await readNonEmptySegmentLines(file);
    if (lines.length !== hypotheses.length) {
      // Point at the first line that has no partner in the other file.
      const line = Math.min(lines.length, hypotheses.length) + 1;
      throw new InputError(
        `has ${lines.length} lines but ${flags.hyp} has ${hypotheses.length}; they must be parallel`,
        { file, line },
      );
    }
    referenceStreams.push(lines);
  }
  return { hypotheses, referenceStreams };
}

/**
 * A file with no segment at all has no score; sacreBLEU stops on it too ("Test set contains no
 * sentence"). A file holding one empty line is one empty segment and is scored, as there.
 */
async function readNonEmptySegmentLines(file: string): Promise<string[]> {
  const lines = await readSegmentLines(file);
  if (lines.length === 0) throw new InputError("empty file: no segment to score", { file });
  return lines;
}

async function runScore(flags: ScoreFlags, io: CliIo): Promise<void> {
  if (flags.ref.length === 0)
    throw new UsageError("--ref <file> is required (repeat it for several references)");
  if (flags.tokenize !== undefined && flags.metric !== "bleu") {
    throw new UsageError(`--tokenize applies to bleu only, not ${flags.metric}`);
  }
  const { hypotheses, referenceStreams } = await readInput(flags);
  const lowercase = Boolean(flags.lowercase);
  const tokenize = flags.tokenize as TokenizerName | undefined;

  if (flags.sentence) {
    for (let i = 0; i < hypotheses.length; i++) {
      const hypothesis = hypotheses[i] as string;
      const references = referenceStreams.map((stream) => stream[i] as string);
      const result =
        flags.metric === "bleu"
          ? sentenceBleu(hypothesis, references, { tokenize, lowercase })
          : sentenceChrf(hypothesis, references, { wordOrder: flags.metric === "chrf++" ? 2 : 0, lowercase });
      io.stdout(
        flags.json ? `${JSON.stringify({ score: result.score })}\n` : `${formatScore(result.score)}\n`,
      );
    }
    return;
  }

  const result =
    flags.metric === "bleu"
      ? corpusBleu(hypotheses, referenceStreams, { tokenize, lowercase })
      : corpusChrf(hypotheses, referenceStreams, { wordOrder: flags.metric === "chrf++" ? 2 : 0, lowercase });
  if (flags.json) {
    io.stdout(
      `${JSON.stringify({ metric: flags.metric, score: result.score, signature: result.signature })}\n`,
    );
  } else {
    io.stdout(`${displayName(flags.metric)} = ${formatScore(result.score)}  ${result.signature}\n`);
  }
}

function displayName(metric: ScoreFlags["metric"]): string {
  return metric === "bleu" ? "BLEU" : metric === "chrf" ? "chrF2" : "chrF2++";
}

function formatScore(score: number): string {
  return score.toFixed(4);
}
