import { describe, expect, it } from "vitest";
import { tokenizeInternational } from "./tokenizer-intl.js";

// Expected outputs hand-derived from the mteval-v14 rules (Unicode categories P, S, N) and
// cross-checked against sacreBLEU 2.6.0's TokenizerV14International when this file was written.
describe("tokenizeInternational", () => {
  it.each([
    ["Hello, world!", "Hello , world !"],
    // separators between digits stay; the currency symbol (Sc) splits
    ["1,000.50 costs 5€.", "1,000.50 costs 5 € ."],
    // mteval-v14 quirk kept by sacreBLEU: a period after a final number is not split
    ["The year 2024.", "The year 2024."],
    // Unicode punctuation: guillemets (Pi/Pf), em dash and hyphen (Pd), ellipsis (Po)
    ["«Bonjour» — dit-il…", "« Bonjour » — dit - il …"],
    // maths symbols (Sm) split; superscript two is a number (No) and % between digits stays
    ["a+b=c x² 3.5%", "a + b = c x² 3.5%"],
    ["¿Qué? ¡Sí!", "¿ Qué ? ¡ Sí !"],
    // unlike 13a, apostrophes split, while a hyphen between digits does not
    ["don't 1990-2000", "don ' t 1990-2000"],
  ])("tokenizes %j", (line, expected) => {
    expect(tokenizeInternational(line)).toBe(expected);
  });

  it("does not unescape HTML entities", () => {
    expect(tokenizeInternational("&amp;")).toBe("& amp ;");
  });
});
