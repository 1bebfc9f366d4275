import { describe, expect, it } from "vitest";
import { mean, std, variance } from "./summary.js";

// Reference values from numpy 2.4.6 on this machine:
//   x = [3.1, 1.2, 4.4, 1.2, 5.0, 9.3, 2.6, 5.0, 3.1, 7.7]
//   np.mean(x) = 4.26, np.var(x) = 6.252400000000001, np.var(x, ddof=1) = 6.947111111111112,
//   np.std(x) = 2.500479953928845
const sample = [3.1, 1.2, 4.4, 1.2, 5.0, 9.3, 2.6, 5.0, 3.1, 7.7];

describe("summary statistics", () => {
  it("match numpy on a small sample", () => {
    expect(mean(sample)).toBeCloseTo(4.26, 14);
    expect(variance(sample)).toBeCloseTo(6.252400000000001, 13);
    expect(variance(sample, { ddof: 1 })).toBeCloseTo(6.947111111111112, 13);
    expect(std(sample)).toBeCloseTo(2.500479953928845, 13);
  });

  it("match hand-computed values", () => {
    // [2, 4, 4, 4, 5, 5, 7, 9]: mean 5, squared deviations sum to 32, population variance 4.
    const values = new Float32Array([2, 4, 4, 4, 5, 5, 7, 9]);
    expect(mean(values)).toBe(5);
    expect(variance(values)).toBe(4);
    expect(std(values)).toBe(2);
    expect(variance(values, { ddof: 1 })).toBeCloseTo(32 / 7, 15);
  });

  it("stay exact with a large offset", () => {
    // The naive Σx²/n − mean² formula loses every digit here; the two-pass one keeps them.
    const values = [1e9 + 4, 1e9 + 7, 1e9 + 13, 1e9 + 16];
    expect(mean(values)).toBe(1e9 + 10);
    expect(variance(values)).toBe(22.5);
  });

  it("give NaN when undefined", () => {
    expect(mean([])).toBeNaN();
    expect(variance([1], { ddof: 1 })).toBeNaN();
    expect(variance([3])).toBe(0);
  });
});
