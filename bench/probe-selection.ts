/**
 * Training time of the gain probe's selection (nested CV over feature blocks and probe kinds) at a
 * realistic size: every layer × {last, mean} of a 24-layer, 896-dim model (50 blocks, 44,800 values
 * per row) for 2,000 rows, and at the tinymt size (6 blocks of 128) for comparison. The gain is
 * carried by two blocks, so the search has something to find.
 *
 * Run: `npx tsx bench/probe-selection.ts` (prints one JSON object). The realistic case needs about
 * 0.4 GB of memory and tens of minutes of CPU on a busy two-core machine.
 */
import { loadavg } from "node:os";
import type { FeatureBlock } from "../src/dataset/feature-blocks.js";
import { measureLearningCurve } from "../src/probe/learning-curve.js";
import { DEFAULT_SELECTION_BUDGETS, selectGainProbe } from "../src/probe/probe-selection.js";
import { createRandom, fillNormal, normal } from "../src/stats/random.js";
import { runIfMain } from "./run-if-main.js";

interface Shape {
  name: string;
  rows: number;
  layers: number;
  width: number;
}

const SHAPES: Shape[] = [
  { name: "tinymt-like", rows: 2000, layers: 2, width: 128 },
  { name: "24-layer-896", rows: 2000, layers: 24, width: 896 },
];

/** Every layer and `final`, each pooled at the last token and as a mean (the engines' `all`). */
function blocksOf(shape: Shape): FeatureBlock[] {
  const layers: (number | "final")[] = [
    ...Array.from({ length: shape.layers }, (_, layer) => layer),
    "final",
  ];
  const views = (["last", "mean"] as const).flatMap((pooling) => layers.map((layer) => ({ pooling, layer })));
  return views.map(({ pooling, layer }, index) => ({
    name: `${pooling}:${layer}`,
    pooling,
    layer,
    dim: shape.width,
    offset: index * shape.width,
  }));
}

async function benchShape(shape: Shape): Promise<Record<string, unknown>> {
  const blocks = blocksOf(shape);
  const dim = blocks.length * shape.width;
  const features = new Float32Array(shape.rows * dim);
  const random = createRandom(shape.width + shape.layers);
  fillNormal(features, random);
  // Signal in the middle layer's mean block and in last:final.
  const signalBlocks = [
    blocks.find((block) => block.name === `mean:${Math.floor(shape.layers / 2)}`)!,
    blocks[shape.layers]!,
  ];
  const gains = Float64Array.from({ length: shape.rows }, (_, row) => {
    let gain = 10 + 12 * normal(random);
    for (const block of signalBlocks) {
      for (let column = 0; column < 8; column++) gain += 2 * features[row * dim + block.offset + column]!;
    }
    return gain;
  });
  const lines: string[] = [];
  const started = performance.now();
  const cpu = process.cpuUsage();
  const result = selectGainProbe(
    { features, rows: shape.rows, dim, blocks, gains },
    {
      budgets: DEFAULT_SELECTION_BUDGETS,
      folds: 5,
      innerFolds: 3,
      seed: 0,
      severeDelta: 10,
      probes: ["ridge", "ridge-rank", "mlp"],
      onProgress: (line) => {
        lines.push(line);
        process.stderr.write(`  ${line}\n`);
      },
    },
  );
  const selectionMs = performance.now() - started;
  const curve = measureLearningCurve(result.measureOnShare, {
    budgets: DEFAULT_SELECTION_BUDGETS,
    trainingRows: Math.ceil(shape.rows * 0.8),
  });
  const chosen = result.report.candidates[result.report.chosen]!;
  const stages = { screen: 0, nestedRidge: 0, mlp: 0 };
  for (const candidate of result.report.candidates) {
    if (candidate.stage === "screen") stages.screen += candidate.seconds;
    else if (candidate.probe === "mlp") stages.mlp += candidate.seconds;
    else stages.nestedRidge += candidate.seconds;
  }
  return {
    rows: shape.rows,
    blocks: blocks.length,
    valuesPerRow: dim,
    candidates: result.report.candidates.length,
    dualCandidates: result.report.candidates.filter((candidate) => candidate.form === "dual").length,
    selectionSeconds: Math.round(selectionMs / 100) / 10,
    selectionCpuSeconds: Math.round(process.cpuUsage(cpu).user / 1e5) / 10,
    secondsByStage: Object.fromEntries(
      Object.entries(stages).map(([key, value]) => [key, Math.round(value * 10) / 10]),
    ),
    learningCurveSeconds: Math.round(curve.seconds * 10) / 10,
    chosen: { blocks: chosen.blocks, probe: chosen.probe, dim: chosen.dim, score: chosen.score },
    signalBlocks: signalBlocks.map((block) => block.name),
  };
}

/** Runs the benchmark and returns its figures. */
export async function run(): Promise<Record<string, unknown>> {
  const results: Record<string, unknown> = {};
  for (const shape of SHAPES) {
    process.stderr.write(`probe-selection ${shape.name} ...\n`);
    results[shape.name] = await benchShape(shape);
  }
  // Wall-clock times depend on what else runs on the machine; the load average and CPU time tell.
  return { benchmark: "probe-selection", node: process.version, loadAverage1m: loadavg()[0], ...results };
}

runIfMain(import.meta.url, run);
