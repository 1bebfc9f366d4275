/**
 * Runs every benchmark in one process, one after another, and writes `bench/results.json` with the
 * machine it ran on. Each benchmark measures its own baseline in the same run and reports ratios.
 * Run: `npm run bench` (or `npm run bench -- chrf-throughput probe-training` for a subset).
 */
import { writeFile } from "node:fs/promises";
import { availableParallelism, cpus, platform, release, totalmem } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const benchmarks: Record<string, () => Promise<{ run: () => Promise<Record<string, unknown>> }>> = {
  "chrf-throughput": () => import("./chrf-throughput.js"),
  "probe-training": () => import("./probe-training.js"),
  "probe-selection": () => import("./probe-selection.js"),
  "llama-overhead": () => import("./llama-overhead.js"),
  "feature-overhead": () => import("./feature-overhead.js"),
  "collect-throughput": () => import("./collect-throughput.js"),
  "large-likelihood-cost": () => import("./large-likelihood-cost.js"),
  "collect-llama-server": () => import("./collect-llama-server.js"),
  "decision-cost": () => import("./decision-cost.js"),
  "server-overhead": () => import("./server-overhead.js"),
  "server-timeline": () => import("./server-timeline.js"),
  "embedding-transfer": () => import("./embedding-transfer.js"),
  "stream-first-token": () => import("./stream-first-token.js"),
  "event-loop-latency": () => import("./event-loop-latency.js"),
};

const selected = process.argv.slice(2);
const results: Record<string, unknown> = {};
for (const [name, load] of Object.entries(benchmarks)) {
  if (selected.length > 0 && !selected.includes(name)) continue;
  process.stderr.write(`bench ${name} ...\n`);
  const started = performance.now();
  try {
    results[name] = await (await load()).run();
  } catch (error) {
    results[name] = { error: (error as Error).message };
  }
  process.stderr.write(`bench ${name} done in ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
}
const report = {
  date: new Date().toISOString(),
  machine: {
    cpu: cpus()[0]?.model ?? "unknown",
    cores: availableParallelism(),
    memory_gib: Math.round(totalmem() / 2 ** 30),
    platform: `${platform()} ${release()}`,
    node: process.version,
  },
  results,
};
const out = path.join(path.dirname(fileURLToPath(import.meta.url)), "results.json");
await writeFile(out, `${JSON.stringify(report, null, 2)}\n`);
console.log(JSON.stringify(report));
