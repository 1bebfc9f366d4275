import { describe, expect, it } from "vitest";
import { assertSorted, countAbove, median, quantile, quantiles, sortScores } from "./quantiles.js";

// Reference values from numpy 2.4.6 on this machine, np.quantile(x, q) with the default method:
//   x = [3.1, 1.2, 4.4, 1.2, 5.0, 9.3, 2.6, 5.0, 3.1, 7.7]
//   q = 0 → 1.2, 0.1 → 1.2, 0.25 → 2.725, 0.5 → 3.75, 0.9 → 7.859999999999999,
//   0.95 → 8.579999999999998, 1 → 9.3
const x = [3.1, 1.2, 4.4, 1.2, 5.0, 9.3, 2.6, 5.0, 3.1, 7.7];

describe("quantile", () => {
  it("matches numpy's default linear interpolation", () => {
    const sorted = sortScores(x);
    expect(quantile(sorted, 0)).toBe(1.2);
    expect(quantile(sorted, 0.1)).toBe(1.2);
    expect(quantile(sorted, 0.25)).toBeCloseTo(2.725, 14);
    expect(median(sorted)).toBeCloseTo(3.75, 14);
    expect(quantile(sorted, 0.9)).toBeCloseTo(7.859999999999999, 14);
    expect(quantile(sorted, 0.95)).toBeCloseTo(8.579999999999998, 14);
    expect(quantile(sorted, 1)).toBe(9.3);
  });

  it("interpolates by hand-computed positions", () => {
    // n = 5, q = 0.3: h = 4·0.3 = 1.2 → 20 + 0.2·(30 − 20) = 22.
    const sorted = sortScores([40, 10, 30, 20, 50]);
    expect(quantile(sorted, 0.3)).toBeCloseTo(22, 12);
    expect(Array.from(quantiles(sorted, [0, 0.5, 1]))).toEqual([10, 30, 50]);
    expect(Array.from(quantiles(sortScores([1, 2, 3, 4]), [0, 0.5, 1]))).toEqual([1, 2.5, 4]);
    expect(quantile(sortScores([7]), 0.9)).toBe(7);
  });

  it("rejects levels outside [0, 1] and gives NaN for no data", () => {
    const sorted = sortScores([1, 2]);
    expect(() => quantile(sorted, 1.5)).toThrow(RangeError);
    expect(() => quantile(sorted, Number.NaN)).toThrow(RangeError);
    expect(quantile(sortScores([]), 0.5)).toBeNaN();
  });
});

describe("SortedScores", () => {
  it("sortScores copies and sorts numerically", () => {
    const input = [10, 9, 100, -1];
    const sorted = sortScores(input);
    expect(Array.from(sorted)).toEqual([-1, 9, 10, 100]);
    expect(input).toEqual([10, 9, 100, -1]);
    expect(() => sortScores([1, Number.NaN])).toThrow(RangeError);
  });

  it("assertSorted accepts sorted data and rejects anything else", () => {
    const data = new Float64Array([1, 2, 2, 3]);
    expect(assertSorted(data)).toBe(data);
    expect(() => assertSorted(new Float64Array([1, 3, 2]))).toThrow(/not sorted/);
    expect(() => assertSorted(new Float64Array([1, Number.NaN]))).toThrow(/NaN/);
  });

  it("countAbove counts strictly greater scores", () => {
    const sorted = sortScores([1, 2, 2, 3, 5]);
    expect(countAbove(sorted, 2)).toBe(2);
    expect(countAbove(sorted, 0)).toBe(5);
    expect(countAbove(sorted, 5)).toBe(0);
    expect(countAbove(sorted, 2.5)).toBe(2);
  });
});
