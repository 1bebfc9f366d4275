import { describe, expect, it } from "vitest";
import { AdmissionGate, DecisionWindow, hardCap, maxLargeInAnyWindow } from "./decision-window.js";

describe("hardCap", () => {
  it("is ⌈p·W⌉ + 1, robust to binary fractions, 0 at p = 0 and at most W", () => {
    expect(hardCap(0.2, 1000)).toBe(201);
    expect(hardCap(0.3, 10)).toBe(4);
    expect(hardCap(0.25, 10)).toBe(4);
    expect(hardCap(0, 10)).toBe(0);
    expect(hardCap(1, 10)).toBe(10);
  });
});

describe("maxLargeInAnyWindow", () => {
  it("counts the densest window of ones", () => {
    expect(maxLargeInAnyWindow([1, 1, 0, 1, 1, 1, 0], 3)).toBe(3);
    expect(maxLargeInAnyWindow([1, 0, 1, 0, 1, 0], 2)).toBe(1);
    expect(maxLargeInAnyWindow([1, 1], 5)).toBe(2);
    expect(maxLargeInAnyWindow([], 5)).toBe(0);
  });
});

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
