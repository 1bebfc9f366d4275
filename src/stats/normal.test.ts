import { describe, expect, it } from "vitest";
import { normalQuantile, studentT975 } from "./normal.js";

describe("normalQuantile", () => {
  it("matches scipy.stats.norm.ppf in the centre and both tails", () => {
    const reference: [number, number][] = [
      [0.5, 0],
      [0.975, 1.959963984540054],
      [0.3, -0.5244005127080409],
      [0.001, -3.090232306167813],
      [1e-10, -6.361340902404056],
      [0.02425, -1.972961051311885],
      [0.97575, 1.972961051311885],
      [0.9999999, 5.199337582290661],
    ];
    for (const [probability, expected] of reference) {
      expect(normalQuantile(probability), String(probability)).toBeCloseTo(expected, 12);
    }
  });

  it("refuses probabilities outside (0, 1)", () => {
    for (const probability of [0, 1, -0.1, Number.NaN])
      expect(() => normalQuantile(probability)).toThrow(RangeError);
  });
});

describe("studentT975", () => {
  it("matches scipy.stats.t.ppf(0.975, dof) in the table and beyond it", () => {
    expect(studentT975(1)).toBeCloseTo(12.706205, 6);
    expect(studentT975(4)).toBeCloseTo(2.776445, 6);
    expect(studentT975(30)).toBeCloseTo(2.042272, 6);
    expect(studentT975(40)).toBeCloseTo(2.021075390306273, 3);
    expect(studentT975(120)).toBeCloseTo(1.9799304050824402, 4);
    expect(studentT975(1000)).toBeCloseTo(1.9623390808264083, 5);
  });

  it("refuses a non-positive or fractional dof", () => {
    expect(() => studentT975(0)).toThrow(RangeError);
    expect(() => studentT975(2.5)).toThrow(RangeError);
  });
});
