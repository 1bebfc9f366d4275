import { describe, expect, it } from "vitest";
import {
  availableRestackInputs,
  fitRestack,
  outOfFoldRestack,
  type PosthocObservation,
  restackInputValue,
  restackScore,
} from "./gain-restack.js";

const observation = (overrides: Partial<PosthocObservation> = {}): PosthocObservation => ({
  gain: 2,
  smallConfidence: -0.5,
  largeLikelihood: -1.25,
  promptTokens: 20,
  src: "Ein Hund läuft.",
  small: "A dog",
  ...overrides,
});

describe("restackInputValue", () => {
  it("computes each input as documented", () => {
    const each = observation();
    expect(restackInputValue("gain", each)).toBe(2);
    expect(restackInputValue("small-confidence", each)).toBe(-0.5);
    expect(restackInputValue("large-likelihood", each)).toBe(-1.25);
    expect(restackInputValue("log-prompt-tokens", each)).toBeCloseTo(Math.log(20), 15);
    // 5 characters against 15 (ä is one code point): ln 6 − ln 16.
    expect(restackInputValue("length-ratio", each)).toBeCloseTo(Math.log(6) - Math.log(16), 15);
    // Code points, not UTF-16 units: "😀" is one character.
    expect(restackInputValue("length-ratio", observation({ small: "😀", src: "a" }))).toBe(0);
  });

  it("is null where the request lacks it", () => {
    expect(restackInputValue("small-confidence", observation({ smallConfidence: null }))).toBeNull();
    expect(restackInputValue("large-likelihood", observation({ largeLikelihood: Number.NaN }))).toBeNull();
    expect(restackInputValue("log-prompt-tokens", observation({ promptTokens: 0 }))).toBeNull();
    expect(restackInputValue("length-ratio", observation({ small: null }))).toBeNull();
  });
});

describe("fitRestack", () => {
  // gain = 1 + 2·ĝ − 4·confidence exactly, on 200 rows with independent inputs.
  const rows = Array.from({ length: 200 }, (_, row) =>
    observation({ gain: ((row * 37) % 23) / 4 - 2, smallConfidence: -((row * 11) % 17) / 8 }),
  );
  const truth = rows.map((each) => 1 + 2 * each.gain - 4 * (each.smallConfidence as number));

  it("recovers an exact linear relation (up to the small penalty) and scores as it was fitted", () => {
    const restack = fitRestack(["gain", "small-confidence"], rows, truth);
    expect(restack.inputs).toEqual(["gain", "small-confidence"]);
    const scored = rows.map((each) => restackScore(restack, each)!);
    // λ = 1 on standardized inputs against 200 rows shrinks by under 1 %: close, not exact.
    scored.forEach((value, row) => {
      expect(Math.abs(value - truth[row]!)).toBeLessThan(0.01 * Math.abs(truth[row]!) + 0.1);
    });
    expect(restackScore(restack, observation({ smallConfidence: null }))).toBeNull();
  });

  it("refuses a re-estimate without the gain first, and rows without an input", () => {
    expect(() => fitRestack(["small-confidence"], rows, truth)).toThrow(/first input must be the gain/);
    expect(() =>
      fitRestack(
        ["gain", "small-confidence"],
        [...rows, observation({ smallConfidence: null })],
        [...truth, 0],
      ),
    ).toThrow(/needs small-confidence of every row; row 200/);
  });

  it("offers only the inputs every row has", () => {
    const some = [observation(), observation({ largeLikelihood: null })];
    expect(availableRestackInputs(some)).toEqual([
      "gain",
      "small-confidence",
      "log-prompt-tokens",
      "length-ratio",
    ]);
  });
});

describe("outOfFoldRestack", () => {
  it("scores each fold's rows with a re-estimate fitted on the other folds only", () => {
    const rows = Array.from({ length: 12 }, (_, row) =>
      observation({ gain: row % 5, smallConfidence: -((row * 7) % 11) / 4 }),
    );
    const gains = rows.map((each, row) => each.gain - 3 * (each.smallConfidence as number) + (row % 2));
    const folds = Int32Array.from(rows, (_, row) => row % 3);
    const scores = outOfFoldRestack(["gain", "small-confidence"], rows, gains, folds);
    for (let fold = 0; fold < 3; fold++) {
      const training = rows.flatMap((_, row) => (row % 3 === fold ? [] : [row]));
      const restack = fitRestack(["gain", "small-confidence"], rows, gains, training);
      rows.forEach((each, row) => {
        if (row % 3 === fold) expect(scores[row]).toBe(restackScore(restack, each));
      });
    }
  });
});
