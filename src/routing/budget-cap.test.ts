import { describe, expect, it } from "vitest";
import { createRandom, normal } from "../stats/random.js";
import {
  BudgetCap,
  effectiveWindow,
  hardCap,
  maxLargeInAnyWindow,
  maxOverspendOfLongRuns,
} from "./budget-cap.js";

/** The largest (large − p·N) over runs of N ≥ W entries, by recounting every run. O(n²). */
function overspendByRecount(log: readonly number[], budget: number, window: number): number {
  let worst = Number.NEGATIVE_INFINITY;
  for (let start = 0; start < log.length; start++) {
    let large = 0;
    for (let end = start; end < log.length; end++) {
      large += log[end]!;
      const length = end - start + 1;
      if (length >= window) worst = Math.max(worst, large - budget * length);
    }
  }
  return worst;
}

/** Decides greedily: large whenever `wantsLarge` and the cap allows it. */
function run(cap: BudgetCap, wantsLarge: readonly boolean[]): number[] {
  return wantsLarge.map((wanted) => {
    const large = wanted && cap.allowsLarge();
    cap.record(large);
    return large ? 1 : 0;
  });
}

describe("hardCap and effectiveWindow", () => {
  it("is ⌊p·W⌋, robust to binary fractions, 0 at p = 0 and W at p = 1", () => {
    expect(hardCap(0.2, 1000)).toBe(200);
    expect(hardCap(0.3, 10)).toBe(3);
    expect(hardCap(0.25, 10)).toBe(2);
    expect(hardCap(0, 10)).toBe(0);
    expect(hardCap(1, 10)).toBe(10);
  });

  it("raises a window too short to hold one large decision to ⌈1/p⌉", () => {
    expect(effectiveWindow(0.0005, 1000)).toBe(2000);
    expect(hardCap(0.0005, 1000)).toBe(1);
    expect(effectiveWindow(0.3, 3)).toBe(4);
    expect(effectiveWindow(0.2, 1000)).toBe(1000);
    expect(effectiveWindow(0, 1000)).toBe(1000);
  });
});

describe("maxLargeInAnyWindow and maxOverspendOfLongRuns", () => {
  it("counts the densest window of ones", () => {
    expect(maxLargeInAnyWindow([1, 1, 0, 1, 1, 1, 0], 3)).toBe(3);
    expect(maxLargeInAnyWindow([1, 0, 1, 0, 1, 0], 2)).toBe(1);
    expect(maxLargeInAnyWindow([1, 1], 5)).toBe(2);
    expect(maxLargeInAnyWindow([], 5)).toBe(0);
  });

  it("finds the worst run of at least a window, as a recount of every run does", () => {
    // Two windows of 4 with 2 large each overlap in the run of 6 "1 1 0 0 1 1": 4 > 0.5 × 6.
    expect(maxOverspendOfLongRuns([1, 1, 0, 0, 1, 1], 0.5, 4)).toBeCloseTo(1, 12);
    expect(maxOverspendOfLongRuns([1, 1], 0.5, 4)).toBe(Number.NEGATIVE_INFINITY);
    const random = createRandom(5);
    for (let trial = 0; trial < 20; trial++) {
      const log = Array.from({ length: 60 }, () => (random.nextFloat() < 0.4 ? 1 : 0));
      expect(maxOverspendOfLongRuns(log, 0.3, 7)).toBeCloseTo(overspendByRecount(log, 0.3, 7), 9);
    }
  });
});

describe("BudgetCap", () => {
  it("holds a run shorter than the window to ⌊p·W⌋ and every longer run to p·N", () => {
    const cap = new BudgetCap(0.5, 4);
    expect(cap.realizedFraction()).toBeNull();
    // A burst spends the window's share; the fourth would put 3 in the window [1, 4].
    expect(run(cap, [true, true, true, true])).toEqual([1, 1, 0, 0]);
    // The window [2, 5] would hold 2 = ⌊0.5 × 4⌋, but the run [1, 5] would hold 3 > 0.5 × 5.
    expect(cap.allowsLarge()).toBe(false);
    expect(run(cap, [true, true])).toEqual([0, 1]);
    expect([cap.largeInWindow, cap.filled]).toEqual([1, 4]);
    expect(cap.realizedFraction()).toBe(0.25);
  });

  it("never lets a sliding-window pattern overspend a longer run", () => {
    // What a cap on each window alone admits: 2 of every 4, placed so that runs of 6 hold 4.
    const cap = new BudgetCap(0.5, 4);
    const log = run(cap, [true, true, false, false, true, true, false, false, true, true]);
    expect(maxOverspendOfLongRuns(log, 0.5, 4)).toBeLessThanOrEqual(0);
    expect(log.reduce((sum, value) => sum + value, 0)).toBeLessThanOrEqual(5);
  });

  it("spends between p − 1/W and p of the decisions when every one asks for large", () => {
    // A run of N ≥ W may not exceed p·N, so the debt S − p·N must fall by about one decision per window.
    for (const [budget, window] of [
      [0.3, 10],
      [0.2, 1000],
      [0.05, 100],
      [0.7, 13],
      [0.37, 50],
    ] as const) {
      const cap = new BudgetCap(budget, window);
      const count = 40 * window + 3;
      const log = run(cap, new Array<boolean>(count).fill(true));
      const realized = log.reduce((sum, value) => sum + value, 0) / count;
      expect(realized).toBeLessThanOrEqual(budget);
      expect(realized).toBeGreaterThanOrEqual(budget - 1 / window);
      expect(maxOverspendOfLongRuns(log, budget, window)).toBeLessThanOrEqual(1e-9);
      expect(maxLargeInAnyWindow(log, window)).toBeLessThanOrEqual(cap.cap);
    }
  });

  it("keeps both rules on random and bursty demand at several budgets", () => {
    const random = createRandom(11);
    for (const budget of [0.01, 0.1, 0.2, 0.3, 0.5, 0.9]) {
      const window = 200;
      const cap = new BudgetCap(budget, window);
      const wants = Array.from(
        { length: 5000 },
        (_, index) => Math.floor(index / 150) % 3 === 0 || normal(random) > 1,
      );
      const log = run(cap, wants);
      expect(maxOverspendOfLongRuns(log, budget, cap.window)).toBeLessThanOrEqual(1e-9);
      expect(maxLargeInAnyWindow(log, cap.window)).toBeLessThanOrEqual(cap.cap);
    }
  });

  it("allows nothing at p = 0 and everything at p = 1", () => {
    const none = new BudgetCap(0, 5);
    expect(run(none, [true, true, true])).toEqual([0, 0, 0]);
    const all = new BudgetCap(1, 5);
    expect(run(all, new Array<boolean>(12).fill(true))).toEqual(new Array<number>(12).fill(1));
  });
});

/**
 * The largest (large weight − p × weight) of the runs a weighted cap promises: every run of N ≥ W
 * decisions that ends with a large one, and every run from the first decision. O(n²).
 */
function weightedOverspendByRecount(
  log: readonly number[],
  weights: readonly number[],
  budget: number,
  window: number,
): number {
  let worst = Number.NEGATIVE_INFINITY;
  for (let end = 0; end < log.length; end++) {
    let debt = 0;
    for (let start = end; start >= 0; start--) {
      debt += (log[start]! ? weights[start]! : 0) - budget * weights[start]!;
      const promised = start === 0 || (log[end] === 1 && end - start + 1 >= window);
      if (promised) worst = Math.max(worst, debt);
    }
  }
  return worst;
}

describe("BudgetCap with weights", () => {
  /** Decides greedily with weights; returns the outcomes. */
  function runWeighted(cap: BudgetCap, wants: readonly boolean[], weights: readonly number[]): number[] {
    return wants.map((wanted, index) => {
      const large = wanted && cap.allowsLarge(weights[index]);
      cap.record(large, weights[index]);
      return large ? 1 : 0;
    });
  }

  it("decides as in decisions once the window is full when every weight is the same", () => {
    const random = createRandom(3);
    // The same demand after a first window in which nothing asks for large.
    const wants = Array.from({ length: 3000 }, (_, index) => index >= 100 && normal(random) > 0.6);
    const unweighted = run(new BudgetCap(0.3, 100), wants);
    const doubled = runWeighted(
      new BudgetCap(0.3, 100, { weighted: true }),
      wants,
      new Array<number>(wants.length).fill(2),
    );
    expect(doubled).toEqual(unweighted);
  });

  it("spends no more than p of the weight so far before the window fills", () => {
    const cap = new BudgetCap(0.5, 10, { weighted: true });
    // 1 of weight 1 would be half the weight so far only after another decision of weight 1.
    expect(runWeighted(cap, [true, true, true, true], [1, 1, 4, 4])).toEqual([0, 1, 0, 1]);
  });

  it("spends at most p of the weight of every run it promises, as a recount finds", () => {
    const random = createRandom(17);
    for (const budget of [0.05, 0.2, 0.5]) {
      const window = 50;
      const cap = new BudgetCap(budget, window, { weighted: true });
      const weights = Array.from({ length: 1500 }, () => 1 + Math.floor(random.nextFloat() * 200));
      // Heavy requests want the large model more often, the case a count of requests gets wrong.
      const wants = weights.map((weight, index) => Math.floor(index / 300) % 2 === 0 || weight > 150);
      const log = runWeighted(cap, wants, weights);
      expect(weightedOverspendByRecount(log, weights, budget, cap.window)).toBeLessThanOrEqual(1e-6);
      const spent = log.reduce((sum, large, index) => sum + large * weights[index]!, 0);
      const total = weights.reduce((sum, weight) => sum + weight, 0);
      expect(spent / total).toBeLessThanOrEqual(budget);
      expect(spent / total).toBeGreaterThan(0.6 * budget);
    }
  });

  it("recounts the runs it promises", () => {
    // From the first decision: 10 − 5.5 after two, 11 − 6 after three; ending with the large third
    // decision, runs of 2 or more: 1 − 1, and 11 − 6 again.
    expect(weightedOverspendByRecount([1, 0, 1], [10, 1, 1], 0.5, 2)).toBeCloseTo(5, 12);
    expect(weightedOverspendByRecount([0, 0, 1], [1, 1, 1], 0.5, 2)).toBeCloseTo(0, 12);
  });

  it("refuses a weight that is not positive and finite, and any weight but 1 unweighted", () => {
    const cap = new BudgetCap(0.5, 4, { weighted: true });
    expect(() => cap.allowsLarge(0)).toThrow(/positive finite/);
    expect(() => cap.record(true, Number.NaN)).toThrow(/positive finite/);
    expect(() => new BudgetCap(0.5, 4).record(true, 2)).toThrow(/weight 1 only/);
  });
});
