import { describe, expect, it } from "vitest";
import { UsageError } from "../errors/index.js";
import {
  allFeatureViews,
  featureViewSpans,
  featureViewsOf,
  isLastFinalOnly,
  normaliseFeatureViews,
  pooledWidth,
  resolveAutoSelection,
  sameFeatureViews,
} from "./feature-views.js";
import { NORM_STATISTICS_DIM } from "./pooling.js";

describe("normaliseFeatureViews", () => {
  it("writes every view as pooling:layer, keeping order, case and spacing aside", () => {
    expect(normaliseFeatureViews("last:final,mean:1,mean:final")).toBe("last:final,mean:1,mean:final");
    expect(normaliseFeatureViews(" MEAN:03 , Last:FINAL")).toBe("mean:3,last:final");
  });
  it("reads the older layer-list forms as last-token views", () => {
    expect(normaliseFeatureViews("final")).toBe("last:final");
    expect(normaliseFeatureViews("8")).toBe("last:8");
    expect(normaliseFeatureViews(" 8, 016 ,FINAL")).toBe("last:8,last:16,last:final");
    expect(normaliseFeatureViews("8,mean:8")).toBe("last:8,mean:8");
  });
  it("keeps all unexpanded", () => {
    expect(normaliseFeatureViews(" ALL ")).toBe("all");
  });
  it("says where the words block comes from when a model selection names it", () => {
    expect(() => normaliseFeatureViews("last:final,words")).toThrow(
      /not read from the model: train computes/,
    );
  });
  it.each([
    "",
    "last",
    "8,,9",
    "-1",
    "1.5",
    "8,8",
    "final,last:final",
    "max:1",
    "last:",
    "last:1:2",
    "all,final",
  ])("rejects %j", (selection) => {
    expect(() => normaliseFeatureViews(selection)).toThrow(UsageError);
  });
});

describe("featureViewsOf", () => {
  it("expands all to every layer and final, last then mean then norms", () => {
    expect(featureViewsOf("all", 2).map((view) => view.name)).toEqual([
      "last:0",
      "last:1",
      "last:final",
      "mean:0",
      "mean:1",
      "mean:final",
      "norms:0",
      "norms:1",
      "norms:final",
    ]);
    expect(allFeatureViews(1)).toHaveLength(6);
  });
  it("parses views with their pooling and layer", () => {
    expect(featureViewsOf("mean:1,final,NORMS:0", 4)).toEqual([
      { name: "mean:1", pooling: "mean", layer: 1 },
      { name: "last:final", pooling: "last", layer: "final" },
      { name: "norms:0", pooling: "norms", layer: 0 },
    ]);
  });
  it("gives norms views a fixed width and the others the state's", () => {
    const [norms, mean] = featureViewsOf("norms:1,mean:1", 4);
    expect(pooledWidth(norms!, 896)).toBe(NORM_STATISTICS_DIM);
    expect(pooledWidth(mean!, 896)).toBe(896);
  });
  it("refuses a layer index outside the model, naming the model and its layer count", () => {
    expect(() => featureViewsOf("mean:4", 4, "m.gguf")).toThrow(
      /layer 4 is out of range: m\.gguf has 4 layers \(indices 0…3/,
    );
    expect(() => featureViewsOf("3", 4)).not.toThrow();
  });
});

describe("auto", () => {
  it("stands for last:final, the means of layer 0 and the middle layer and the embedding norms, and only alone", () => {
    expect(featureViewsOf("auto", 24).map((view) => view.name)).toEqual([
      "last:final",
      "mean:0",
      "mean:12",
      "norms:0",
    ]);
    expect(featureViewsOf(" AUTO ", 2).map((view) => view.name)).toEqual([
      "last:final",
      "mean:0",
      "mean:1",
      "norms:0",
    ]);
    expect(featureViewsOf("auto", 1).map((view) => view.name)).toEqual(["last:final", "mean:0", "norms:0"]);
    expect(normaliseFeatureViews("Auto")).toBe("auto");
    expect(() => normaliseFeatureViews("auto,mean:1")).toThrow(/cannot be combined/);
    expect(isLastFinalOnly("auto")).toBe(false);
  });

  it("becomes last:final where the engine reads no other view, and leaves other selections alone", () => {
    expect(resolveAutoSelection("auto", false)).toBe("last:final");
    expect(resolveAutoSelection("auto", true)).toBe("auto");
    expect(resolveAutoSelection("mean:1", false)).toBe("mean:1");
  });
});

describe("sameFeatureViews", () => {
  it("matches old spellings to the views they meant, and nothing else", () => {
    expect(sameFeatureViews("final", "last:final")).toBe(true);
    expect(sameFeatureViews("8,final", "last:8,last:final")).toBe(true);
    expect(sameFeatureViews("final,8", "last:8,last:final")).toBe(false);
    expect(sameFeatureViews("final", "mean:final")).toBe(false);
    expect(sameFeatureViews("not a view", "not a view")).toBe(true);
    expect(sameFeatureViews("not a view", "final")).toBe(false);
  });
});

describe("isLastFinalOnly", () => {
  it("is true for last:final in any spelling only", () => {
    expect(isLastFinalOnly("final")).toBe(true);
    expect(isLastFinalOnly(" LAST:final ")).toBe(true);
    expect(isLastFinalOnly("mean:final")).toBe(false);
    expect(isLastFinalOnly("final,0")).toBe(false);
    expect(isLastFinalOnly("all")).toBe(false);
  });
});

describe("featureViewSpans", () => {
  it("lays views end to end with their own widths", () => {
    const views = featureViewsOf("last:0,last:final,mean:1", 2);
    const spans = featureViewSpans(views, (view) => (view.layer === "final" ? 3 : 5));
    expect(spans.map(({ name, dim, offset }) => [name, dim, offset])).toEqual([
      ["last:0", 5, 0],
      ["last:final", 3, 5],
      ["mean:1", 5, 8],
    ]);
  });
});
