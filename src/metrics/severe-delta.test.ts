import { describe, expect, it } from "vitest";
import { defaultSevereDelta, severeDeltaFor } from "./severe-delta.js";

describe("severe-loss δ", () => {
  it("has a default per known metric, whatever the scores", () => {
    expect(defaultSevereDelta("chrf++")).toBe(10);
    expect(defaultSevereDelta("mqm")).toBe(5);
    expect(defaultSevereDelta("MetricX-23")).toBe(2.5);
    expect(defaultSevereDelta("xcomet")).toBe(0.1);
    expect(severeDeltaFor("bleu", [0, 0.5, 1])).toEqual({ delta: 10, note: null });
  });

  it("takes a tenth of the scores' spread for a metric of unknown scale, and says so", () => {
    // Scores 0.00, 0.01, …, 1.00: the 1st to 99th percentile spread is 0.98.
    const scores = Array.from({ length: 101 }, (_, index) => index / 100);
    const chosen = severeDeltaFor("http", [...scores, null, Number.NaN]);
    expect(chosen.delta).toBe(0.098);
    expect(chosen.note).toMatch(
      /label metric "http" has no known scale: severe loss means a gain below −0\.098/,
    );
    // An outlier does not set the scale.
    expect(severeDeltaFor("metrics", [...scores, 1e6]).delta).toBe(0.099);
    // No spread: the old fixed value, said.
    expect(severeDeltaFor("http", [3, 3, 3])).toEqual({
      delta: 10,
      note: expect.stringMatching(/do not spread/),
    });
  });
});
