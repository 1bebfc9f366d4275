import { describe, expect, it } from "vitest";
import { UsageError } from "../errors/index.js";
import { foldRows, kFoldAssignment, meanSquaredError } from "./cross-validation.js";
import { accumulateKernel } from "./linear-algebra.js";
import { allRows, type FeatureMatrix } from "./matrix.js";
import { predict, predictRows } from "./probe-model.js";
import { fitRidge } from "./ridge.js";
import {
  createRidgeSolver,
  crossValidateRidgeDual,
  fitRidgeDual,
  pickRows,
  preferredRidgeForm,
} from "./ridge-solver.js";
import { gaussianMatrix, linearTargets } from "./synthetic-data.js";

function matrixOf(rows: number[][]): FeatureMatrix {
  return { features: Float32Array.from(rows.flat()), rows: rows.length, dim: rows[0]!.length };
}

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, relative: number): void {
  expect(actual.length).toBe(expected.length);
  let scale = 0;
  for (let index = 0; index < expected.length; index++) scale = Math.max(scale, Math.abs(expected[index]!));
  for (let index = 0; index < expected.length; index++) {
    expect(Math.abs(actual[index]! - expected[index]!)).toBeLessThanOrEqual(relative * Math.max(1, scale));
  }
}

describe("accumulateKernel", () => {
  it("equals Σ_c z_a,c z_b,c computed directly, over a column range", () => {
    const matrix = gaussianMatrix(9, 300, 1);
    const rows = [8, 0, 3, 5, 6];
    const shift = Float64Array.from({ length: 300 }, (_, column) => column / 100);
    const scale = Float64Array.from({ length: 300 }, (_, column) => 1 + (column % 7));
    const kernel = new Float64Array(25);
    // Two ranges that together cover columns 10…289 must add up to the kernel over that range.
    accumulateKernel(kernel, matrix.features, 300, rows, { from: 10, to: 150 }, shift, scale);
    accumulateKernel(kernel, matrix.features, 300, rows, { from: 150, to: 290 }, shift, scale);
    for (let a = 0; a < 5; a++) {
      for (let b = a; b < 5; b++) {
        let sum = 0;
        for (let column = 10; column < 290; column++) {
          const za = (matrix.features[rows[a]! * 300 + column]! - shift[column]!) / scale[column]!;
          const zb = (matrix.features[rows[b]! * 300 + column]! - shift[column]!) / scale[column]!;
          sum += za * zb;
        }
        expect(kernel[a * 5 + b]).toBeCloseTo(sum, 9);
      }
    }
  });
});

describe("fitRidgeDual", () => {
  it("matches numpy's standardized ridge with an unpenalized intercept (the primal test case)", () => {
    // numpy: Z = (X − X.mean(0)) / X.std(0); w = solve(ZᵀZ + 2I, Zᵀ(y − ȳ)) → [1.086705825316076, 1.2416226482484094].
    const matrix = matrixOf([
      [1, 0],
      [0, 1],
      [1, 1],
      [2, 1],
      [3, 5],
    ]);
    const model = fitRidgeDual(matrix, [1, 2, 4, 5, 9], { lambda: 2 });
    expect(model.weights[0]).toBeCloseTo(1.086705825316076, 10);
    expect(model.weights[1]).toBeCloseTo(1.2416226482484094, 10);
    expect(model.bias).toBeCloseTo(4.2, 12);
    expect(predict(model, new Float32Array([2, -1]))).toBeCloseTo(2.9878511277309934, 10);
  });

  for (const [rows, dim] of [
    [40, 7],
    [25, 60],
    [12, 300],
  ] as const) {
    it(`gives the primal solution at ${rows} rows × ${dim} features, training subset included`, () => {
      const matrix = gaussianMatrix(rows, dim, rows + dim);
      const weights = Array.from({ length: dim }, (_, column) => ((column % 5) - 2) / 2);
      const targets = linearTargets(matrix, weights, 3, 0.5, 7);
      const training = allRows(rows).filter((row) => row % 4 !== 1);
      for (const lambda of [0.05, 3, 400]) {
        const primal = fitRidge(matrix, targets, { lambda, rows: training });
        const dual = fitRidgeDual(matrix, targets, { lambda, rows: training });
        expectClose(dual.mean, primal.mean, 1e-12);
        expectClose(dual.std, primal.std, 1e-12);
        expectClose(dual.weights, primal.weights, 1e-8);
        expect(dual.bias).toBeCloseTo(primal.bias, 10);
        expectClose(
          predictRows(dual, matrix.features, rows),
          predictRows(primal, matrix.features, rows),
          1e-8,
        );
      }
    });
  }

  it("refuses a zero penalty, where the centred kernel is singular", () => {
    expect(() => fitRidgeDual(gaussianMatrix(5, 8, 1), [1, 2, 3, 4, 5], { lambda: 0 })).toThrow(UsageError);
  });
});

describe("createRidgeSolver", () => {
  const rows = 36;
  const dim = 50;
  const matrix = gaussianMatrix(rows, dim, 11);
  const gain = linearTargets(
    matrix,
    Array.from({ length: dim }, (_, column) => (column < 5 ? 1 : 0)),
    0,
    1,
    12,
  );
  const other = Float64Array.from(gain, (value, row) => value * value - row / 10);
  const lambdas = [0.1, 10, 1000];
  // Four cells; training on everything outside cells 1 and 3.
  const cells = Int32Array.from({ length: rows }, (_, row) => row % 4);
  const training = allRows(rows).filter((row) => cells[row] !== 1 && cells[row] !== 3);
  const evaluate = allRows(rows).filter((row) => cells[row] === 1);

  it("takes the dual form when features outnumber training rows", () => {
    expect(preferredRidgeForm(50, 36)).toBe("dual");
    expect(preferredRidgeForm(36, 36)).toBe("primal");
    expect(createRidgeSolver(matrix).form).toBe("dual");
    expect(createRidgeSolver(matrix, { trainingRows: 100 }).form).toBe("primal");
  });

  it("gives the same predictions in both forms, for every target and penalty", () => {
    const primal = createRidgeSolver(matrix, { form: "primal" });
    const dual = createRidgeSolver(matrix, { form: "dual" });
    const fromPrimal = primal.predict({ rows: training }, evaluate, [gain, other], lambdas);
    const fromDual = dual.predict({ rows: training }, evaluate, [gain, other], lambdas);
    for (let target = 0; target < 2; target++) {
      for (let index = 0; index < lambdas.length; index++) {
        expectClose(fromDual[target]![index]!, fromPrimal[target]![index]!, 1e-8);
      }
    }
  });

  it("predicts what its fitted head predicts, and builds primal Grams from cells exactly", () => {
    const direct = createRidgeSolver(matrix, { form: "primal" });
    const celled = createRidgeSolver(matrix, { form: "primal", cells });
    const viaCells = celled.predict({ rows: training, excludedCells: [1, 3] }, evaluate, [gain], [10]);
    const viaRows = direct.predict({ rows: training }, evaluate, [gain], [10]);
    expectClose(viaCells[0]![0]!, viaRows[0]![0]!, 1e-10);
    for (const solver of [direct, createRidgeSolver(matrix, { form: "dual" })]) {
      const model = solver.fit(training, gain, 10);
      const predictions = predictRows(model, pickRows(matrix, evaluate).features, evaluate.length);
      expectClose(predictions, viaRows[0]![0]!, 1e-8);
    }
  });

  it("refuses a training set that does not match its excluded cells", () => {
    const celled = createRidgeSolver(matrix, { form: "primal", cells });
    expect(() =>
      celled.predict({ rows: training.subarray(1), excludedCells: [1, 3] }, evaluate, [gain], [1]),
    ).toThrow(/does not match/);
  });
});

describe("crossValidateRidgeDual", () => {
  it("chooses the penalty of least out-of-fold error and predicts each fold from the others", () => {
    const matrix = gaussianMatrix(30, 80, 21);
    const targets = linearTargets(
      matrix,
      Array.from({ length: 80 }, (_, column) => (column < 3 ? 2 : 0)),
      1,
      0.3,
      22,
    );
    const lambdas = [0.01, 1, 100, 10000];
    const result = crossValidateRidgeDual(matrix, targets, { folds: 3, seed: 4, lambdas });
    const assignment = kFoldAssignment(30, 3, 4);
    const solver = createRidgeSolver(matrix, { form: "dual" });
    const errors = lambdas.map((lambda) => {
      const predictions = new Float64Array(30);
      for (let fold = 0; fold < 3; fold++) {
        const model = solver.fit(foldRows(assignment, fold, false), targets, lambda);
        const validation = foldRows(assignment, fold, true);
        const scores = predictRows(model, pickRows(matrix, validation).features, validation.length);
        validation.forEach((row, position) => {
          predictions[row] = scores[position]!;
        });
      }
      return { lambda, predictions, error: meanSquaredError(targets, predictions) };
    });
    const best = errors.reduce((top, entry) => (entry.error < top.error ? entry : top));
    expect(result.lambda).toBe(best.lambda);
    expectClose(result.outOfFold, best.predictions, 1e-8);
    expect(result.model.dim).toBe(80);
  });
});
