/**
 * `eval --budget-unit`: quality against realized tokens or cost in summary.json, curves-cost.csv,
 * the second plot and its report section; and the CLI on a collected dataset.
 */
import { existsSync } from "node:fs";
import { mkdtemp, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import type { DatasetMeta, DatasetRecord } from "../src/dataset/types.js";
import { segmentWeights } from "../src/eval/cost-curves.js";
import { type EvalPolicy, evalSegmentsFromDataset, rankingRealization } from "../src/eval/policies.js";
import { writeReport } from "../src/eval/report/index.js";
import { runEval } from "../src/eval/run-eval.js";
import { createRandom, normal } from "../src/stats/random.js";

let work: string;

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), "routelmt-eval-cost-"));
});

const META: DatasetMeta = {
  n: 200,
  dim: null,
  label_metric: "chrf",
  label_higher_is_better: true,
  metric_signatures: {},
  small: { spec: null, fingerprint: null, arch: null, layer: null },
  large: { spec: null },
  template: null,
  src_lang: "en",
  tgt_lang: "de",
  created: "2026-01-01T00:00:00.000Z",
  routelmt_version: "0.0.0",
  source: { kind: "collect", input: "in.jsonl", decoding: {} },
};

describe("eval with a budget unit", () => {
  it("draws quality against the realized share of the large model's bill", async () => {
    const random = createRandom(7);
    // Long segments gain more, so a policy ranking by gain spends more per routed segment.
    const records: DatasetRecord[] = Array.from({ length: META.n }, (_, index) => {
      const length = 5 + Math.floor(random.nextFloat() * 60);
      const small = normal(random, 40, 8);
      const gain = length / 10 + normal(random, 0, 3);
      return {
        id: `s${index}`,
        src: "x",
        ref: null,
        src_lang: "en",
        tgt_lang: "de",
        small: null,
        large: null,
        scores: {},
        q_small: small,
        q_large: small + gain,
        gain,
        src_chars: length * 4,
        prompt_tokens: length + 10,
        entropy: null,
        large_prompt_tokens: length + 12,
        large_output_tokens: length,
      };
    });
    const segments = evalSegmentsFromDataset(META, records);
    const policy = (name: string, scores: number[]): EvalPolicy => ({
      name,
      family: "baseline",
      description: name,
      realizations: [rankingRealization(Float64Array.from(scores), segments.outcomes.ids)],
      cost: null,
    });
    const basis = { unit: "cost" as const, prices: { input: 1, output: 3 } };
    const summary = runEval(
      segments,
      [
        policy(
          "oracle-gain",
          records.map((record) => record.gain!),
        ),
        policy(
          "short-first",
          records.map((record) => -record.src_chars),
        ),
      ],
      {
        severeDelta: 10,
        seed: 1,
        labelMetric: "chrf",
        bootstrapResamples: 50,
        budgets: [0, 0.2, 0.5, 1],
        costs: { basis, weights: segmentWeights(segments.records, basis) },
      },
    );
    const cost = summary.cost!;
    expect(cost.unit).toBe("cost");
    const byGain = cost.policies["oracle-gain"]!;
    const shortFirst = cost.policies["short-first"]!;
    for (const curve of [byGain, shortFirst]) {
      for (const point of curve) expect(point.realized_cost).toBeLessThanOrEqual(point.budget + 1e-12);
      expect(curve.at(-1)).toMatchObject({ realized_cost: 1, realized_segments: 1 });
    }
    // At a fifth of the bill, short segments first route many more segments than high gain first.
    expect(shortFirst[1]!.realized_segments).toBeGreaterThan(byGain[1]!.realized_segments);

    const files = await writeReport(summary, path.join(work, "report"));
    expect(files.cost).toBeDefined();
    const csv = (await readFile(files.cost!.curves, "utf8")).trim().split("\n");
    expect(csv[0]).toBe("policy,unit,budget,realized_cost,realized_segments,quality");
    expect(csv).toHaveLength(1 + 2 * 4);
    expect(await readFile(files.cost!.svg, "utf8")).toContain("Realized cost");
    expect(existsSync(files.cost!.png)).toBe(true);
    const html = await readFile(files.html, "utf8");
    expect(html).toContain('<section id="cost">');
    expect(html).toContain("Quality vs realized cost");
    expect(JSON.parse(await readFile(files.summary, "utf8")).cost.policies["oracle-gain"]).toHaveLength(4);
  });
});
