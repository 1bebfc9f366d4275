import { describe, expect, it } from "vitest";
import { UsageError } from "../errors/index.js";
import { isKnownLanguage, languageName } from "./languages.js";

describe("languageName", () => {
  it.each([
    ["de", "German"],
    ["deu", "German"],
    ["ger", "German"],
    ["EN", "English"],
    ["fra", "French"],
    ["zho", "Chinese"],
    ["ces", "Czech"],
    ["zh-Hant", "Traditional Chinese"],
    ["zh-Hans", "Simplified Chinese"],
    ["pt-BR", "Brazilian Portuguese"],
    ["iw", "Hebrew"],
  ])("names %s as %s", (code, name) => {
    expect(languageName(code)).toBe(name);
  });

  it("names FLORES-200 codes that ICU leaves unnamed", () => {
    expect(languageName("pbt")).toBe("Southern Pashto");
    expect(languageName("acm")).toBe("Mesopotamian Arabic");
  });

  it.each(["", "xx", "qaa", "en_US", "toolongcode", "und", "zxx", "mul"])(
    "rejects %j with a UsageError naming it",
    (code) => {
      expect(() => languageName(code)).toThrow(UsageError);
      expect(() => languageName(code)).toThrow(JSON.stringify(code));
      expect(isKnownLanguage(code)).toBe(false);
    },
  );

  it("reports known codes", () => {
    expect(isKnownLanguage("deu")).toBe(true);
    expect(isKnownLanguage("zh-Hant")).toBe(true);
  });
});
