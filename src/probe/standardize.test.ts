import { describe, expect, it } from "vitest";
import { fitStandardizer, safeScale, standardizeRow } from "./standardize.js";

describe("fitStandardizer", () => {
  // Rows: (1, 10, 5), (3, 10, 5), (5, 40, 5), (7, 40, 5).
  const matrix = { features: Float32Array.from([1, 10, 5, 3, 10, 5, 5, 40, 5, 7, 40, 5]), rows: 4, dim: 3 };

  it("uses population statistics of all rows by default", () => {
    // Column 0: mean 4, deviations ±1, ±3 → variance 5; column 1: mean 25, variance 225; column 2 constant.
    const { mean, std } = fitStandardizer(matrix);
    expect(Array.from(mean)).toEqual([4, 25, 5]);
    expect(std[0]).toBeCloseTo(Math.sqrt(5), 14);
    expect(std[1]).toBe(15);
    expect(std[2]).toBe(1);
  });

  it("uses only the given training rows", () => {
    // Rows 0 and 1 only: column 0 mean 2, std 1; column 1 constant 10 → std 1.
    const { mean, std } = fitStandardizer(matrix, [0, 1]);
    expect(Array.from(mean)).toEqual([2, 10, 5]);
    expect(Array.from(std)).toEqual([1, 1, 1]);
    const target = new Float64Array(3);
    standardizeRow({ mean, std }, matrix.features, 3, target);
    expect(Array.from(target)).toEqual([5, 30, 0]);
  });

  it("treats rounding residue on a constant column as constant", () => {
    expect(safeScale(1e-14, 3)).toBe(1);
    expect(safeScale(1e-3, 3)).toBe(1e-3);
    expect(safeScale(0, 0)).toBe(1);
  });
});
