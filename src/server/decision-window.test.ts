import { describe, expect, it } from "vitest";
import { AdmissionGate, DecisionWindow } from "./decision-window.js";

describe("DecisionWindow", () => {
  it("allows a large decision only while the window ending at it stays within the cap", () => {
    const window = new DecisionWindow(4, 2, 3);
    expect(window.realizedFraction()).toBeNull();
    window.record(true);
    expect(window.allowsLarge()).toBe(true);
    window.record(true);
    expect(window.allowsLarge()).toBe(false);
    window.record(false);
    window.record(false);
    // The next decision pushes the first large one out of the window.
    expect(window.allowsLarge()).toBe(true);
    expect(window.realizedFraction()).toBe(0.5);
    window.record(true);
    expect(window.realizedFraction()).toBe(0.5);
    expect(window.count).toBe(5);
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
