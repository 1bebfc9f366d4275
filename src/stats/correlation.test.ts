import { describe, expect, it } from "vitest";
import { averageRanks, pearson, spearman } from "./correlation.js";

// Reference values from scipy 1.17.1 on this machine:
//   x = [3.1, 1.2, 4.4, 1.2, 5.0, 9.3, 2.6, 5.0, 3.1, 7.7]
//   y = [2.0, 0.5, 3.9, 1.7, 4.1, 8.8, 2.2, 6.0, 1.9, 6.5]
//   scipy.stats.pearsonr(x, y)[0]  = 0.9614408477746635
//   scipy.stats.spearmanr(x, y)[0] = 0.9541685964428458
//   scipy.stats.rankdata(x)        = [4.5, 1.5, 6, 1.5, 7.5, 10, 3, 7.5, 4.5, 9]
//   scipy.stats.spearmanr([1,1,1,2,2,3], [5,6,6,7,7,7])[0] = 0.9000000000000001
const x = [3.1, 1.2, 4.4, 1.2, 5.0, 9.3, 2.6, 5.0, 3.1, 7.7];
const y = [2.0, 0.5, 3.9, 1.7, 4.1, 8.8, 2.2, 6.0, 1.9, 6.5];

describe("pearson", () => {
  it("matches scipy", () => {
    expect(pearson(x, y)).toBeCloseTo(0.9614408477746635, 14);
  });

  it("is ±1 for exact linear relations and accepts typed arrays", () => {
    const base = new Float64Array([1, 2, 3, 4]);
    expect(pearson(base, [3, 5, 7, 9])).toBeCloseTo(1, 15);
    expect(pearson(base, [8, 6, 4, 2])).toBeCloseTo(-1, 15);
  });

  it("is NaN for constant input and rejects unequal lengths", () => {
    expect(pearson([1, 1, 1], [1, 2, 3])).toBeNaN();
    expect(pearson([1], [2])).toBeNaN();
    expect(() => pearson([1, 2], [1, 2, 3])).toThrow(RangeError);
  });
});

describe("averageRanks", () => {
  it("averages tied ranks like scipy.stats.rankdata", () => {
    expect(Array.from(averageRanks(x))).toEqual([4.5, 1.5, 6, 1.5, 7.5, 10, 3, 7.5, 4.5, 9]);
  });

  it("rejects NaN", () => {
    expect(() => averageRanks([1, Number.NaN])).toThrow(RangeError);
  });
});

describe("spearman", () => {
  it("matches scipy, ties included", () => {
    expect(spearman(x, y)).toBeCloseTo(0.9541685964428458, 14);
    expect(spearman([1, 1, 1, 2, 2, 3], [5, 6, 6, 7, 7, 7])).toBeCloseTo(0.9000000000000001, 14);
  });

  it("is 1 for any strictly increasing transform", () => {
    const values = [0.5, 2, 3, 10, 11];
    expect(
      spearman(
        values,
        values.map((value) => Math.exp(value)),
      ),
    ).toBeCloseTo(1, 15);
  });
});
