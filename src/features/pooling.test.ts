import { describe, expect, it } from "vitest";
import { UsageError } from "../errors/index.js";
import { argmax, logSoftmaxAt, NORM_STATISTICS_DIM, normStatistics, RowPooler } from "./pooling.js";

describe("RowPooler", () => {
  it("keeps the last row of the last chunk for last pooling", () => {
    const pooler = new RowPooler("last", 2);
    pooler.add([1, 2, 3, 4], 2);
    pooler.add([5, 6, 7, 8, 9, 10], 3);
    expect(Array.from(pooler.result())).toEqual([9, 10]);
    expect(pooler.rows).toBe(5);
  });
  it("averages every row across chunks for mean pooling", () => {
    // Rows (1,2), (3,4) then (5,6): mean (3, 4).
    const pooler = new RowPooler("mean", 2);
    pooler.add(new Float32Array([1, 2, 3, 4]), 2);
    pooler.add(new Float32Array([5, 6]), 1);
    expect(Array.from(pooler.result())).toEqual([3, 4]);
  });
  it("sums in float64: a large offset does not swallow small rows", () => {
    // float32 cannot hold 2^24 + 1, but the float64 sum (2^24 + 1 + 1) / 2 = 2^23 + 1 is exact.
    const pooler = new RowPooler("mean", 1);
    pooler.add([2 ** 24 + 1], 1);
    pooler.add([1], 1);
    expect(pooler.result()[0]).toBe(2 ** 23 + 1);
  });
  it("summarises the rows' Euclidean norms for norms pooling", () => {
    // Rows (3,4), (0,1), (6,8), (0,0), (1,0) across two chunks: norms 5, 1, 10, 0, 1.
    const pooler = new RowPooler("norms", 2);
    pooler.add([3, 4, 0, 1], 2);
    pooler.add([6, 8, 0, 0, 1, 0], 3);
    // Mean 17/5 = 3.4; variance (1.6² + 2.4² + 6.6² + 3.4² + 2.4²) / 5 = 13.84.
    const expected = [0, 1, 1, 5, 10, 5, 1, 1, 3.4, Math.sqrt(13.84)];
    expect(pooler.result()).toHaveLength(NORM_STATISTICS_DIM);
    for (const [index, value] of Array.from(pooler.result()).entries()) {
      expect(value).toBeCloseTo(expected[index]!, 6);
    }
  });
  it("repeats the last available norm in each tail of a short prompt", () => {
    expect(Array.from(normStatistics([2, 1]))).toEqual([1, 2, 2, 2, 2, 1, 1, 1, 1.5, 0.5]);
    expect(Array.from(normStatistics([3]))).toEqual([3, 3, 3, 3, 3, 3, 3, 3, 3, 0]);
    expect(() => normStatistics([])).toThrow(UsageError);
  });
  it("ignores empty chunks, refuses short data and an empty result", () => {
    const pooler = new RowPooler("mean", 3);
    pooler.add([], 0);
    expect(() => pooler.result()).toThrow(UsageError);
    expect(() => pooler.add([1, 2], 1)).toThrow(UsageError);
    expect(() => new RowPooler("last", 0)).toThrow(UsageError);
  });
});

describe("argmax", () => {
  it("returns the index of the largest value, the first on ties", () => {
    expect(argmax([0.5, 2, -1, 2])).toBe(1);
    expect(argmax(new Float32Array([-3, -2, -2.5]))).toBe(1);
    expect(argmax([Number.NEGATIVE_INFINITY, -1e30])).toBe(1);
    expect(() => argmax([])).toThrow(UsageError);
  });
});

describe("logSoftmaxAt", () => {
  it("is the log of the softmax probability, computed without overflow", () => {
    // softmax([0, ln 3]) = [1/4, 3/4]
    expect(logSoftmaxAt([0, Math.log(3)], 1)).toBeCloseTo(Math.log(0.75), 12);
    expect(logSoftmaxAt([0, Math.log(3)], 0)).toBeCloseTo(Math.log(0.25), 12);
    // Shifting every logit changes nothing, even far beyond exp's range.
    expect(logSoftmaxAt([1000, 1000 + Math.log(3)], 1)).toBeCloseTo(Math.log(0.75), 9);
    expect(logSoftmaxAt(Float32Array.of(2, 2, 2, 2), 3)).toBeCloseTo(Math.log(0.25), 6);
  });
});
