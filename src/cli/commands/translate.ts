import { stat } from "node:fs/promises";
import type { Command } from "commander";
import { InputError, UsageError } from "../../errors/index.js";
import { isKnownLanguage } from "../../translators/languages.js";
import { openTranslator } from "../../translators/open.js";
import { defaultPromptTemplate, loadPromptTemplate } from "../../translators/prompt-template.js";
import type { TranslationRequest, Translator } from "../../translators/types.js";
import { AtomicFileWriter } from "../../util/atomic-file.js";
import { readJsonl } from "../../util/jsonl.js";
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
      "translations decoded in parallel (above 1, llama.cpp batches sequences, which can flip near-tie greedy tokens)",
      positiveInteger("--concurrency"),
      1,
    )
    .action(async (flags: TranslateFlags) => {
      const requests = await readTranslateInput(flags);
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
        const progress = new ProgressReporter(io, { label: "translate", total: requests.length });
        const chunkSize = Math.max(8, flags.concurrency * 4);
        for (let start = 0; start < requests.length; start += chunkSize) {
          const chunk = requests.slice(start, start + chunkSize);
          const translations = await translator.translate(chunk, { maxTokens: flags.maxTokens });
          const lines = chunk.map((request, index) => {
            const translation = translations[index];
            if (!translation) throw new Error(`no translation for ${request.id}`);
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
      } finally {
        await output.discard();
        await translator?.dispose();
      }
    });
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

async function readTranslateInput(flags: TranslateFlags): Promise<TranslationRequest[]> {
  const requests: TranslationRequest[] = [];
  for (const { line, value } of await readJsonl(flags.in)) {
    const where = { file: flags.in, line };
    if (typeof value.id !== "string" && typeof value.id !== "number")
      throw new InputError('missing "id"', where);
    if (typeof value.src !== "string" || value.src.trim() === "")
      throw new InputError('empty or missing "src"', where);
    const srcLang = typeof value.src_lang === "string" ? value.src_lang : flags.srcLang;
    const tgtLang = typeof value.tgt_lang === "string" ? value.tgt_lang : flags.tgtLang;
    if (!srcLang || !tgtLang) {
      throw new UsageError(
        `${flags.in}:${line}: no language pair: pass --src-lang and --tgt-lang or give src_lang/tgt_lang per line`,
      );
    }
    for (const code of [srcLang, tgtLang]) {
      if (!isKnownLanguage(code))
        throw new InputError(`unknown language code ${JSON.stringify(code)}`, where);
    }
    requests.push({ id: String(value.id), text: value.src, srcLang, tgtLang });
  }
  return requests;
}
