import { describe, expect, it } from "vitest";
import { cellsOf, innerSplit, nestedFoldAssignment, outerSplit } from "./nested-folds.js";

describe("nestedFoldAssignment", () => {
  const folds = nestedFoldAssignment(30, 3, 2, 7);

  it("deals every outer fold's rows evenly into sub-folds", () => {
    for (let outer = 0; outer < 3; outer++) {
      const members = Array.from(folds.outer.keys()).filter((row) => folds.outer[row] === outer);
      expect(members).toHaveLength(10);
      const subs = members.map((row) => folds.sub[row]);
      expect(subs.filter((sub) => sub === 0)).toHaveLength(5);
      expect(subs.filter((sub) => sub === 1)).toHaveLength(5);
    }
  });

  it("never lets an inner split see the outer fold it is nested in", () => {
    for (let outer = 0; outer < 3; outer++) {
      const { training, validation } = outerSplit(folds, outer);
      expect(training.length + validation.length).toBe(30);
      const measured = new Set(validation);
      const innerRows = new Set<number>();
      for (let inner = 0; inner < 2; inner++) {
        const split = innerSplit(folds, outer, inner);
        for (const row of [...split.training, ...split.validation]) expect(measured.has(row)).toBe(false);
        // Inner training and validation partition the outer training rows.
        expect(split.training.length + split.validation.length).toBe(training.length);
        for (const row of split.validation) innerRows.add(row);
      }
      // Every outer training row is validated exactly once by the inner folds.
      expect(innerRows.size).toBe(training.length);
    }
  });

  it("describes each training set as every row outside its excluded cells", () => {
    const cells = cellsOf(folds);
    for (const split of [outerSplit(folds, 1), innerSplit(folds, 2, 0)]) {
      const excluded = new Set(split.excludedCells);
      const expected = Array.from(cells.keys()).filter((row) => !excluded.has(cells[row]!));
      expect(Array.from(split.training)).toEqual(expected);
    }
  });

  it("is deterministic for a seed and refuses too few rows", () => {
    const again = nestedFoldAssignment(30, 3, 2, 7);
    expect(Array.from(again.outer)).toEqual(Array.from(folds.outer));
    expect(Array.from(again.sub)).toEqual(Array.from(folds.sub));
    expect(Array.from(nestedFoldAssignment(30, 3, 2, 8).outer)).not.toEqual(Array.from(folds.outer));
    expect(() => nestedFoldAssignment(5, 3, 2, 1)).toThrow(/too few/);
  });
});
