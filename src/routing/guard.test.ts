import { describe, expect, it } from "vitest";
import { UsageError } from "../errors/index.js";
import { allocateBatchGuarded, allocateGuarded, firedGuard, type GuardSignals } from "./guard.js";

describe("firedGuard", () => {
  const thresholds = { qualityPrediction: 80, riskProbability: 0.5, smallQeScore: 0.9 };

  it("drops at or above each threshold, naming the first guard that fires", () => {
    expect(firedGuard({ qualityPrediction: 80 }, thresholds)).toBe("qualityPrediction");
    expect(firedGuard({ qualityPrediction: 79.9, riskProbability: 0.5 }, thresholds)).toBe("riskProbability");
    expect(firedGuard({ smallQeScore: 0.95 }, thresholds)).toBe("smallQeScore");
    expect(firedGuard({ qualityPrediction: 90, smallQeScore: 0.95 }, thresholds)).toBe("qualityPrediction");
    expect(
      firedGuard({ qualityPrediction: 10, riskProbability: 0.1, smallQeScore: 0.2 }, thresholds),
    ).toBeNull();
  });

  it("ignores missing signals and disabled guards", () => {
    expect(firedGuard({ qualityPrediction: null, riskProbability: Number.NaN }, thresholds)).toBeNull();
    expect(firedGuard({ qualityPrediction: 99 }, { riskProbability: 0.5 })).toBeNull();
  });
});

describe("allocateGuarded", () => {
  // Candidates best first: 3, 1, 4, 0, 2, 5.
  const order = [3, 1, 4, 0, 2, 5];
  const thresholds = { riskProbability: 0.5 };

  it("refills dropped slots from the next candidates", () => {
    const signals: GuardSignals[] = [{}, { riskProbability: 0.7 }, {}, {}, {}, {}];
    const allocation = allocateGuarded(order, signals, thresholds, 0.5);
    expect(allocation.target).toBe(3);
    expect(allocation.routedCount).toBe(3);
    // 3 routed, 1 dropped, then 4 and 0 fill the budget.
    expect(allocation.routed).toEqual([true, false, false, true, true, false]);
    expect(allocation.guarded).toBe(1);
    expect(allocation.guardedBy).toEqual({ qualityPrediction: 0, riskProbability: 1, smallQeScore: 0 });
  });

  it("counts only drops met while filling the budget", () => {
    const signals: GuardSignals[] = [{}, {}, {}, {}, {}, { riskProbability: 0.9 }];
    expect(allocateGuarded(order, signals, thresholds, 0.5).guarded).toBe(0);
  });

  it("routes only the candidates that pass when too few do", () => {
    const signals: GuardSignals[] = [
      { riskProbability: 0.9 },
      {},
      { riskProbability: 0.9 },
      { riskProbability: 0.9 },
      {},
      { smallQeScore: 0.99 },
    ];
    const allocation = allocateGuarded(order, signals, { riskProbability: 0.5, smallQeScore: 0.9 }, 1);
    expect(allocation.target).toBe(6);
    expect(allocation.routedCount).toBe(2);
    expect(allocation.routed).toEqual([false, true, false, false, true, false]);
    expect(allocation.guarded).toBe(4);
    expect(allocation.guardedBy).toEqual({ qualityPrediction: 0, riskProbability: 3, smallQeScore: 1 });
  });

  it("equals plain allocation when no guard fires, and routes nothing at p = 0", () => {
    const signals: GuardSignals[] = order.map(() => ({ riskProbability: 0.1 }));
    expect(allocateGuarded(order, signals, thresholds, 0.5).routed).toEqual([
      false,
      true,
      false,
      true,
      true,
      false,
    ]);
    expect(allocateGuarded(order, signals, thresholds, 0).routedCount).toBe(0);
  });

  it("routes a caller's target instead of ⌊p·N⌋, within 0..N", () => {
    const signals: GuardSignals[] = order.map(() => ({ riskProbability: 0.1 }));
    const one = allocateGuarded(order, signals, thresholds, 0.5, 1);
    expect(one.target).toBe(1);
    expect(one.routed.filter(Boolean)).toHaveLength(1);
    expect(one.routed[order[0]!]).toBe(true);
    expect(allocateGuarded(order, signals, thresholds, 0, 2).routedCount).toBe(2);
    expect(() => allocateGuarded(order, signals, thresholds, 0.5, order.length + 1)).toThrow(UsageError);
    expect(() => allocateGuarded(order, signals, thresholds, 0.5, 1.5)).toThrow(UsageError);
  });

  it("ranks by score with the id tie-break when given scores", () => {
    const allocation = allocateBatchGuarded(
      [5, 5, 5, 1],
      ["d", "c", "b", "a"],
      [{}, {}, { qualityPrediction: 95 }, {}],
      { qualityPrediction: 90 },
      0.5,
    );
    // Order: b (guarded), c, d, a.
    expect(allocation.routed).toEqual([true, true, false, false]);
    expect(allocation.guarded).toBe(1);
  });

  it("rejects an order that is not a permutation", () => {
    expect(() => allocateGuarded([0, 0, 1], [{}, {}, {}], { riskProbability: 0.5 }, 1)).toThrow(UsageError);
  });
});
