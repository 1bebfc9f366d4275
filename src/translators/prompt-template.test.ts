import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InputError, UsageError } from "../errors/index.js";
import {
  defaultPromptTemplate,
  loadPromptTemplate,
  parsePromptTemplate,
  renderPrompt,
} from "./prompt-template.js";

let directory: string;
beforeAll(async () => {
  directory = await mkdtemp(path.join(tmpdir(), "routelmt-template-"));
});
afterAll(async () => {
  await rm(directory, { recursive: true, force: true });
});

describe("renderPrompt", () => {
  it("fills the default instruction template with language names", () => {
    const prompt = renderPrompt(defaultPromptTemplate, { srcLang: "en", tgtLang: "deu", text: "A dog." });
    expect(prompt).toBe("Translate the following text from English into German:\nEnglish: A dog.\nGerman:");
  });

  it("does not expand placeholders that appear inside the source text", () => {
    const template = parsePromptTemplate("{src}: {text}\n{tgt}:", "inline");
    expect(renderPrompt(template, { srcLang: "en", tgtLang: "de", text: "say {tgt} and {x}" })).toBe(
      "English: say {tgt} and {x}\nGerman:",
    );
  });

  it("rejects unknown language codes", () => {
    expect(() => renderPrompt(defaultPromptTemplate, { srcLang: "en", tgtLang: "xx", text: "a" })).toThrow(
      UsageError,
    );
  });
});

describe("loadPromptTemplate", () => {
  it("keeps the file exactly, including the missing trailing newline", async () => {
    const file = path.join(directory, "plain.template");
    await writeFile(file, "{src}: {text}\n{tgt}:", "utf8");
    const template = await loadPromptTemplate(file);
    expect(template.text).toBe("{src}: {text}\n{tgt}:");
    expect(template.source).toBe(file);
  });

  it("keeps a trailing newline when the file has one, and literal JSON braces", async () => {
    const file = path.join(directory, "json.template");
    await writeFile(file, '{"q": 1}\n{text}\n', "utf8");
    expect((await loadPromptTemplate(file)).text).toBe('{"q": 1}\n{text}\n');
  });

  it("rejects a template without {text}, naming the file", async () => {
    const file = path.join(directory, "no-text.template");
    await writeFile(file, "{src} to {tgt}", "utf8");
    await expect(loadPromptTemplate(file)).rejects.toThrow(InputError);
    await expect(loadPromptTemplate(file)).rejects.toThrow(`${file}: prompt template has no {text}`);
  });

  it("rejects an unknown placeholder with file and line", async () => {
    const file = path.join(directory, "unknown.template");
    await writeFile(file, "{src}: {text}\n{target}:", "utf8");
    const error = await loadPromptTemplate(file).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(InputError);
    expect((error as InputError).line).toBe(2);
    expect((error as InputError).message).toContain("{target}");
  });

  it("reports a missing file as InputError", async () => {
    await expect(loadPromptTemplate(path.join(directory, "absent.template"))).rejects.toThrow(InputError);
  });
});
