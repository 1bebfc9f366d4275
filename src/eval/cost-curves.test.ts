import { describe, expect, it } from "vitest";
import type { DatasetRecord } from "../dataset/types.js";
import { costSummary, qualityCostCurve, segmentWeights } from "./cost-curves.js";
import { rankingRealization } from "./policies.js";

const outcomes = {
  ids: ["a", "b", "c", "d"],
  qualitySmall: [10, 20, 30, 40],
  qualityLarge: [30, 20, 35, 40],
};

function record(
  id: string,
  large_prompt_tokens: number | null,
  large_output_tokens: number | null,
): DatasetRecord {
  return {
    id,
    src: id,
    ref: null,
    src_lang: "en",
    tgt_lang: "de",
    small: "",
    large: "",
    scores: {},
    q_small: 1,
    q_large: 1,
    gain: 0,
    src_chars: 1,
    prompt_tokens: null,
    entropy: null,
    large_prompt_tokens,
    large_output_tokens,
  };
}

describe("segmentWeights", () => {
  it("weighs tokens as prompt plus output, cost at the prices per 1000", () => {
    const records = [record("a", 10, 5), record("b", 20, 30)];
    expect(Array.from(segmentWeights(records, { unit: "tokens" }))).toEqual([15, 50]);
    expect(Array.from(segmentWeights(records, { unit: "cost", prices: { input: 1, output: 2 } }))).toEqual([
      0.02, 0.08,
    ]);
  });

  it("refuses segments without the large model's counts, and cost without prices", () => {
    expect(() => segmentWeights([record("a", 10, 5), record("b", null, 3)], { unit: "tokens" })).toThrow(
      /needs the large model's token counts .* which 1 of 2 segments lack/,
    );
    expect(() => segmentWeights([record("a", 10, 5)], { unit: "cost" })).toThrow(/--large-input-price/);
  });
});

describe("qualityCostCurve", () => {
  it("routes the best-ranked segments while their weight fits p of the total", () => {
    // Ranked a, c, b, d; weights 60, 10, 20, 10 of 100.
    const curve = qualityCostCurve([4, 2, 3, 1], outcomes, [60, 20, 10, 10], [0, 0.5, 0.6, 0.75, 1], 1);
    expect(curve.map((point) => [point.budget, point.realized_cost, point.realized_segments])).toEqual([
      [0, 0, 0],
      // a alone weighs 60: nothing fits 50.
      [0.5, 0, 0],
      [0.6, 0.6, 0.25],
      [0.75, 0.7, 0.5],
      [1, 1, 1],
    ]);
    // a and c routed: (30 + 20 + 35 + 40) / 4.
    expect(curve[3]!.quality).toBeCloseTo(31.25, 12);
  });

  it("averages a policy's realizations and skips allocations without a ranking", () => {
    const policies = [
      {
        name: "twice",
        family: "baseline" as const,
        description: "",
        cost: null,
        realizations: [
          rankingRealization(Float64Array.from([4, 3, 2, 1]), outcomes.ids),
          rankingRealization(Float64Array.from([1, 2, 3, 4]), outcomes.ids),
        ],
      },
    ];
    const summary = costSummary(
      policies,
      outcomes,
      Float64Array.from([25, 25, 25, 25]),
      { unit: "tokens" },
      [0.25],
      1,
    );
    // First a (+20), then d (+0): the mean of 25 + 20/4 and 25.
    expect(summary.policies.twice![0]!.quality).toBeCloseTo((30 + 25) / 2, 12);
    expect(summary.all_large).toBe(100);
  });
});
