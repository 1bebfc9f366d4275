/**
 * Probe training and scoring speed: ridge with 5-fold CV over the default 9-penalty grid on
 * N = 30 000 synthetic rows (d = 512 and d = 2048), and single-thread scoring throughput.
 *
 * Run: `npx tsx bench/probe-training.ts` (prints one JSON object). Needs about two minutes of CPU on
 * an idle two-core machine, dominated by the d = 2048 Gram accumulation and tridiagonalizations.
 */
import { loadavg } from "node:os";
import { predict, predictRows } from "../src/probe/probe-model.js";
import { crossValidateRidge } from "../src/probe/ridge.js";
import { gaussianMatrix, linearTargets } from "../src/probe/synthetic-data.js";
import { createRandom, normal } from "../src/stats/random.js";
import { runIfMain } from "./run-if-main.js";

const ROWS = 30_000;
const DIMS = [512, 2048];
const SCORING_ROWS = 5_000;
const SINGLE_ROWS = 1_000;

async function benchDim(dim: number): Promise<Record<string, unknown>> {
  const generationStart = performance.now();
  const matrix = gaussianMatrix(ROWS, dim, dim);
  const random = createRandom(dim + 1);
  // A sparse true signal so the CV has something to find: 32 informative features.
  const weights = Array.from({ length: dim }, (_, column) => (column < 32 ? normal(random) : 0));
  const targets = linearTargets(matrix, weights, 0.5, 2, dim + 2);
  const generationMs = performance.now() - generationStart;

  const trainingStart = performance.now();
  const trainingCpu = process.cpuUsage();
  const result = crossValidateRidge(matrix, targets, { folds: 5, seed: 0 });
  const trainingMs = performance.now() - trainingStart;
  const trainingCpuMs = process.cpuUsage(trainingCpu).user / 1000;

  const scoringStart = performance.now();
  const scores = predictRows(result.model, matrix.features, SCORING_ROWS);
  const scoringMs = performance.now() - scoringStart;
  if (!Number.isFinite(scores[0]!)) throw new Error("scoring produced a non-finite value");
  // The per-request path: one row at a time through `predict`.
  const singleStart = performance.now();
  let checksum = 0;
  for (let row = 0; row < SINGLE_ROWS; row++) checksum += predict(result.model, matrix.features, row);
  const singleMs = performance.now() - singleStart;
  if (!Number.isFinite(checksum)) throw new Error("scoring produced a non-finite value");

  return {
    rows: ROWS,
    dim,
    folds: 5,
    lambdas: result.lambdas.length,
    dataGenerationMs: Math.round(generationMs),
    ridgeCvTrainingMs: Math.round(trainingMs),
    ridgeCvTrainingCpuMs: Math.round(trainingCpuMs),
    ridgeCvSplitMs: {
      moments: Math.round(result.timingsMs.moments),
      folds: Math.round(result.timingsMs.folds),
      final: Math.round(result.timingsMs.final),
    },
    chosenLambda: result.lambda,
    cvMse: result.cvMse,
    cvPearson: result.cvPearson,
    scoringRowsPerSecond: Math.round(SCORING_ROWS / (scoringMs / 1000)),
    singleRowPredictPerSecond: Math.round(SINGLE_ROWS / (singleMs / 1000)),
  };
}

/** Runs the benchmark and returns its figures. */
export async function run(): Promise<Record<string, unknown>> {
  const results: Record<string, unknown> = {};
  for (const dim of DIMS) results[`d${dim}`] = await benchDim(dim);
  // Wall-clock times depend on what else runs on the machine; the load average and CPU time tell.
  return { benchmark: "probe-training", node: process.version, loadAverage1m: loadavg()[0], ...results };
}

runIfMain(import.meta.url, run);
