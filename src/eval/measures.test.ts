import { describe, expect, it } from "vitest";
import { InputError, UsageError } from "../errors/index.js";
import {
  gainsOf,
  hitRate,
  hybridQuality,
  meanDelta,
  measureRouting,
  oracleMask,
  realizedFraction,
  regressions,
  type SegmentOutcomes,
  severeLossRate,
} from "./measures.js";

// Gains: a +10, b −5, c 0, d +30, e −30.
const outcomes: SegmentOutcomes = {
  ids: ["a", "b", "c", "d", "e"],
  qualitySmall: [50, 60, 70, 40, 80],
  qualityLarge: [60, 55, 70, 70, 50],
};
const routedABE = [true, true, false, false, true];
const none = [false, false, false, false, false];
const all = [true, true, true, true, true];

describe("measures on a hand-computed case", () => {
  it("computes gains, hybrid quality and realized fraction", () => {
    expect(gainsOf(outcomes)).toEqual([10, -5, 0, 30, -30]);
    expect(hybridQuality(routedABE, outcomes)).toBe(55);
    expect(realizedFraction(routedABE)).toBe(0.6);
  });

  it("averages the true gain over the routed segments, including negative gains", () => {
    expect(meanDelta(routedABE, outcomes)).toBeCloseTo(-25 / 3, 12);
    expect(meanDelta([false, false, false, true, false], outcomes)).toBe(30);
  });

  it("scores hits against the oracle's top-⌊p·N⌋", () => {
    // Top 3 by gain: d, a, c. Routed a, b, e: one hit.
    expect(oracleMask(outcomes, 0.6)).toEqual([true, false, true, true, false]);
    expect(hitRate(routedABE, outcomes, 0.6)).toBeCloseTo(1 / 3, 12);
    expect(hitRate([true, false, true, true, false], outcomes, 0.6)).toBe(1);
    // With budget 0.2 the oracle routes only d.
    expect(hitRate(routedABE, outcomes, 0.2)).toBe(0);
  });

  it("counts severe losses strictly below −δ and regressions below zero", () => {
    expect(severeLossRate(routedABE, outcomes, 10)).toBeCloseTo(1 / 3, 12);
    expect(severeLossRate(routedABE, outcomes, 5)).toBeCloseTo(1 / 3, 12);
    expect(severeLossRate(routedABE, outcomes, 4)).toBeCloseTo(2 / 3, 12);
    expect(severeLossRate(routedABE, outcomes, 0)).toBeCloseTo(2 / 3, 12);
    expect(regressions(routedABE, outcomes)).toBe(2);
    // A zero gain is not a regression.
    expect(regressions([false, false, true, false, false], outcomes)).toBe(0);
  });

  it("handles p = 0 (nothing routed) and p = 1 (everything routed)", () => {
    expect(hybridQuality(none, outcomes)).toBe(60);
    expect(meanDelta(none, outcomes)).toBeNull();
    expect(hitRate(none, outcomes, 0)).toBeNull();
    expect(severeLossRate(none, outcomes, 1)).toBeNull();
    expect(regressions(none, outcomes)).toBe(0);
    expect(hybridQuality(all, outcomes)).toBe(61);
    expect(meanDelta(all, outcomes)).toBe(1);
    expect(hitRate(all, outcomes, 1)).toBe(1);
    expect(severeLossRate(all, outcomes, 10)).toBe(0.2);
    expect(regressions(all, outcomes)).toBe(2);
  });

  it("collects every measure at once", () => {
    expect(measureRouting(routedABE, outcomes, { budget: 0.6, severeLossDelta: 4 })).toEqual({
      hybridQuality: 55,
      realizedFraction: 0.6,
      routed: 3,
      meanDelta: -25 / 3,
      hitRate: 1 / 3,
      severeLossRate: 2 / 3,
      regressions: 2,
    });
  });
});

describe("ties and validation", () => {
  it("breaks gain ties in the oracle by ascending id", () => {
    const tied: SegmentOutcomes = {
      ids: ["c", "b", "a", "d"],
      qualitySmall: [0, 0, 0, 0],
      qualityLarge: [5, 5, 5, 0],
    };
    expect(oracleMask(tied, 0.5)).toEqual([false, true, true, false]);
  });

  it("scores a routed segment tied at the oracle's boundary as a hit while the oracle has room", () => {
    // Gains 10, 0, 0, −10 at p = 0.5: the oracle takes a and one of b, c.
    const boundary: SegmentOutcomes = {
      ids: ["a", "b", "c", "d"],
      qualitySmall: [0, 0, 0, 10],
      qualityLarge: [10, 0, 0, 0],
    };
    expect(hitRate([true, true, false, false], boundary, 0.5)).toBe(1);
    expect(hitRate([true, false, true, false], boundary, 0.5)).toBe(1);
    // Both tied segments routed, one slot for them: one of the two is a hit.
    expect(hitRate([false, true, true, false], boundary, 0.5)).toBe(0.5);
    expect(hitRate([true, true, true, false], boundary, 0.5)).toBeCloseTo(2 / 3, 12);
    expect(hitRate([false, false, true, true], boundary, 0.5)).toBe(0.5);
    // Ids do not matter: the same routed gains under other ids score the same.
    const renamed = { ...boundary, ids: ["z", "y", "x", "w"] };
    expect(hitRate([true, false, true, false], renamed, 0.5)).toBe(1);
  });

  it("counts every tied segment as a hit when the whole tie fits the oracle set", () => {
    const tied: SegmentOutcomes = {
      ids: ["c", "b", "a", "d"],
      qualitySmall: [0, 0, 0, 0],
      qualityLarge: [5, 5, 5, 0],
    };
    expect(hitRate([true, false, true, false], tied, 0.5)).toBe(1);
    expect(hitRate([true, true, true, false], tied, 0.75)).toBe(1);
    expect(hitRate([false, false, true, true], tied, 0.5)).toBe(0.5);
  });

  it("treats all-equal gains by id alone", () => {
    const flat: SegmentOutcomes = {
      ids: ["x", "w", "z", "y"],
      qualitySmall: [1, 1, 1, 1],
      qualityLarge: [2, 2, 2, 2],
    };
    expect(oracleMask(flat, 0.5)).toEqual([true, true, false, false]);
    expect(meanDelta([false, false, true, true], flat)).toBe(1);
  });

  it("rejects misaligned, empty or non-finite inputs and bad deltas", () => {
    expect(() => hybridQuality([true], outcomes)).toThrow(InputError);
    expect(() => hybridQuality([], { ids: [], qualitySmall: [], qualityLarge: [] })).toThrow(InputError);
    expect(() => meanDelta([true], { ids: ["a"], qualitySmall: [Number.NaN], qualityLarge: [1] })).toThrow(
      InputError,
    );
    expect(() => severeLossRate(routedABE, outcomes, -1)).toThrow(UsageError);
  });
});
