import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type FakeOpenAIServer, startFakeOpenAIServer } from "../../test/helpers/fake-openai-server.js";
import { EngineCallError, EngineTimeoutError, InputError } from "../errors/index.js";
import { VERSION } from "../version.js";
import { createHttpMetric, toBatches } from "./http-metric.js";
import type { MetricItem } from "./segment-metric.js";

let server: FakeOpenAIServer;
let scoreUrl: string;
beforeAll(async () => {
  // Score = length of mt + 1000 when a reference was sent, so tests see exactly what reached the service.
  server = await startFakeOpenAIServer({
    score: (item) => (item.mt ?? "").length + (item.ref === undefined ? 0 : 1000),
  });
  scoreUrl = `${server.origin}/score`;
});
afterAll(async () => {
  await server.close();
});
beforeEach(() => {
  server.setBehaviour({ kind: "succeed" });
});

/** Items whose hypothesis lengths are 1, 2, ..., n, so each score identifies its item. */
function items(count: number, withRefs = true): MetricItem[] {
  return Array.from({ length: count }, (_, i) => ({
    src: `s${i}`,
    hyp: "x".repeat(i + 1),
    ...(withRefs ? { refs: [`r${i}`, "second ref is not sent"] } : {}),
  }));
}

describe("toBatches", () => {
  it("splits into consecutive batches", () => {
    expect(toBatches([1, 2, 3, 4, 5], 2)).toEqual([[1, 2], [3, 4], [5]]);
    expect(toBatches([], 3)).toEqual([]);
  });
});

describe("createHttpMetric", () => {
  it("describes itself", () => {
    const metric = createHttpMetric({ url: scoreUrl, name: "xcomet-xl", higherIsBetter: true });
    expect(metric.name).toBe("xcomet-xl");
    expect(metric.signature).toBe(`http:${scoreUrl}|name:xcomet-xl|version:routelmt-${VERSION}`);
    expect(metric.needsReference).toBe(true);
    const metricx = createHttpMetric({
      url: scoreUrl,
      name: "metricx",
      higherIsBetter: false,
      needsReference: false,
    });
    expect(metricx).toMatchObject({ higherIsBetter: false, needsReference: false });
  });

  it("scores 70 items in 3 batches of at most 32, keeping order", async () => {
    const metric = createHttpMetric({ url: scoreUrl, name: "comet" });
    const scores = await metric.scoreBatch(items(70));
    expect(scores).toEqual(Array.from({ length: 70 }, (_, i) => i + 1 + 1000));
    expect(server.requests.map((r) => (r.body as { items: unknown[] }).items.length)).toEqual([32, 32, 6]);
    expect((server.requests[0]!.body as { items: unknown[] }).items[0]).toEqual({
      src: "s0",
      mt: "x",
      ref: "r0",
    });
  });

  it("sends no ref for quality estimation and demands one otherwise", async () => {
    const kiwi = createHttpMetric({ url: scoreUrl, name: "cometkiwi", needsReference: false, batchSize: 4 });
    expect(await kiwi.scoreBatch(items(3, false))).toEqual([1, 2, 3]);
    expect((server.requests[0]!.body as { items: unknown[] }).items[1]).toEqual({ src: "s1", mt: "xx" });
    const comet = createHttpMetric({ url: scoreUrl, name: "comet" });
    await expect(comet.scoreBatch(items(2, false))).rejects.toBeInstanceOf(InputError);
  });

  it("names the service when the number of scores is wrong", async () => {
    server.setBehaviour({ kind: "json", body: { scores: [0.5, 0.6] } });
    const metric = createHttpMetric({ url: scoreUrl, name: "comet", batchSize: 3 });
    const error = await metric.scoreBatch(items(3)).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(EngineCallError);
    expect((error as Error).message).toBe(`metric comet at ${scoreUrl}: sent 3 items but got 2 scores`);
    expect(server.requests).toHaveLength(1);
  });

  it("rejects non-numeric scores and malformed bodies, naming the service", async () => {
    const metric = createHttpMetric({ url: scoreUrl, name: "comet" });
    server.setBehaviour({ kind: "json", body: { scores: [0.5, null] } });
    await expect(metric.scoreBatch(items(2))).rejects.toThrow(
      `metric comet at ${scoreUrl}: expected {"scores"`,
    );
    server.setBehaviour({ kind: "json", body: { result: [1, 2] } });
    await expect(metric.scoreBatch(items(2))).rejects.toThrow(/scores/);
    server.setBehaviour({ kind: "malformed" });
    await expect(metric.scoreBatch(items(2))).rejects.toThrow(`metric comet at ${scoreUrl}: malformed JSON`);
  });

  it("retries a failing service, then gives up with its status", async () => {
    server.setBehaviour([{ kind: "fail", status: 503 }, { kind: "succeed" }]);
    const metric = createHttpMetric({ url: scoreUrl, retries: 2, retryBaseDelayMs: 5 });
    expect(await metric.scoreBatch(items(2))).toEqual([1001, 1002]);
    expect(server.requests).toHaveLength(2);

    server.setBehaviour({ kind: "fail", status: 502 });
    await expect(metric.scoreBatch(items(2))).rejects.toMatchObject({ status: 502 });
    expect(server.requests).toHaveLength(3);
  });

  it("times out a hanging service", async () => {
    server.setBehaviour({ kind: "hang" });
    const metric = createHttpMetric({ url: scoreUrl, timeoutMs: 80, retries: 1, retryBaseDelayMs: 5 });
    await expect(metric.scoreBatch(items(1))).rejects.toBeInstanceOf(EngineTimeoutError);
    expect(server.requests).toHaveLength(2);
  });
});
