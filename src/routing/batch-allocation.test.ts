import { describe, expect, it } from "vitest";
import { InputError, UsageError } from "../errors/index.js";
import { allocateBatch, carriedRoutedCount, routedCount, routingOrder } from "./batch-allocation.js";

function routedIds(routed: boolean[], ids: string[]): string[] {
  return ids.filter((_, index) => routed[index]);
}

describe("routedCount", () => {
  it("floors p·N robustly against binary budgets", () => {
    expect(routedCount(0.3, 10)).toBe(3);
    expect(routedCount(0.7, 10)).toBe(7);
    expect(routedCount(0.1, 30)).toBe(3);
    expect(routedCount(0.29, 10)).toBe(2);
    expect(routedCount(0, 10)).toBe(0);
    expect(routedCount(1, 10)).toBe(10);
    expect(routedCount(0.5, 0)).toBe(0);
  });

  it("matches exact integer arithmetic for every percent budget and N up to 200", () => {
    const mismatches: string[] = [];
    for (let segments = 1; segments <= 200; segments++) {
      for (let percent = 0; percent <= 100; percent++) {
        const expected = Math.floor((percent * segments) / 100);
        if (routedCount(percent / 100, segments) !== expected) mismatches.push(`${percent}% of ${segments}`);
      }
    }
    expect(mismatches).toEqual([]);
  });

  it("rejects budgets outside [0, 1]", () => {
    for (const budget of [-0.1, 1.01, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => routedCount(budget, 10)).toThrow(UsageError);
    }
  });
});

describe("allocateBatch", () => {
  const ids = ["a", "b", "c", "d", "e"];

  it("routes the highest scores", () => {
    const routed = allocateBatch([0.1, 0.9, 0.5, 0.7, 0.2], ids, 0.4);
    expect(routedIds(routed, ids)).toEqual(["b", "d"]);
  });

  it("breaks ties by ascending id, whatever the input order", () => {
    expect(routedIds(allocateBatch([1, 2, 2, 2, 0], ids, 0.4), ids)).toEqual(["b", "c"]);
    const reversed = [...ids].reverse();
    expect(routedIds(allocateBatch([0, 2, 2, 2, 1], reversed, 0.4), reversed).sort()).toEqual(["b", "c"]);
  });

  it("compares ids by code unit, not numerically or by locale", () => {
    expect(routingOrder([1, 1, 1], ["9", "10", "B"])).toEqual([1, 0, 2]);
    expect(routingOrder([1, 1], ["b", "B"])).toEqual([1, 0]);
  });

  it("puts NaN after every number, including -Infinity", () => {
    const scores = [Number.NaN, Number.NEGATIVE_INFINITY, 3, Number.NaN, -5];
    expect(routingOrder(scores, ids)).toEqual([2, 4, 1, 0, 3]);
    expect(routedIds(allocateBatch(scores, ids, 0.6), ids)).toEqual(["b", "c", "e"]);
  });

  it("with all-equal scores routes the smallest ids", () => {
    expect(
      routedIds(allocateBatch([3, 3, 3, 3, 3], ["e", "d", "c", "b", "a"], 0.4), ["e", "d", "c", "b", "a"]),
    ).toEqual(["b", "a"]);
  });

  it("routes nothing at p = 0 and everything at p = 1", () => {
    expect(allocateBatch([1, 2, 3, 4, 5], ids, 0)).toEqual([false, false, false, false, false]);
    expect(allocateBatch([1, 2, 3, 4, 5], ids, 1)).toEqual([true, true, true, true, true]);
  });

  it("routes exactly ⌊p·N⌋ on random inputs with ties and NaN", () => {
    let state = 12345;
    const next = () => {
      state = (state * 1103515245 + 12345) % 2147483648;
      return state / 2147483648;
    };
    for (let trial = 0; trial < 200; trial++) {
      const segments = 1 + Math.floor(next() * 60);
      const scores = Array.from({ length: segments }, () =>
        next() < 0.1 ? Number.NaN : Math.round(next() * 5),
      );
      const segmentIds = scores.map((_, index) => `s${index}`);
      const budget = Math.round(next() * 100) / 100;
      const routed = allocateBatch(scores, segmentIds, budget);
      expect(routed.filter(Boolean).length).toBe(Math.floor((Math.round(budget * 100) * segments) / 100));
      // Every routed score is at least every unrouted one (NaN counts as lowest).
      const rank = (score: number) => (Number.isNaN(score) ? Number.NEGATIVE_INFINITY : score);
      const lowestRouted = Math.min(...scores.filter((_, index) => routed[index]).map(rank));
      const highestLeft = Math.max(...scores.filter((_, index) => !routed[index]).map(rank));
      if (routed.some(Boolean) && routed.some((value) => !value)) {
        expect(lowestRouted).toBeGreaterThanOrEqual(highestLeft);
      }
    }
  });

  it("rejects misaligned scores and ids", () => {
    expect(() => allocateBatch([1, 2], ["a"], 0.5)).toThrow(InputError);
  });
});

describe("carriedRoutedCount", () => {
  function run(budget: number, sizes: readonly number[]): number[] {
    let carry = 0;
    return sizes.map((size) => {
      const next = carriedRoutedCount(budget, size, carry);
      expect(next.carry).toBeGreaterThanOrEqual(0);
      expect(next.carry).toBeLessThan(1);
      carry = next.carry;
      return next.count;
    });
  }

  it("routes p of a run of small batches, which ⌊p·n⌋ alone never would", () => {
    // p = 0.3, batches of 3: owed 0.9, 1.8 − 1, 1.7 − 1, …: nine of thirty texts.
    expect(run(0.3, new Array(10).fill(3))).toEqual([0, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
    // Single texts at p = 0.25: every fourth.
    expect(run(0.25, new Array(8).fill(1))).toEqual([0, 0, 0, 1, 0, 0, 0, 1]);
    // Mixed sizes stay within one text of p · (texts so far).
    const sizes = [1, 7, 2, 2, 13, 1, 1, 5, 3, 64, 2, 9];
    const counts = run(0.15, sizes);
    let texts = 0;
    let routed = 0;
    sizes.forEach((size, index) => {
      texts += size;
      routed += counts[index]!;
      expect(routed).toBeLessThanOrEqual(0.15 * texts + 1e-9);
      expect(routed).toBeGreaterThan(0.15 * texts - 1);
    });
  });

  it("is ⌊p·n⌋ with nothing carried, exact for budgets not exact in binary", () => {
    expect(carriedRoutedCount(0.3, 10, 0)).toEqual({ count: 3, carry: 0 });
    expect(carriedRoutedCount(0.3, 7, 0)).toEqual({ count: 2, carry: expect.closeTo(0.1, 12) });
    expect(carriedRoutedCount(0, 50, 0)).toEqual({ count: 0, carry: 0 });
    expect(carriedRoutedCount(1, 50, 0)).toEqual({ count: 50, carry: 0 });
    expect(carriedRoutedCount(0.5, 0, 0.5)).toEqual({ count: 0, carry: 0.5 });
  });

  it("refuses a carry outside [0, 1) and a bad count", () => {
    expect(() => carriedRoutedCount(0.3, 3, 1)).toThrow(UsageError);
    expect(() => carriedRoutedCount(0.3, 3, -0.1)).toThrow(UsageError);
    expect(() => carriedRoutedCount(0.3, 2.5, 0)).toThrow(UsageError);
    expect(() => carriedRoutedCount(1.5, 3, 0)).toThrow(UsageError);
  });
});
