import { readFile } from "node:fs/promises";
import { InputError } from "../errors/index.js";
import { languageName } from "./languages.js";

/**
 * A translation prompt with `{src}`, `{tgt}` and `{text}` placeholders. `{src}`/`{tgt}` become
 * English language names (`German`), `{text}` the source text. `text` is also the template's
 * identity: routers record it, because features read under another prompt are other features.
 */
export interface PromptTemplate {
  readonly text: string;
  /** Where the template came from: a file path, or `default`. */
  readonly source: string;
}

/** The instruction prompt used when no template file is given. */
export const defaultPromptTemplate: PromptTemplate = {
  text: "Translate the following text from {src} into {tgt}:\n{src}: {text}\n{tgt}:",
  source: "default",
};

const knownPlaceholders = new Set(["src", "tgt", "text"]);
/** `{name}` where name is an identifier: other braces (JSON, LaTeX) stay literal text. */
const placeholderPattern = /\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/**
 * Checks template text: `{text}` must appear, and no placeholder other than `{src}`, `{tgt}`,
 * `{text}` may. Throws InputError located at `source` (and the line of an unknown placeholder).
 */
export function parsePromptTemplate(text: string, source: string): PromptTemplate {
  let hasText = false;
  for (const match of text.matchAll(placeholderPattern)) {
    const name = match[1] ?? "";
    if (name === "text") hasText = true;
    if (!knownPlaceholders.has(name)) {
      const line = text.slice(0, match.index).split("\n").length;
      throw new InputError(
        `unknown placeholder {${name}} in prompt template (allowed: {src}, {tgt}, {text})`,
        {
          file: source,
          line,
        },
      );
    }
  }
  if (!hasText) throw new InputError("prompt template has no {text} placeholder", { file: source });
  return { text, source };
}

/** Reads a template file as UTF-8, exactly as written (a missing trailing newline stays missing). */
export async function loadPromptTemplate(file: string): Promise<PromptTemplate> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    throw new InputError(
      `cannot read prompt template: ${(error as Error).message}`,
      { file },
      { cause: error },
    );
  }
  return parsePromptTemplate(text, file);
}

/** What a template is filled with: language codes and the source text. */
export interface PromptFields {
  srcLang: string;
  tgtLang: string;
  text: string;
}

/**
 * Fills every placeholder in one pass, so braces inside the source text are never expanded again.
 * @throws UsageError for an unknown language code.
 */
export function renderPrompt(template: PromptTemplate, fields: PromptFields): string {
  const values: Record<string, string> = {
    src: languageName(fields.srcLang),
    tgt: languageName(fields.tgtLang),
    text: fields.text,
  };
  return template.text.replace(placeholderPattern, (whole, name: string) => values[name] ?? whole);
}
