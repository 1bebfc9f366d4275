import { describe, expect, it } from "vitest";
import { hardCap, maxLargeInAnyWindow, SlidingWindowCap } from "./sliding-window.js";

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

describe("SlidingWindowCap", () => {
  it("allows a large decision only while the window ending at it stays within the cap", () => {
    const window = new SlidingWindowCap(4, 2);
    expect(window.realizedFraction()).toBeNull();
    window.record(true);
    expect(window.allowsLarge()).toBe(true);
    window.record(true);
    expect(window.allowsLarge()).toBe(false);
    window.record(false);
    window.record(false);
    // The next decision pushes the first large one out of the window.
    expect(window.allowsLarge()).toBe(true);
    expect([window.largeInWindow, window.filled]).toEqual([2, 4]);
    window.record(true);
    expect(window.realizedFraction()).toBe(0.5);
  });
});
