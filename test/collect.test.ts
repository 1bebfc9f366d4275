import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { loadDataset } from "../src/dataset/index.js";
import { sentenceChrf } from "../src/metrics/chrf.js";
import { runCliCaptured, spawnCli } from "./helpers/cli.js";
import {
  collectArguments,
  type FixturePair,
  fixtureSentence,
  writeFixturePair,
} from "./helpers/fixture-pair.js";

/** Enough chunks (of 4) that a loaded machine cannot finish them all before the test kills the run. */
const SEGMENTS = 160;

let work: string;
let pair: FixturePair;
let input: string;

function sentence(index: number): string {
  return fixtureSentence(index, { lengthCycle: 5, stride: 7 });
}

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), "routelmt-collect-"));
  pair = await writeFixturePair(work);
  input = path.join(work, "in.jsonl");
  const lines = Array.from({ length: SEGMENTS }, (_, i) =>
    JSON.stringify({ id: `s${i}`, src: sentence(i), ref: sentence(i + 1) }),
  );
  await writeFile(input, `${lines.join("\n")}\n`);
});

function collectArgs(out: string, extra: string[] = []): string[] {
  return collectArguments({ ...pair, input, out }, [
    "--concurrency",
    "1",
    "--max-tokens",
    "6",
    "--chunk-size",
    "4",
    ...extra,
  ]);
}

describe("routelmt collect", () => {
  let reference: string;

  it("writes aligned records, features and meta whose labels equal the metric on the stored outputs", async () => {
    reference = path.join(work, "reference");
    const run = await runCliCaptured(collectArgs(reference));
    expect(run.stderr).not.toMatch(/error/);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(new RegExp(`collected ${SEGMENTS} segments`));
    const dataset = await loadDataset(reference);
    expect(dataset.meta).toMatchObject({
      n: SEGMENTS,
      dim: 64,
      label_metric: "chrf",
      template: "{src}: {text}\n{tgt}:",
    });
    expect(dataset.meta.small.layer).toBe("last:final");
    expect(dataset.features?.length).toBe(SEGMENTS * 64);
    expect(dataset.records.map((r) => r.id)).toEqual(Array.from({ length: SEGMENTS }, (_, i) => `s${i}`));
    for (const record of dataset.records) {
      expect(record.q_small).toBeCloseTo(sentenceChrf(record.small ?? "", [record.ref ?? ""]).score, 10);
      expect(record.q_large).toBeCloseTo(sentenceChrf(record.large ?? "", [record.ref ?? ""]).score, 10);
      expect(record.gain).toBeCloseTo((record.q_large as number) - (record.q_small as number), 10);
      expect(record.prompt_tokens).toBeGreaterThan(3);
      expect(record.entropy).toBeGreaterThan(0);
    }
  });

  it("resumes after SIGKILL without losing, duplicating or misaligning segments", async () => {
    const out = path.join(work, "killed");
    const child = spawnCli(collectArgs(out));
    let stderr = "";
    child.stderr.on("data", (data: Buffer) => {
      stderr += data.toString();
    });
    // Kill as soon as at least two chunks are durable and the run is not finished.
    const checkpoint = path.join(out, "checkpoint.json");
    const killedAt = await new Promise<number>((resolve, reject) => {
      const timer = setInterval(() => {
        if (!existsSync(checkpoint)) return;
        const done = (JSON.parse(readFileSync(checkpoint, "utf8")) as { done: number }).done;
        if (done >= 8) {
          clearInterval(timer);
          child.kill("SIGKILL");
          resolve(done);
        }
      }, 5);
      child.on("exit", (code) => {
        clearInterval(timer);
        reject(new Error(`collect exited (${code}) before it could be killed: ${stderr}`));
      });
    });
    await new Promise((resolve) => child.once("exit", resolve));
    expect(killedAt).toBeLessThan(SEGMENTS);
    expect(existsSync(path.join(out, "meta.json"))).toBe(false);

    const resumed = await runCliCaptured(collectArgs(out));
    expect(resumed.code).toBe(0);
    expect(resumed.stderr).toMatch(
      new RegExp(`resuming: \\d+ of ${SEGMENTS} segments were already collected`),
    );
    const [expected, actual] = await Promise.all([loadDataset(reference), loadDataset(out)]);
    expect(actual.records).toEqual(expected.records);
    expect(
      Buffer.compare(
        await readFile(path.join(out, "features.f32")),
        await readFile(path.join(reference, "features.f32")),
      ),
    ).toBe(0);

    const again = await runCliCaptured(collectArgs(out));
    expect(again.code).toBe(0);
    expect(again.stderr).toMatch(/already holds this collection/);
  }, 120_000);

  it("refuses a rerun with another metric into the same directory", async () => {
    const run = await runCliCaptured(collectArgs(reference, ["--metric", "bleu"]));
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/holds a dataset made with different settings \(metric: /);
  });

  it("rejects bad input before loading any model, naming file and line", async () => {
    const cases: [string, RegExp][] = [
      ['{"id":"a","src":"the cat","ref":"x"}\n{"id":"b","src":', /bad\.jsonl:2: malformed JSON/],
      [
        '{"id":"a","src":"the cat","ref":"x"}\n{"id":"a","src":"a dog","ref":"y"}',
        /bad\.jsonl:2: duplicate id "a" \(first on line 1\)/,
      ],
      ['{"id":"a","src":"  ","ref":"x"}', /bad\.jsonl:1: empty or missing "src"/],
      ['{"id":"a","src":"the cat"}', /bad\.jsonl:1: missing "ref"/],
      [
        '{"id":"a","src":"the cat","ref":"x","tgt_lang":"xx-nope"}',
        /bad\.jsonl:1: unknown language code "xx-nope"/,
      ],
    ];
    for (const [content, message] of cases) {
      const file = path.join(work, "bad.jsonl");
      await writeFile(file, content);
      const args = collectArgs(path.join(work, "never"));
      args[args.indexOf("--in") + 1] = file;
      // A model path that does not exist proves validation ran first.
      args[args.indexOf("--small") + 1] = path.join(work, "missing.gguf");
      const run = await runCliCaptured(args);
      expect(run.code).toBe(2);
      expect(run.stderr).toMatch(message);
      expect(run.stderr.split("\n").filter(Boolean)).toHaveLength(1);
    }
  });
});
