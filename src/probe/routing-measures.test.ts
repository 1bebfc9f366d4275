import { describe, expect, it } from "vitest";
import { budgetCount, normalScores, scoreOrder, topMeasures } from "./routing-measures.js";

describe("topMeasures", () => {
  // Scores rank positions 3, 0, (1 and 4 tied: position 1 first), 2.
  const scores = [5, 2, -1, 9, 2];
  const gains = [10, -20, 4, 30, -12];

  it("routes the top ⌊p·N⌋ by score, ties by position, and measures them", () => {
    expect(Array.from(scoreOrder(scores))).toEqual([3, 0, 1, 4, 2]);
    const [p20, p40, p60, p0] = topMeasures(scores, gains, [0.2, 0.4, 0.6, 0.1], 15);
    expect(p20).toEqual({ meanDelta: 30, severeLoss: 0 });
    expect(p40).toEqual({ meanDelta: 20, severeLoss: 0 });
    // 30, 10, −20: mean 20/3; one of three below −15.
    expect(p60?.meanDelta).toBeCloseTo(20 / 3, 12);
    expect(p60?.severeLoss).toBeCloseTo(1 / 3, 12);
    expect(p0).toEqual({ meanDelta: null, severeLoss: null });
  });

  it("counts ⌊p·N⌋ robustly to the binary form of p", () => {
    expect(budgetCount(0.3, 10)).toBe(3);
    expect(budgetCount(1, 7)).toBe(7);
    expect(() => budgetCount(1.5, 7)).toThrow(/fraction/);
  });
});

describe("normalScores", () => {
  it("is Φ⁻¹(rank / (n + 1)) with average ranks for ties", () => {
    // Ranks 1, 2.5, 2.5, 4 of n = 4: Φ⁻¹(0.2) = −0.8416212335729143, Φ⁻¹(0.5) = 0, Φ⁻¹(0.8) = 0.8416…
    const scores = normalScores([-3, 7, 7, 20]);
    expect(scores[0]).toBeCloseTo(-0.8416212335729143, 12);
    expect(scores[1]).toBe(0);
    expect(scores[2]).toBe(0);
    expect(scores[3]).toBeCloseTo(0.8416212335729143, 12);
  });
});
