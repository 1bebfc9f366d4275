import { describe, expect, it } from "vitest";
import type { GuardReport } from "../probe/guard-choice.js";
import type { RouterFile } from "../probe/router-file.js";
import type { EvalSegments } from "./policies.js";
import { guardTradeoff } from "./router-findings.js";

/** Segments a b c d with gains −20, 30, 10, 0 (only the outcomes matter here). */
const segments: EvalSegments = {
  records: [],
  rows: [0, 1, 2, 3],
  orientation: 1,
  unlabelled: 0,
  outcomes: { ids: ["a", "b", "c", "d"], qualitySmall: [50, 50, 50, 50], qualityLarge: [30, 80, 60, 50] },
};

describe("guardTradeoff", () => {
  it("measures MeanDelta and severe loss of gain − λ·risk for every λ of the router's grid", () => {
    // Gain scores rank a b c d; a is the risky one.
    const guard: GuardReport = {
      method: "risk-adjusted",
      rule: "test",
      lambda: 10,
      tolerance: 0.05,
      severe_delta: 10,
      budgets: [0.5],
      grid: [
        { lambda: 0, mean_delta: [5], severe_loss: [0.5] },
        { lambda: 10, mean_delta: [20], severe_loss: [0] },
      ],
      score_quantiles: new Array(101).fill(0),
    };
    const router = { guard } as unknown as RouterFile;
    const heads = { gain: Float64Array.from([4, 3, 2, 1]), risk: Float64Array.from([0.9, 0, 0, 0]) };
    const tradeoff = guardTradeoff(router, heads, segments, [0.5, 0.25], 10)!;
    // λ = 0 routes a, b at 50 %: (−20 + 30) / 2 = 5, one of two severe; at 25 %: a alone.
    expect(tradeoff.points[0]).toEqual({ lambda: 0, mean_delta: [5, -20], severe_loss: [0.5, 1] });
    // λ = 10: a scores 4 − 9 = −5 and drops to last: b, c route.
    expect(tradeoff.points[1]).toEqual({ lambda: 10, mean_delta: [20, 30], severe_loss: [0, 0] });
    expect(tradeoff.cross_validated[1]).toEqual({
      lambda: 10,
      mean_delta: [20, null],
      severe_loss: [0, null],
    });
    expect(tradeoff.chosen_lambda).toBe(10);
    expect(guardTradeoff({ ...router, guard: undefined }, heads, segments, [0.5], 10)).toBeNull();
  });
});
