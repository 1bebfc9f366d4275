/**
 * Greedy output must not depend on batching. On the real tinymt pair and 200 Multi30k sentences,
 * `translate`, `collect` and `serve` at concurrency 1, 2, 4 and 8 (several sequences sharing one
 * llama.cpp context and its batches) give exactly the translations of one-sequence decoding, and
 * `collect` the same features — with either feature engine: node-llama-cpp's, and the FFI engine's
 * continuous batching in its worker thread (reading several views, mean-pooled ones included).
 *
 * The regressions this guards (see `src/features/llama-internals.ts`): with several sequences per
 * batch, llama.cpp restores the order of its output rows lazily on first access, and node-llama-cpp's
 * parallel sampling workers raced on it, so a sequence sometimes read another sequence's logits; and a
 * prompt batched with other sequences' decode steps was cut into a one-token piece and the rest, whose
 * other CPU kernels flipped a near-tie greedy token (Multi30k val 149, "Sackel" / "Segelboot").
 */
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadDataset } from "../src/dataset/index.js";
import { buildApp } from "../src/server/app.js";
import { resolveServerConfig } from "../src/server/config.js";
import { runCliCaptured } from "./helpers/cli.js";
import { collectArguments } from "./helpers/fixture-pair.js";
import { hasShared, sharedPath, sharedSkipReason } from "./helpers/shared.js";
import { postJson, runConcurrently } from "./server-fixtures.js";

const available = hasShared(
  ["models", "tinymt-small.gguf"],
  ["models", "tinymt-large.gguf"],
  ["models", "tinymt.template"],
  ["data", "multi30k-en-de", "val.jsonl"],
);
const COUNT = 200;
const LEVELS = [1, 2, 4, 8] as const;
const MAX_TOKENS = "64";
/** What each engine reads: node-llama-cpp only last:final; the FFI engine several views. */
const ENGINE_VIEWS = { llama: "last:final", ffi: "last:final,mean:1,mean:final" } as const;

type ModelName = "small" | "large";

let work: string;
let input: string;
let sources: string[];
const pair = () => ({
  small: sharedPath("models", "tinymt-small.gguf"),
  large: sharedPath("models", "tinymt-large.gguf"),
  template: sharedPath("models", "tinymt.template"),
});
/** One-sequence greedy translations per model, in input order (from `translate --concurrency 1`). */
const reference: Partial<Record<ModelName, string[]>> = {};

async function translateAll(model: ModelName, concurrency: number): Promise<string[]> {
  const out = path.join(work, `${model}-${concurrency}.jsonl`);
  const run = await runCliCaptured([
    "translate",
    ...["--model", pair()[model], "--template", pair().template],
    ...["--src-lang", "en", "--tgt-lang", "de", "--in", input, "--out", out],
    ...["--concurrency", String(concurrency), "--threads", "1", "--max-tokens", MAX_TOKENS],
  ]);
  expect(run.code, run.stderr).toBe(0);
  const lines = (await readFile(out, "utf8")).split("\n").filter(Boolean);
  return lines.map((line) => (JSON.parse(line) as { hyp: string }).hyp);
}

function referenceOf(model: ModelName): string[] {
  const translations = reference[model];
  if (translations === undefined) throw new Error(`the ${model} reference was not computed`);
  return translations;
}

/** Indices where two lists of translations differ, with both texts (a readable failure). */
function differences(expected: readonly string[], actual: readonly string[]) {
  return expected.flatMap((text, index) =>
    text === actual[index] ? [] : [{ index, source: sources[index], expected: text, actual: actual[index] }],
  );
}

describe.skipIf(!available)(
  `outputs under concurrency equal one-sequence decoding ${available ? "" : sharedSkipReason("the concurrency equivalence test")}`,
  () => {
    beforeAll(async () => {
      work = await mkdtemp(path.join(tmpdir(), "routelmt-concurrency-"));
      input = path.join(work, "in.jsonl");
      const lines = (await readFile(sharedPath("data", "multi30k-en-de", "val.jsonl"), "utf8"))
        .split("\n")
        .filter(Boolean)
        .slice(0, COUNT);
      sources = lines.map((line) => (JSON.parse(line) as { src: string }).src);
      await writeFile(input, `${lines.join("\n")}\n`);
    });
    afterAll(async () => {
      if (work) await rm(work, { recursive: true, force: true });
    });

    it("translate: both models at concurrency 2, 4 and 8 equal concurrency 1", async () => {
      for (const model of ["small", "large"] as const) {
        reference[model] = await translateAll(model, 1);
        expect(referenceOf(model)).toHaveLength(COUNT);
        for (const level of LEVELS.slice(1)) {
          const translations = await translateAll(model, level);
          expect(differences(referenceOf(model), translations), `${model}, concurrency ${level}`).toEqual([]);
        }
      }
    }, 600_000);

    it.each(["llama", "ffi"] as const)(
      "collect (%s feature engine): translations equal one-sequence decoding and features equal at every level",
      async (engine) => {
        let baseFeatures: Float32Array | undefined;
        let baseEntropy: number[] | undefined;
        for (const level of LEVELS) {
          const out = path.join(work, `collect-${engine}-${level}`);
          const run = await runCliCaptured(
            collectArguments({ ...pair(), input, out }, [
              ...["--concurrency", String(level), "--feature-engine", engine, "--max-tokens", MAX_TOKENS],
              ...["--layer", ENGINE_VIEWS[engine]],
            ]),
          );
          expect(run.code, run.stderr).toBe(0);
          const dataset = await loadDataset(out);
          const small = dataset.records.map((record) => record.small ?? "");
          const large = dataset.records.map((record) => record.large ?? "");
          expect(differences(referenceOf("small"), small), `small, concurrency ${level}`).toEqual([]);
          expect(differences(referenceOf("large"), large), `large, concurrency ${level}`).toEqual([]);
          const features = dataset.features as Float32Array;
          const entropy = dataset.records.map((record) => record.entropy as number);
          expect(features).toHaveLength(COUNT * (engine === "ffi" ? 3 : 1) * 128);
          if (baseFeatures === undefined || baseEntropy === undefined) {
            baseFeatures = features;
            baseEntropy = entropy;
            continue;
          }
          let largest = 0;
          for (let index = 0; index < features.length; index++) {
            largest = Math.max(
              largest,
              Math.abs((features[index] as number) - (baseFeatures[index] as number)),
            );
          }
          expect(largest, `largest feature difference at concurrency ${level}`).toBe(0);
          expect(entropy, `entropies at concurrency ${level}`).toEqual(baseEntropy);
        }
      },
      900_000,
    );

    it("serve: 32 concurrent requests get the one-sequence translation of the model that served them", async () => {
      const router = path.join(work, "router.json");
      const trained = await runCliCaptured([
        "train",
        "--data",
        path.join(work, "collect-llama-1"),
        "--out",
        router,
      ]);
      expect(trained.code, trained.stderr).toBe(0);
      for (const level of LEVELS) {
        const app = await buildApp(
          resolveServerConfig(
            {},
            {
              small: pair().small,
              large: pair().large,
              router,
              budget: 0.3,
              port: 0,
              threads: 1,
              "small-concurrency": level,
              "large-concurrency": level,
              "max-tokens": Number(MAX_TOKENS),
              "log-level": "silent",
            },
          ),
        );
        try {
          const origin = await app.listen({ port: 0, host: "127.0.0.1" });
          const answers = await runConcurrently(COUNT, 32, async (index) => {
            const answer = await postJson(`${origin}/v1/translate`, {
              text: sources[index],
              source_lang: "en",
              target_lang: "de",
            });
            expect(answer.status, JSON.stringify(answer.body)).toBe(200);
            return answer.body as { translation: string; model: ModelName; fallback: boolean };
          });
          const served = { small: 0, large: 0 };
          const mismatches = answers.flatMap((answer, index) => {
            served[answer.model] += 1;
            const expected = referenceOf(answer.model)[index];
            return answer.translation === expected
              ? []
              : [{ index, model: answer.model, expected, actual: answer.translation }];
          });
          expect(mismatches, `serve at concurrency ${level}`).toEqual([]);
          expect(answers.every((answer) => !answer.fallback)).toBe(true);
          // Both models served: the comparison covers both engines.
          expect(served.small, `small-served at concurrency ${level}`).toBeGreaterThan(0);
          expect(served.large, `large-served at concurrency ${level}`).toBeGreaterThan(0);
        } finally {
          await app.close();
        }
      }
    }, 600_000);
  },
);
