import { describe, expect, it } from "vitest";
import { createRandom, normal } from "../stats/random.js";
import {
  accumulateMoments,
  applyTransposeQ,
  choleskySolve,
  emptyMoments,
  solveShiftedTridiagonal,
  tridiagonalize,
} from "./linear-algebra.js";
import { allRows } from "./matrix.js";

/** A random symmetric positive semi-definite matrix BᵀB (full storage). */
function randomGram(dim: number, seed: number): Float64Array {
  const random = createRandom(seed);
  const factor = Array.from({ length: dim * (dim + 3) }, () => normal(random));
  const gram = new Float64Array(dim * dim);
  for (let row = 0; row < dim; row++) {
    for (let column = 0; column < dim; column++) {
      let sum = 0;
      for (let inner = 0; inner < dim + 3; inner++)
        sum += factor[inner * dim + row]! * factor[inner * dim + column]!;
      gram[row * dim + column] = sum;
    }
  }
  return gram;
}

function multiply(matrix: Float64Array, dim: number, vector: Float64Array, shift: number): Float64Array {
  const result = new Float64Array(dim);
  for (let row = 0; row < dim; row++) {
    let sum = shift * vector[row]!;
    for (let column = 0; column < dim; column++) sum += matrix[row * dim + column]! * vector[column]!;
    result[row] = sum;
  }
  return result;
}

describe("accumulateMoments", () => {
  it("matches a direct computation for a dim that is not a multiple of the kernel size", () => {
    const rows = 300; // more than one 256-row panel
    const dim = 7;
    const random = createRandom(4);
    const features = Float32Array.from({ length: rows * dim }, () => normal(random, 2));
    const targets = Float64Array.from({ length: rows }, () => normal(random));
    const shift = Float64Array.from({ length: dim }, (_, index) => index * 0.1);
    const moments = emptyMoments(dim);
    accumulateMoments(moments, features, targets, allRows(rows), shift, 0.5);
    expect(moments.count).toBe(rows);
    for (let a = 0; a < dim; a++) {
      let sum = 0;
      let cross = 0;
      for (let row = 0; row < rows; row++) {
        sum += features[row * dim + a]! - shift[a]!;
        cross += (features[row * dim + a]! - shift[a]!) * (targets[row]! - 0.5);
      }
      expect(moments.featureSum[a]).toBeCloseTo(sum, 9);
      expect(moments.cross[a]).toBeCloseTo(cross, 9);
      for (let b = a; b < dim; b++) {
        let product = 0;
        for (let row = 0; row < rows; row++) {
          product += (features[row * dim + a]! - shift[a]!) * (features[row * dim + b]! - shift[b]!);
        }
        expect(moments.gram[a * dim + b]).toBeCloseTo(product, 8);
      }
    }
  });
});

describe("symmetric solvers", () => {
  it("Cholesky solves (A + λI) x = b", () => {
    // A = [[4, 2], [2, 3]], λ = 1, b = [1, 2]: (A + I) = [[5, 2], [2, 4]], det 16,
    // x = [4·1 − 2·2, −2·1 + 5·2] / 16 = [0, 0.5].
    const solution = choleskySolve(new Float64Array([4, 2, 2, 3]), 2, new Float64Array([1, 2]), 1);
    expect(solution[0]).toBeCloseTo(0, 14);
    expect(solution[1]).toBeCloseTo(0.5, 14);
  });

  it("Cholesky refuses a singular matrix without penalty", () => {
    expect(() => choleskySolve(new Float64Array([1, 1, 1, 1]), 2, new Float64Array([1, 1]))).toThrow(
      /larger ridge/,
    );
  });

  it("the tridiagonal route agrees with Cholesky for every penalty", () => {
    const dim = 23;
    const gram = randomGram(dim, 8);
    const random = createRandom(9);
    const rhs = Float64Array.from({ length: dim }, () => normal(random));
    const tri = tridiagonalize(Float64Array.from(gram), dim);
    // T must keep the trace of A (similarity transform).
    let trace = 0;
    let triTrace = 0;
    for (let index = 0; index < dim; index++) {
      trace += gram[index * dim + index]!;
      triTrace += tri.diagonal[index]!;
    }
    expect(triTrace).toBeCloseTo(trace, 8);
    const rotated = applyTransposeQ(tri, rhs);
    for (const lambda of [1e-3, 0.1, 10, 1e4]) {
      const viaTridiagonal = solveShiftedTridiagonal(tri, rotated, lambda);
      const viaCholesky = choleskySolve(gram, dim, rhs, lambda);
      const residual = multiply(gram, dim, viaTridiagonal, lambda);
      for (let index = 0; index < dim; index++) {
        expect(viaTridiagonal[index]).toBeCloseTo(viaCholesky[index]!, 8);
        expect(residual[index]).toBeCloseTo(rhs[index]!, 8);
      }
    }
  });

  it("handles 1 × 1 and 2 × 2 matrices", () => {
    const one = tridiagonalize(new Float64Array([4]), 1);
    expect(solveShiftedTridiagonal(one, applyTransposeQ(one, new Float64Array([6])), 2)[0]).toBeCloseTo(
      1,
      14,
    );
    const two = tridiagonalize(new Float64Array([4, 2, 2, 3]), 2);
    const solution = solveShiftedTridiagonal(two, applyTransposeQ(two, new Float64Array([1, 2])), 1);
    expect(solution[0]).toBeCloseTo(0, 14);
    expect(solution[1]).toBeCloseTo(0.5, 14);
  });
});
