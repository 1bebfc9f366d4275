import { describe, expect, it } from "vitest";
import { applyRopeNormal, argmax, matVec, rmsNorm, silu, softmax } from "./reference-llama.js";

describe("reference llama numerics", () => {
  it("rmsNorm divides by the root mean square and applies the weight", () => {
    // rms([3, 4]) = sqrt(12.5) = 3.5355339
    const out = rmsNorm([3, 4], [1, 2], 0);
    expect(out[0]).toBeCloseTo(0.8485281, 6);
    expect(out[1]).toBeCloseTo(2.2627417, 6);
    // eps enters under the root: rms([1, 1]) with eps 3 is 2.
    expect(Array.from(rmsNorm([1, 1], [1, 1], 3))).toEqual([0.5, 0.5]);
  });

  it("matVec reads a [inputs, outputs] ggml matrix as row-major [outputs][inputs]", () => {
    const weight = [1, 2, 3, 4, 5, 6];
    expect(Array.from(matVec(weight, 3, 2, [1, 1, 1]))).toEqual([6, 15]);
    expect(Array.from(matVec(weight, 3, 2, [1, 0, -1]))).toEqual([-2, -2]);
    expect(() => matVec(weight, 2, 2, [1, 1])).toThrow(RangeError);
  });

  it("applyRopeNormal rotates adjacent pairs by position · base^(−2i/d)", () => {
    const atZero = Float64Array.from([0.3, -0.2, 0.7, 0.1]);
    applyRopeNormal(atZero, 0, 100);
    expect(Array.from(atZero)).toEqual([0.3, -0.2, 0.7, 0.1]);
    const head = Float64Array.from([1, 0, 1, 0]);
    applyRopeNormal(head, 1, 100);
    // pair 0: theta = 1; pair 1: theta = 100^(-2/4) = 0.1
    expect(head[0]).toBeCloseTo(Math.cos(1), 12);
    expect(head[1]).toBeCloseTo(Math.sin(1), 12);
    expect(head[2]).toBeCloseTo(Math.cos(0.1), 12);
    expect(head[3]).toBeCloseTo(Math.sin(0.1), 12);
    const second = Float64Array.from([0, 1, 0, 0]);
    applyRopeNormal(second, 2, 100);
    expect(second[0]).toBeCloseTo(-Math.sin(2), 12);
    expect(second[1]).toBeCloseTo(Math.cos(2), 12);
  });

  it("silu, softmax and argmax", () => {
    expect(silu(0)).toBe(0);
    expect(silu(1)).toBeCloseTo(0.7310586, 6);
    expect(silu(-40)).toBeCloseTo(0, 12);
    const probabilities = softmax([0, Math.log(3), 1000 - 1000]);
    expect(probabilities[0]).toBeCloseTo(0.2, 12);
    expect(probabilities[1]).toBeCloseTo(0.6, 12);
    expect(Array.from(softmax([1000, 1000]))).toEqual([0.5, 0.5]);
    expect(argmax([1, 3, 3, 2])).toBe(1);
  });
});
