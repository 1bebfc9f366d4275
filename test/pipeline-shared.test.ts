/**
 * End to end on the real tinymt pair from ../shared: collect → train → eval. On this pair the gain
 * is hardly predictable from the source (the small and large models differ by noise more than by
 * knowledge), so this asserts the pipeline's invariants, not a science result.
 */
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { datasetFeatures, loadDataset } from "../src/dataset/index.js";
import { pairedBootstrapMeanDelta } from "../src/eval/bootstrap.js";
import { evalSegmentsFromDataset } from "../src/eval/policies.js";
import { sentenceChrf } from "../src/metrics/chrf.js";
import { chooseGuardKind } from "../src/probe/guard-choice.js";
import { loadRouter, predictHeads, routerBlocks } from "../src/probe/router-file.js";
import { runCliCaptured } from "./helpers/cli.js";
import { collectArguments } from "./helpers/fixture-pair.js";
import { hasShared, sharedPath, sharedSkipReason } from "./helpers/shared.js";

const available = hasShared(
  ["models", "tinymt-small.gguf"],
  ["models", "tinymt-large.gguf"],
  ["models", "tinymt.template"],
  ["data", "multi30k-en-de", "train.jsonl"],
  ["data", "multi30k-en-de", "val.jsonl"],
);
const TRAIN = 240;
const TEST = 120;
/**
 * The gap pair's slices: the first 1,000 Multi30k training lines to train, the first 500 validation
 * lines to test. Measured on 12 random splits of these sizes (seeds 1–12), RouteLMT's MeanDelta at
 * p = 0.3 beat Length by 3.9–7.4 chrf points (mean 5.4) and Random by 1.4–5.6 (mean 3.2); on these
 * slices by 6.5 and 4.1. With 300 test segments some splits fell below Random, hence 500.
 */
const GAP_TRAIN = 1000;
const GAP_TEST = 500;
const gapAvailable = available && hasShared(["models", "tinymt-small-gap.gguf"]);

let work: string;
/** The gap-pair demo's output folder, once its test has run. */
let gapOut: string | undefined;
let trainInput: string;
let testInput: string;

async function slice(file: string, from: number, count: number, out: string): Promise<void> {
  const lines = (await readFile(file, "utf8")).split("\n").filter(Boolean);
  await writeFile(out, `${lines.slice(from, from + count).join("\n")}\n`);
}

function collectArgs(input: string, out: string): string[] {
  const pair = {
    small: sharedPath("models", "tinymt-small.gguf"),
    large: sharedPath("models", "tinymt-large.gguf"),
    template: sharedPath("models", "tinymt.template"),
  };
  return collectArguments({ ...pair, input, out }, ["--max-tokens", "64"]);
}

describe.skipIf(!available)(
  `pipeline on the tinymt pair ${available ? "" : sharedSkipReason("the tinymt pipeline test")}`,
  () => {
    beforeAll(async () => {
      work = await mkdtemp(path.join(tmpdir(), "routelmt-pipeline-"));
      trainInput = path.join(work, "train.jsonl");
      testInput = path.join(work, "test.jsonl");
      await slice(sharedPath("data", "multi30k-en-de", "train.jsonl"), 0, TRAIN, trainInput);
      await slice(sharedPath("data", "multi30k-en-de", "val.jsonl"), 0, TEST, testInput);
    });

    it("collects, trains and evaluates with consistent datasets, router and report", async () => {
      const train = path.join(work, "train");
      const collected = await runCliCaptured(collectArgs(trainInput, train));
      expect(collected.stderr).not.toMatch(/error/i);
      expect(collected.code).toBe(0);
      const dataset = await loadDataset(train);
      expect(dataset.records).toHaveLength(TRAIN);
      expect(dataset.meta).toMatchObject({
        n: TRAIN,
        // The default views: last:final, mean:0 and mean:1 of the 128-wide, 2-layer model, and the
        // 10 statistics of its token embeddings' norms.
        dim: 394,
        label_metric: "chrf",
        template: "{src}: {text}\n{tgt}:",
      });
      expect(dataset.meta.feature_blocks?.map((block) => block.name)).toEqual([
        "last:final",
        "mean:0",
        "mean:1",
        "norms:0",
      ]);
      expect(dataset.features).toHaveLength(TRAIN * 394);
      for (const record of dataset.records) {
        // Labels are the metric on the stored outputs.
        expect(record.q_small).toBeCloseTo(sentenceChrf(record.small ?? "", [record.ref ?? ""]).score, 9);
        expect(record.q_large).toBeCloseTo(sentenceChrf(record.large ?? "", [record.ref ?? ""]).score, 9);
        expect(record.gain).toBeCloseTo((record.q_large as number) - (record.q_small as number), 9);
      }

      const routerFile = path.join(work, "router.json");
      const trained = await runCliCaptured(["train", "--data", train, "--out", routerFile]);
      expect(trained.code).toBe(0);
      const router = await loadRouter(routerFile);
      expect(router.feature).toMatchObject({
        template: dataset.meta.template,
        fingerprint: dataset.meta.small.fingerprint,
      });
      // train's selection keeps some of the dataset's blocks, in the dataset's order; the router reads
      // exactly those.
      const chosen = router.feature.blocks ?? [];
      expect(chosen.length).toBeGreaterThan(0);
      expect(chosen).toEqual(
        ["last:final", "mean:0", "mean:1", "norms:0", "words", "length"].filter((name) =>
          chosen.includes(name),
        ),
      );
      expect(router.feature.layer).toBe(chosen.join(","));
      const widths: Record<string, number> = { "norms:0": 10, words: 1024, length: 2 };
      expect(router.feature.dim).toBe(chosen.reduce((sum, name) => sum + (widths[name] ?? 128), 0));
      const scores = predictHeads(router, datasetFeatures(dataset, chosen).features, TRAIN);
      expect(scores.gain).toHaveLength(TRAIN);
      expect(Array.from(scores.gain as Float64Array).every(Number.isFinite)).toBe(true);
      console.info(
        `tinymt pair, ${TRAIN} training segments: CV Spearman of the gain head ${router.heads.gain?.report.cv_spearman?.toFixed(3)}`,
      );

      const test = path.join(work, "test");
      expect((await runCliCaptured(collectArgs(testInput, test))).code).toBe(0);
      const report = path.join(work, "report");
      const evaluated = await runCliCaptured([
        "eval",
        "--data",
        test,
        "--router",
        routerFile,
        "--out",
        report,
      ]);
      expect(evaluated.code).toBe(0);
      expect(evaluated.stdout).toMatch(/At p = 30 %/);
      const summary = JSON.parse(await readFile(path.join(report, "summary.json"), "utf8"));
      expect(summary.n).toBe(TEST);
      for (const [name, policy] of Object.entries<{
        curve: { budget: number; quality: number; realized: number }[];
      }>(summary.policies)) {
        const first = policy.curve[0];
        const last = policy.curve.at(-1);
        expect(first?.quality, name).toBeCloseTo(summary.small_only, 9);
        if (!name.startsWith("guarded")) expect(last?.quality, name).toBeCloseTo(summary.large_only, 9);
        for (const point of policy.curve) {
          const exact = Math.floor(point.budget * TEST + 1e-9) / TEST;
          // Guarded policies may leave budget unspent when too few candidates pass the guard.
          if (name.startsWith("guarded")) expect(point.realized, name).toBeLessThanOrEqual(exact + 1e-9);
          else expect(point.realized, name).toBeCloseTo(exact, 9);
          const oracle = summary.policies["oracle-gain"].curve.find(
            (p: { budget: number }) => p.budget === point.budget,
          );
          expect(oracle.quality + 1e-9, name).toBeGreaterThanOrEqual(point.quality);
        }
      }
      for (const file of [
        "summary.json",
        "curves.csv",
        "pareto.svg",
        "pareto.png",
        "report.html",
        "report.md",
      ]) {
        expect((await readFile(path.join(report, file))).length, file).toBeGreaterThan(100);
      }
    }, 300_000);

    it.skipIf(!gapAvailable)(
      "on the pair with a knowledge gap, the demo's RouteLMT beats Length and Random at p = 0.3",
      async () => {
        const data = path.join(work, "gap.jsonl");
        const train = (await readFile(sharedPath("data", "multi30k-en-de", "train.jsonl"), "utf8"))
          .split("\n")
          .filter(Boolean);
        const test = (await readFile(sharedPath("data", "multi30k-en-de", "val.jsonl"), "utf8"))
          .split("\n")
          .filter(Boolean);
        await writeFile(data, `${[...train.slice(0, GAP_TRAIN), ...test.slice(0, GAP_TEST)].join("\n")}\n`);
        const out = path.join(work, "gap-demo");
        const run = await runCliCaptured([
          "demo",
          "--small",
          sharedPath("models", "tinymt-small-gap.gguf"),
          "--large",
          sharedPath("models", "tinymt-large.gguf"),
          "--template",
          sharedPath("models", "tinymt.template"),
          "--data",
          data,
          "--train",
          String(GAP_TRAIN),
          "--test",
          String(GAP_TEST),
          "--threads",
          "1",
          "--max-tokens",
          "64",
          "--out",
          out,
        ]);
        expect(run.code).toBe(0);
        gapOut = out;
        const summary = JSON.parse(await readFile(path.join(out, "report", "summary.json"), "utf8"));
        const at = (policy: string) =>
          summary.policies[policy].curve.find(
            (point: { budget: number }) => Math.abs(point.budget - 0.3) < 1e-9,
          ).mean_delta as number;
        console.info(
          `gap pair, p = 0.3 MeanDelta: routelmt ${at("routelmt").toFixed(2)}, length ${at("length").toFixed(2)}, random ${at("random").toFixed(2)}`,
        );
        expect(at("routelmt")).toBeGreaterThan(at("length"));
        expect(at("routelmt")).toBeGreaterThan(at("random"));
      },
      600_000,
    );

    it.skipIf(!gapAvailable)(
      "on the gap pair, the chosen probe is not worse than the default held out, and the guard keeps its word",
      async () => {
        if (gapOut === undefined) throw new Error("needs the gap-pair demo of the test before");
        const router = await loadRouter(path.join(gapOut, "router.json"));
        const selection = router.selection!;
        expect(selection.candidates[selection.default!]).toMatchObject({
          blocks: ["last:final"],
          probe: "ridge",
        });

        // The default today trains: one ridge on last:final, its penalty by CV mean squared error.
        const defaultFile = path.join(work, "gap-default.json");
        const trained = await runCliCaptured([
          "train",
          ...[
            "--data",
            path.join(gapOut, "train"),
            "--out",
            defaultFile,
            "--select",
            "off",
            "--heads",
            "gain",
          ],
        ]);
        expect(trained.code).toBe(0);
        const fallback = await loadRouter(defaultFile);
        const test = await loadDataset(path.join(gapOut, "test"));
        const scoresOf = (file: typeof router) => {
          const matrix = datasetFeatures(test, routerBlocks(file));
          return Array.from(predictHeads(file, matrix.features, matrix.rows).gain!);
        };
        const outcomes = evalSegmentsFromDataset(test.meta, test.records).outcomes;
        // Honest about noise: the selection is chosen on training folds, so on a held-out split it
        // can land either side of the default; what must not happen is a significant loss.
        for (const budget of [0.1, 0.2, 0.3, 0.5]) {
          const interval = pairedBootstrapMeanDelta({
            scoresA: scoresOf(router),
            scoresB: scoresOf(fallback),
            outcomes,
            budget,
            resamples: 1000,
            seed: 3,
          });
          console.info(
            `gap pair, p = ${budget}: chosen ${selection.candidates[selection.chosen]!.blocks.join("+")} ${selection.candidates[selection.chosen]!.probe} − default MeanDelta ${interval.diff.toFixed(2)} [${interval.lo.toFixed(2)}, ${interval.hi.toFixed(2)}]`,
          );
          expect(interval.hi, `p = ${budget}`).toBeGreaterThanOrEqual(0);
        }

        // The guard's training contract: λ = 0, or a λ that kept cross-validated MeanDelta within the
        // tolerance at every budget and cut cross-validated severe losses by more than their noise.
        const guard = router.guard!;
        const base = guard.grid[0]!;
        const used = guard.grid.find((point) => point.lambda === guard.lambda)!;
        used.mean_delta.forEach((value, budget) => {
          expect(value).toBeGreaterThanOrEqual(base.mean_delta[budget]! * (1 - guard.tolerance) - 1e-9);
        });
        if (guard.lambda > 0) expect(guard.best_cut!.diff).toBeGreaterThan(guard.best_cut!.se);

        // Held out, the report must say what the guard does on this data.
        const summary = JSON.parse(await readFile(path.join(gapOut, "report", "summary.json"), "utf8"));
        const row = (policy: string, budget: number) =>
          summary.policies[policy].curve.find(
            (point: { budget: number }) => Math.abs(point.budget - budget) < 1e-9,
          );
        for (const budget of [0.1, 0.2, 0.3, 0.5]) {
          console.info(
            `gap pair, p = ${budget}: severe loss guarded ${row("guarded", budget).severe_loss} routelmt ${row("routelmt", budget).severe_loss} random ${row("random", budget).severe_loss}; MeanDelta guarded ${row("guarded", budget).mean_delta.toFixed(2)} routelmt ${row("routelmt", budget).mean_delta.toFixed(2)}`,
          );
        }
        const tradeoff = summary.router.guard;
        const helps = tradeoff.points
          .slice(1)
          .some((point: { severe_loss: number[]; mean_delta: number[] }) =>
            tradeoff.budgets.every(
              (_: number, column: number) =>
                point.severe_loss[column]! < tradeoff.points[0].severe_loss[column] &&
                point.mean_delta[column]! >= tradeoff.points[0].mean_delta[column] * (1 - tradeoff.tolerance),
            ),
          );
        const report = await readFile(path.join(gapOut, "report", "report.md"), "utf8");
        expect(report).toContain(
          helps
            ? "cut severe losses at every reported budget within that MeanDelta tolerance"
            : "no λ of the grid cuts severe losses",
        );

        // The guarded policy ranks by the guard training chose: the post-hoc one when the in-model guard
        // cut nothing and the post-hoc one changes the ranking (held out, then, guarded is guarded-qe).
        expect(router.guarded_by).toBe(chooseGuardKind("auto", router.guard, router.guard_qe));
        if (router.guarded_by === "post-hoc")
          expect(summary.policies.guarded.curve).toEqual(summary.policies["guarded-qe"].curve);

        // The post-hoc guard's contract when it ranks by the re-estimated gain: kept only within the
        // MeanDelta tolerance of the gain head's at every budget and without more cross-validated
        // severe losses beyond two standard errors; the report reads it against RouteLMT.
        const qe = router.guard_qe;
        if (qe?.restack) {
          const cut = qe.restack_cut!;
          expect(cut.taken).toBe(true);
          expect(cut.diff).toBeGreaterThanOrEqual(-2 * cut.se - 1e-12);
          const chosen = qe.grid.find((point) => point.lambda === qe.lambda)!;
          chosen.mean_delta.forEach((value, budget) => {
            const unguarded = cut.unguarded!.mean_delta[budget]!;
            expect(value).toBeGreaterThanOrEqual(unguarded - qe.tolerance * Math.abs(unguarded) - 1e-9);
          });
          expect(report).toContain(
            "On this data it cuts RouteLMT's severe losses within that MeanDelta tolerance at",
          );
          for (const budget of [0.1, 0.2, 0.3, 0.5]) {
            console.info(
              `gap pair, p = ${budget}: severe loss guarded-qe ${row("guarded-qe", budget).severe_loss} routelmt ${row("routelmt", budget).severe_loss}; MeanDelta guarded-qe ${row("guarded-qe", budget).mean_delta.toFixed(2)} routelmt ${row("routelmt", budget).mean_delta.toFixed(2)}`,
            );
          }
        }
      },
      300_000,
    );
  },
);
