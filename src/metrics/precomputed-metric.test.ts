import { describe, expect, it } from "vitest";
import { InputError, UsageError } from "../errors/index.js";
import { VERSION } from "../version.js";
import { createPrecomputedMetric, readDotPath } from "./precomputed-metric.js";

const record = (sys: unknown) => ({
  src: "s",
  metrics: { "a.b": { sys }, "CometKiwi-src": { "GPT4-5shot": 0.9 } },
});

describe("createPrecomputedMetric", () => {
  it("reads scores from records, quoted keys included", async () => {
    const metric = createPrecomputedMetric({ name: "comet", path: 'metrics."a.b".sys' });
    expect(metric).toMatchObject({ name: "comet", higherIsBetter: true, needsReference: false });
    expect(metric.signature).toBe(`precomputed:metrics."a.b".sys|name:comet|version:routelmt-${VERSION}`);
    const scores = await metric.scoreBatch([
      { src: "s", hyp: "h", record: record(0.25) },
      { src: "s", hyp: "h", record: record(-1.5) },
    ]);
    expect(scores).toEqual([0.25, -1.5]);
  });

  it("reads plain keys with dashes and digits", async () => {
    const metric = createPrecomputedMetric({ name: "kiwi", path: "metrics.CometKiwi-src.GPT4-5shot" });
    expect(await metric.scoreBatch([{ src: "s", hyp: "h", record: record(0) }])).toEqual([0.9]);
  });

  it("throws an InputError naming the path for missing, null and non-numeric values", async () => {
    const metric = createPrecomputedMetric({ name: "comet", path: 'metrics."a.b".sys' });
    await expect(metric.scoreBatch([{ src: "s", hyp: "h", record: record(null) }])).rejects.toThrow(
      InputError,
    );
    await expect(
      metric.scoreBatch([
        { src: "s", hyp: "h", record: record(1) },
        { src: "s", hyp: "h", record: { metrics: {} } },
      ]),
    ).rejects.toThrow('metric comet: item 2 of the batch has no value at metrics."a.b".sys');
    await expect(metric.scoreBatch([{ src: "s", hyp: "h" }])).rejects.toThrow("(no record)");
    await expect(metric.scoreBatch([{ src: "s", hyp: "h", record: record("0.5") }])).rejects.toThrow(
      /"0\.5" at metrics\."a\.b"\.sys, not a finite number/,
    );
  });

  it("lets callers check for a value first", () => {
    expect(readDotPath(record(null), 'metrics."a.b".sys')).toBeNull();
    expect(readDotPath(record(2), 'metrics."a.b".sys')).toBe(2);
  });

  it("refuses a malformed path at creation", () => {
    expect(() => createPrecomputedMetric({ name: "x", path: 'metrics."a.b' })).toThrow(UsageError);
  });
});
