import { stat } from "node:fs/promises";
import type { Command } from "commander";
import { lineLanguages } from "../../collect/index.js";
import { InputError, UsageError } from "../../errors/index.js";
import { openTranslator } from "../../translators/open.js";
import {
  describeTooLongPrompt,
  findTooLongPrompts,
  type RequestOrigin,
  tooLongPromptsError,
  translateEach,
  uncheckedModelsNote,
} from "../../translators/prompt-fit.js";
import { defaultPromptTemplate, loadPromptTemplate } from "../../translators/prompt-template.js";
import type { Translation, TranslationRequest, Translator } from "../../translators/types.js";
import { AtomicFileWriter } from "../../util/atomic-file.js";
import { readJsonl } from "../../util/jsonl.js";
import { UniqueIds } from "../../util/unique-ids.js";
import type { CliIo } from "../io.js";
import { positiveInteger } from "../options.js";
import { ProgressReporter } from "../progress.js";

interface TranslateFlags {
  model: string;
  srcLang?: string;
  tgtLang?: string;
  in: string;
  out: string;
  threads: number;
  maxTokens: number;
  template?: string;
  concurrency: number;
  skipTooLong?: boolean;
}

export function registerTranslate(program: Command, io: CliIo): void {
  program
    .command("translate")
    .description("Translate a JSONL file with one model (greedy, deterministic)")
    .requiredOption("--model <spec>", "path.gguf, hf:<user>/<repo>/<file>.gguf or openai:<baseURL>#<model>")
    .option("--src-lang <code>", "source language for lines without src_lang")
    .option("--tgt-lang <code>", "target language for lines without tgt_lang")
    .requiredOption("--in <file>", 'input JSONL, one {"id","src"} per line')
    .requiredOption("--out <file>", "output JSONL, in input order")
    .option("--threads <n>", "CPU threads for an in-process model", positiveInteger("--threads"), 1)
    .option("--max-tokens <n>", "maximum new tokens per translation", positiveInteger("--max-tokens"), 256)
    .option("--template <file>", "prompt template file with {src}, {tgt}, {text}")
    .option(
      "--concurrency <n>",
      "translations decoded in parallel (llama.cpp sequences sharing batches, or HTTP requests in flight)",
      positiveInteger("--concurrency"),
      1,
    )
    .option(
      "--skip-too-long",
      "leave out segments whose prompt plus --max-tokens does not fit the model's context, listing them on stderr (default: refuse the run, listing them)",
    )
    .action(async (flags: TranslateFlags) => {
      const segments = await readTranslateInput(flags);
      await assertOutputIsNotInput(flags.in, flags.out);
      const template = flags.template ? await loadPromptTemplate(flags.template) : defaultPromptTemplate;
      let translator: Translator | undefined;
      // Opened before the model loads, so an unusable --out fails at once; replaces --out only when complete.
      const output = await AtomicFileWriter.open(flags.out);
      try {
        translator = await openTranslator(flags.model, {
          threads: flags.threads,
          template,
          concurrency: flags.concurrency,
          maxTokens: flags.maxTokens,
        });
        const kept = selectSegmentsThatFit(translator, segments, flags, io);
        const progress = new ProgressReporter(io, { label: "translate", total: kept.segments.length });
        const chunkSize = Math.max(8, flags.concurrency * 4);
        for (let start = 0; start < kept.segments.length; start += chunkSize) {
          const chunk = kept.segments.slice(start, start + chunkSize);
          const translations = await translateEach(
            translator,
            chunk.map((segment) => segment.request),
            flags.maxTokens,
            (index) => originOf(flags.in, chunk[index] as InputSegment),
          );
          const lines = chunk.map(({ request }, index) => {
            const translation = translations[index] as Translation;
            return `${JSON.stringify({
              id: request.id,
              src: request.text,
              hyp: translation.text,
              model: translation.model,
              prompt_tokens: translation.promptTokens,
              output_tokens: translation.outputTokens,
              ms: Math.round(translation.ms * 100) / 100,
            })}\n`;
          });
          await output.write(lines.join(""));
          progress.advance(chunk.length);
        }
        progress.finish();
        await output.commit();
        if (flags.skipTooLong) io.stderr(kept.skippedReport);
      } finally {
        await output.discard();
        await translator?.dispose();
      }
    });
}

/** One input line of `translate`. */
interface InputSegment {
  request: TranslationRequest & { id: string };
  /** 1-based line in the input file. */
  line: number;
}

function originOf(file: string, segment: InputSegment): RequestOrigin {
  return { file, line: segment.line, id: segment.request.id };
}

/**
 * Checks every prompt against the loaded model before anything is decoded. Segments that do not
 * fit refuse the run (all of them listed), or with --skip-too-long are left out and listed in the
 * returned report, printed when the run ends.
 */
function selectSegmentsThatFit(
  translator: Translator,
  segments: readonly InputSegment[],
  flags: TranslateFlags,
  io: CliIo,
): { segments: InputSegment[]; skippedReport: string } {
  const locate = (index: number) => originOf(flags.in, segments[index] as InputSegment);
  const { tooLong, unchecked } = findTooLongPrompts(
    [{ name: translator.modelId, translator }],
    segments.map((segment) => segment.request),
    flags.maxTokens,
    locate,
  );
  if (tooLong.length > 0 && !flags.skipTooLong)
    throw tooLongPromptsError(tooLong, segments.length, flags.maxTokens, locate, "--skip-too-long");
  if (flags.skipTooLong && unchecked.length > 0) {
    io.stderr(`note: ${uncheckedModelsNote(unchecked)}\n`);
  }
  const skipped = new Set(tooLong.map((prompt) => prompt.index));
  const details = tooLong.map(
    (prompt) => `  ${describeTooLongPrompt(prompt.overflows, locate(prompt.index))}\n`,
  );
  return {
    segments: segments.filter((_, index) => !skipped.has(index)),
    skippedReport: `translate: skipped ${tooLong.length} of ${segments.length} segments too long for the context (--skip-too-long)${tooLong.length > 0 ? ":" : ""}\n${details.join("")}`,
  };
}

/**
 * Refuses an --out that is the --in file under another name (`./x`, a symbolic link, a hard link):
 * the finished output would replace the input. Compared by device and inode, so every spelling counts.
 */
async function assertOutputIsNotInput(input: string, output: string): Promise<void> {
  const [inputStats, outputStats] = await Promise.all(
    [input, output].map((file) => stat(file, { bigint: true }).catch(() => undefined)),
  );
  if (
    inputStats !== undefined &&
    outputStats !== undefined &&
    inputStats.dev === outputStats.dev &&
    inputStats.ino === outputStats.ino
  ) {
    throw new UsageError(`--out ${output} is the input file ${input}; write the translations elsewhere`);
  }
}

async function readTranslateInput(flags: TranslateFlags): Promise<InputSegment[]> {
  const segments: InputSegment[] = [];
  const ids = new UniqueIds(flags.in);
  for (const { line, value } of await readJsonl(flags.in)) {
    const where = { file: flags.in, line };
    if (typeof value.id !== "string" && typeof value.id !== "number")
      throw new InputError('missing "id"', where);
    ids.add(String(value.id), line);
    if (typeof value.src !== "string" || value.src.trim() === "")
      throw new InputError('empty or missing "src"', where);
    const { srcLang, tgtLang } = lineLanguages(value, flags, where);
    segments.push({ request: { id: String(value.id), text: value.src, srcLang, tgtLang }, line });
  }
  return segments;
}
