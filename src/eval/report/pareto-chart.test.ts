import { describe, expect, it } from "vitest";
import { policyLabels } from "./pareto-chart.js";

describe("policyLabels", () => {
  it("names a policy whose curve is another's, so its hidden line is not taken for a missing one", () => {
    const curve = (policy: string, qualities: number[]) =>
      qualities.map((quality, index) => ({ policy, x: index / 2, quality }));
    const labels = policyLabels([
      ...curve("routelmt", [50, 55, 60]),
      ...curve("guarded", [50, 55, 60]),
      ...curve("random", [50, 54, 60]),
      ...curve("guarded-qe", [50, 55, 60]),
    ]);
    expect([...labels]).toEqual([
      ["routelmt", "routelmt"],
      ["guarded", "guarded (= routelmt)"],
      ["random", "random"],
      ["guarded-qe", "guarded-qe (= routelmt)"],
    ]);
  });
});
