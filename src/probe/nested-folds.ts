/**
 * Fold assignment of nested cross-validation: outer folds measure, inner folds (within each outer
 * training set) choose hyperparameters, so no choice ever sees the rows it is measured on.
 *
 * Each row gets an outer fold and a sub-fold. Inner fold i of outer fold o is every row outside o
 * whose sub-fold is i: a k-fold split of o's training rows, balanced because sub-folds are dealt
 * out within each outer fold. The pair (outer, sub) is the row's cell; every training set of the
 * scheme is "all rows minus some cells", which lets ridge assemble its Grams from per-cell sums.
 */
import { UsageError } from "../errors/index.js";
import { createRandom, permutation } from "../stats/random.js";
import { kFoldAssignment } from "./cross-validation.js";

export interface NestedFolds {
  outerFolds: number;
  innerFolds: number;
  /** Outer fold of every row. */
  outer: Int32Array;
  /** Sub-fold of every row (its inner fold in every other outer fold's training set). */
  sub: Int32Array;
}

/** Seeded nested assignment of `rows` rows; same arguments → same folds. */
export function nestedFoldAssignment(
  rows: number,
  outerFolds: number,
  innerFolds: number,
  seed: number,
): NestedFolds {
  if (!Number.isInteger(innerFolds) || innerFolds < 2)
    throw new UsageError(`inner folds must be an integer ≥ 2, got ${innerFolds}`);
  const outer = kFoldAssignment(rows, outerFolds, seed);
  if (rows < outerFolds * innerFolds) {
    throw new UsageError(
      `${rows} rows are too few for ${outerFolds} outer × ${innerFolds} inner cross-validation folds`,
    );
  }
  const sub = new Int32Array(rows);
  const order = permutation(rows, createRandom(seed + 0x9e37));
  const dealt = new Int32Array(outerFolds);
  for (const row of order) {
    const fold = outer[row]!;
    sub[row] = dealt[fold]!++ % innerFolds;
  }
  return { outerFolds, innerFolds, outer, sub };
}

/** The cell of a row, `outer · innerFolds + sub`. */
export function cellsOf(folds: NestedFolds): Int32Array {
  return Int32Array.from(folds.outer, (outer, row) => outer * folds.innerFolds + folds.sub[row]!);
}

function rowsWhere(count: number, test: (row: number) => boolean): Int32Array {
  const rows: number[] = [];
  for (let row = 0; row < count; row++) if (test(row)) rows.push(row);
  return Int32Array.from(rows);
}

/** A training set, the rows it is evaluated on, and the cells it leaves out. */
export interface FoldSplit {
  training: Int32Array;
  validation: Int32Array;
  excludedCells: number[];
}

/** Outer fold `fold`: train on every other outer fold, measure on this one. */
export function outerSplit(folds: NestedFolds, fold: number): FoldSplit {
  const count = folds.outer.length;
  return {
    training: rowsWhere(count, (row) => folds.outer[row] !== fold),
    validation: rowsWhere(count, (row) => folds.outer[row] === fold),
    excludedCells: Array.from({ length: folds.innerFolds }, (_, sub) => fold * folds.innerFolds + sub),
  };
}

/** Inner fold `inner` of outer fold `fold`: both inside the outer fold's training rows. */
export function innerSplit(folds: NestedFolds, fold: number, inner: number): FoldSplit {
  const count = folds.outer.length;
  const outside = (row: number) => folds.outer[row] !== fold;
  const excludedCells = Array.from({ length: folds.innerFolds }, (_, sub) => fold * folds.innerFolds + sub);
  for (let other = 0; other < folds.outerFolds; other++)
    if (other !== fold) excludedCells.push(other * folds.innerFolds + inner);
  return {
    training: rowsWhere(count, (row) => outside(row) && folds.sub[row] !== inner),
    validation: rowsWhere(count, (row) => outside(row) && folds.sub[row] === inner),
    excludedCells,
  };
}
