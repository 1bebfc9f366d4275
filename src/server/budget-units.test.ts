import { describe, expect, it } from "vitest";
import type { Prefilled } from "../translators/types.js";
import { BudgetWeigher, OutputLengthEstimate } from "./budget-units.js";

const request = { text: "Ein Hund läuft.", srcLang: "de", tgtLang: "en" };
const prefilled = (promptTokens: number | null) => ({ promptTokens }) as Prefilled;

describe("OutputLengthEstimate", () => {
  it("starts at the prior and moves to the large model's tokens per character", () => {
    const estimate = new OutputLengthEstimate(0.3);
    expect(estimate.predict("abcdefghij")).toBeCloseTo(3, 12);
    for (let index = 0; index < 5000; index++) estimate.observe("abcdefghij", 5);
    expect(estimate.tokensPerCharacter).toBeCloseTo(0.5, 2);
  });
});

describe("BudgetWeigher", () => {
  it("weighs tokens as prompt plus predicted output, cost at the large model's prices", () => {
    const tokens = new BudgetWeigher({ unit: "tokens", outputTokensPerCharacter: 0.2 });
    // 15 characters × 0.2 = 3 predicted output tokens.
    expect(tokens.weigh(prefilled(10), request)).toBeCloseTo(13, 12);
    const spent: [string, number][] = [];
    const cost = new BudgetWeigher({
      unit: "cost",
      largePrices: { input: 1, output: 4 },
      smallPrices: { input: 0.1, output: 0.2 },
      outputTokensPerCharacter: 0.2,
      onSpend: (model, amount) => spent.push([model, amount]),
    });
    expect(cost.weigh(prefilled(10), request)).toBeCloseTo((10 * 1 + 3 * 4) / 1000, 15);
    // Without a prompt count, the source at the output's rate stands in for it.
    expect(cost.weigh(prefilled(null), request)).toBeCloseTo((3 * 1 + 3 * 4) / 1000, 15);
    cost.observe(request, "large", 12, 6);
    cost.observe(request, "small", 10, 5);
    expect(spent).toEqual([
      ["large", (12 * 1 + 6 * 4) / 1000],
      ["small", (10 * 0.1 + 5 * 0.2) / 1000],
    ]);
    expect(cost.estimate.tokensPerCharacter).toBeGreaterThan(0.2);
  });
});
