import { describe, expect, it } from "vitest";
import { AdmissionGate, DecisionWindow } from "./decision-window.js";

describe("DecisionWindow", () => {
  it("allows a large decision only while the budget's hard cap holds, and logs decisions", () => {
    const window = new DecisionWindow(0.5, 4, 3);
    expect(window.realizedFraction()).toBeNull();
    window.record(true);
    expect(window.allowsLarge()).toBe(true);
    window.record(true);
    expect(window.allowsLarge()).toBe(false);
    window.record(false);
    window.record(false);
    // The window [2, 5] would hold 2 = ⌊0.5 × 4⌋, but the run [1, 5] would hold 3 > 0.5 × 5.
    expect(window.allowsLarge()).toBe(false);
    expect(window.realizedFraction()).toBe(0.5);
    window.record(false);
    expect(window.allowsLarge()).toBe(true);
    window.record(true);
    expect(window.realizedFraction()).toBe(0.25);
    expect(window.count).toBe(6);
    // The log keeps the last 3 decisions, oldest first.
    expect(Array.from(window.log())).toEqual([0, 0, 1]);
  });
});

describe("AdmissionGate", () => {
  it("admits up to its limit, all or nothing per request", () => {
    const gate = new AdmissionGate(3);
    expect(gate.tryAcquire(2)).toBe(true);
    expect(gate.tryAcquire(2)).toBe(false);
    expect(gate.tryAcquire()).toBe(true);
    expect(gate.depth).toBe(3);
    gate.forceAcquire();
    expect(gate.depth).toBe(4);
    gate.release(4);
    expect(gate.tryAcquire(3)).toBe(true);
  });
});
