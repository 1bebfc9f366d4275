import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { copyFile, mkdir, mkdtemp, readdir, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { collectDataset, readCollectInput } from "../src/collect/index.js";
import { loadDataset } from "../src/dataset/index.js";
import { sentenceChrf } from "../src/metrics/chrf.js";
import { createMetric } from "../src/metrics/index.js";
import { LlamaTranslator } from "../src/translators/llama-translator.js";
import { openProbedTranslator, openTranslator } from "../src/translators/open.js";
import { loadPromptTemplate } from "../src/translators/prompt-template.js";
import { collectText, runCliCaptured, spawnCli } from "./helpers/cli.js";
import { startFakeOpenAIServer } from "./helpers/fake-openai-server.js";
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

/** Starts collect in a child process and SIGKILLs it once at least two chunks are durable, before it finishes. */
async function killOnceTwoChunksAreDurable(args: string[], out: string): Promise<void> {
  const child = spawnCli(args);
  const stderr = collectText(child.stderr);
  const checkpoint = path.join(out, "checkpoint.json");
  await new Promise<number>((resolve, reject) => {
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
      reject(new Error(`collect exited (${code}) before it could be killed: ${stderr()}`));
    });
  });
  await new Promise((resolve) => child.once("exit", resolve));
  expect(existsSync(path.join(out, "meta.json"))).toBe(false);
}

/** The same records and byte-identical features: nothing lost, duplicated or misaligned. */
async function expectSameDataset(actualDirectory: string, expectedDirectory: string): Promise<void> {
  const [expected, actual] = await Promise.all([
    loadDataset(expectedDirectory),
    loadDataset(actualDirectory),
  ]);
  expect(actual.records).toEqual(expected.records);
  expect(
    Buffer.compare(
      await readFile(path.join(actualDirectory, "features.f32")),
      await readFile(path.join(expectedDirectory, "features.f32")),
    ),
  ).toBe(0);
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
      dim: 202,
      label_metric: "chrf",
      template: "{src}: {text}\n{tgt}:",
    });
    // The default views (`auto`) of a 2-layer model, spelled out, as the dataset's named blocks.
    expect(dataset.meta.small.layer).toBe("last:final,mean:0,mean:1,norms:0");
    expect(dataset.meta.feature_blocks).toEqual([
      { name: "last:final", pooling: "last", layer: "final", dim: 64, offset: 0 },
      { name: "mean:0", pooling: "mean", layer: 0, dim: 64, offset: 64 },
      { name: "mean:1", pooling: "mean", layer: 1, dim: 64, offset: 128 },
      { name: "norms:0", pooling: "norms", layer: 0, dim: 10, offset: 192 },
    ]);
    expect(dataset.features?.length).toBe(SEGMENTS * 202);
    expect(dataset.records.map((r) => r.id)).toEqual(Array.from({ length: SEGMENTS }, (_, i) => `s${i}`));
    for (const record of dataset.records) {
      expect(record.q_small).toBeCloseTo(sentenceChrf(record.small ?? "", [record.ref ?? ""]).score, 10);
      expect(record.q_large).toBeCloseTo(sentenceChrf(record.large ?? "", [record.ref ?? ""]).score, 10);
      expect(record.gain).toBeCloseTo((record.q_large as number) - (record.q_small as number), 10);
      expect(record.prompt_tokens).toBeGreaterThan(3);
      expect(record.entropy).toBeGreaterThan(0);
    }
    // The large model's likelihood of each small translation: what the large engine itself gives it.
    const large = await LlamaTranslator.create({
      modelPath: pair.large,
      threads: 1,
      template: await loadPromptTemplate(pair.template),
      maxTokens: 6,
      readsFeatures: false,
    });
    try {
      for (const record of dataset.records.slice(0, 12)) {
        const request = { id: record.id, text: record.src, srcLang: "en", tgtLang: "de" };
        expect(record.large_logprob_of_small, record.id).toBe(
          await large.scoreTranslation(request, record.small ?? ""),
        );
      }
    } finally {
      await large.dispose();
    }
    // Every one a log-probability, an empty small translation's that of ending at once.
    expect(dataset.records.some((record) => record.small === "")).toBe(true);
    for (const record of dataset.records) expect(record.large_logprob_of_small, record.id).toBeLessThan(0);
  });

  it("with --no-large-likelihood records no large-model likelihood, and the same everything else", async () => {
    const out = path.join(work, "no-likelihood");
    const run = await runCliCaptured(collectArgs(out, ["--limit", "8", "--no-large-likelihood"]));
    expect(run.code).toBe(0);
    const [plain, full] = await Promise.all([loadDataset(out), loadDataset(reference)]);
    expect(plain.records).toEqual(
      full.records.slice(0, 8).map(({ large_logprob_of_small: _, ...rest }) => rest),
    );
  });

  it("resumes after SIGKILL without losing, duplicating or misaligning segments", async () => {
    const out = path.join(work, "killed");
    await killOnceTwoChunksAreDurable(collectArgs(out), out);

    const resumed = await runCliCaptured(collectArgs(out));
    expect(resumed.code).toBe(0);
    expect(resumed.stderr).toMatch(
      new RegExp(`resuming: \\d+ of ${SEGMENTS} segments were already collected`),
    );
    await expectSameDataset(out, reference);

    const again = await runCliCaptured(collectArgs(out));
    expect(again.code).toBe(0);
    expect(again.stderr).toMatch(/already holds this collection/);
  }, 120_000);

  describe("segments whose prompt does not fit the context", () => {
    /** The input of the first test with over-long lines inserted: line number → id. */
    const longLines = new Map([
      [3, "long-a"],
      [50, "long-b"],
      [121, "long-c"],
    ]);
    let withLongLines: string;
    const longText = Array.from({ length: 150 }, () => "hello world").join(" ");

    beforeAll(async () => {
      const lines = Array.from({ length: SEGMENTS }, (_, i) =>
        JSON.stringify({ id: `s${i}`, src: sentence(i), ref: sentence(i + 1) }),
      );
      for (const [line, id] of [...longLines].sort(([a], [b]) => a - b))
        lines.splice(line - 1, 0, JSON.stringify({ id, src: `${longText} ${id}`, ref: "x" }));
      withLongLines = path.join(work, "with-long-lines.jsonl");
      await writeFile(withLongLines, `${lines.join("\n")}\n`);
    });

    function argsWithLongLines(out: string, extra: string[] = []): string[] {
      const args = collectArgs(out, extra);
      args[args.indexOf("--in") + 1] = withLongLines;
      return args;
    }

    /** Lines that list a segment: file:line, id, and for both models the prompt's tokens and the limit. */
    function listed(stderr: string): { line: number; id: string }[] {
      const pattern =
        /with-long-lines\.jsonl:(\d+): id "([^"]+)": (\d+) prompt tokens on small, at most (\d+) fit \(context 256\); (\d+) prompt tokens on large, at most (\d+) fit \(context 256\)/g;
      return [...stderr.matchAll(pattern)].map(
        ([, line, id, smallTokens, smallMost, largeTokens, largeMost]) => {
          // --max-tokens 6 of the 256-token context is reserved for the translation, and on the large
          // model one more cell for scoring the small translation's end.
          expect([Number(smallMost), Number(largeMost)]).toEqual([250, 249]);
          expect(Number(smallTokens)).toBeGreaterThan(250);
          expect(Number(largeTokens)).toBeGreaterThan(250);
          return { line: Number(line), id: id as string };
        },
      );
    }

    const expectedListing = () => [...longLines].map(([line, id]) => ({ line, id }));

    it("refuses the run before anything is decoded, listing every one", async () => {
      const out = path.join(work, "refused");
      const run = await runCliCaptured(argsWithLongLines(out));
      expect(run.code).toBe(2);
      expect(run.stderr).toMatch(
        new RegExp(`^routelmt: 3 of ${SEGMENTS + 3} segments do not fit the model context`),
      );
      expect(listed(run.stderr)).toEqual(expectedListing());
      expect(await readdir(out)).toEqual([]);
    });

    it("with --skip-too-long finishes, resumes after SIGKILL skipping the same lines, and records them", async () => {
      const out = path.join(work, "skipping");
      const args = argsWithLongLines(out, ["--skip-too-long"]);
      await killOnceTwoChunksAreDurable(args, out);
      const checkpoint = JSON.parse(await readFile(path.join(out, "checkpoint.json"), "utf8")) as {
        identity: { skipped_too_long: unknown };
      };
      expect(checkpoint.identity.skipped_too_long).toEqual(expectedListing());

      // Resuming without the flag would shift every later segment: refused, listing the lines.
      const withoutFlag = await runCliCaptured(argsWithLongLines(out));
      expect(withoutFlag.code).toBe(2);
      expect(listed(withoutFlag.stderr)).toEqual(expectedListing());

      const resumed = await runCliCaptured(args);
      expect(resumed.code).toBe(0);
      // Progress counts the segments to collect, not the input lines.
      expect(resumed.stderr).toMatch(
        new RegExp(`resuming: \\d+ of ${SEGMENTS} segments were already collected`),
      );
      expect(resumed.stderr).toMatch(new RegExp(`collect ${SEGMENTS}/${SEGMENTS} done`));
      expect(resumed.stderr).toMatch(
        new RegExp(`collect: skipped 3 of ${SEGMENTS + 3} segments too long for the context`),
      );
      expect(listed(resumed.stderr)).toEqual(expectedListing());
      // Leaving the long lines out gives exactly the dataset of the input without them.
      await expectSameDataset(out, reference);
      const meta = (await loadDataset(out)).meta;
      expect(meta.n).toBe(SEGMENTS);
      expect(meta.source.kind === "collect" && meta.source.skipped_too_long).toEqual(
        expectedListing().map(({ line, id }) => ({
          id,
          line,
          too_long_for: [
            { model: "small", max_prompt_tokens: 250 },
            { model: "large", max_prompt_tokens: 249 },
          ].map(({ model, max_prompt_tokens }) => ({
            model,
            prompt_tokens: expect.any(Number),
            max_prompt_tokens,
            context_size: 256,
          })),
        })),
      );
    }, 120_000);
  });

  it("names the line a remote large model refuses, and keeps the chunks before it", async () => {
    const server = await startFakeOpenAIServer();
    try {
      const refusedText = "mat mat mat mat";
      server.setBehaviour((request) =>
        JSON.stringify(request.body).includes(refusedText)
          ? { kind: "fail", status: 400, body: '{"error":{"message":"prompt exceeds the context"}}' }
          : { kind: "succeed" },
      );
      const few = path.join(work, "few.jsonl");
      const lines = Array.from({ length: 6 }, (_, i) =>
        JSON.stringify({ id: `f${i}`, src: i === 5 ? refusedText : sentence(i), ref: "x" }),
      );
      await writeFile(few, `${lines.join("\n")}\n`);
      const out = path.join(work, "remote-large");
      const args = collectArgs(out, ["--skip-too-long"]);
      args[args.indexOf("--in") + 1] = few;
      args[args.indexOf("--large") + 1] = `openai:${server.url}#big`;
      const run = await runCliCaptured(args);
      expect(run.code).toBe(2);
      expect(run.stderr).toMatch(/note: large counts tokens on its server/);
      expect(run.stderr).toMatch(
        /routelmt: [^\n]*few\.jsonl:6: id "f5": openai:[^\n]*HTTP 400[^\n]*prompt exceeds the context/,
      );
      const checkpoint = JSON.parse(await readFile(path.join(out, "checkpoint.json"), "utf8")) as {
        done: number;
      };
      expect(checkpoint.done).toBe(4);
    } finally {
      await server.close();
    }
  });

  it("says so when both models score alike on every segment", async () => {
    const out = path.join(work, "same-model");
    const run = await runCliCaptured(
      collectArguments({ ...pair, large: pair.small, input, out }, ["--max-tokens", "6", "--limit", "8"]),
    );
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/g=0 100\.0%/);
    expect(run.stderr).toMatch(/note: both models score alike on every segment \(g = 0 throughout\)/);
    expect((await runCliCaptured(collectArgs(reference))).stderr).not.toMatch(/score alike/);
  });

  it("records the hash of the input it parsed, though the file changes while the models load", async () => {
    const file = path.join(work, "changing.jsonl");
    const original = Array.from(
      { length: 4 },
      (_, i) => `${JSON.stringify({ id: `c${i}`, src: sentence(i), ref: sentence(i + 1) })}\n`,
    ).join("");
    await writeFile(file, original);
    const input = await readCollectInput(file, { needsReference: true, srcLang: "en", tgtLang: "de" });
    await writeFile(file, original.replace('"c0"', '"c9"'));
    const out = path.join(work, "changed-input");
    const template = await loadPromptTemplate(pair.template);
    const common = { threads: 1, template, concurrency: 1, maxTokens: 6 };
    const small = await openProbedTranslator(pair.small, common);
    const large = await openTranslator(pair.large, common);
    try {
      await collectDataset({
        segments: input.segments,
        input: file,
        inputSha256: input.sha256,
        out,
        small,
        smallSpec: pair.small,
        large,
        largeSpec: pair.large,
        largeFingerprint: null,
        metric: createMetric("chrf"),
        maxTokens: 6,
      });
    } finally {
      await small.dispose();
      await large.dispose();
    }
    const checkpoint = JSON.parse(await readFile(path.join(out, "checkpoint.json"), "utf8")) as {
      identity: { input: { sha256: string } };
    };
    expect(checkpoint.identity.input.sha256).toBe(createHash("sha256").update(original).digest("hex"));
    expect((await loadDataset(out)).records[0]?.id).toBe("c0");
    // The dataset holds the old content, so a run over the file as it is now is another collection.
    const rerun = await runCliCaptured(
      collectArguments({ ...pair, input: file, out }, ["--max-tokens", "6"]),
    );
    expect(rerun.code).toBe(2);
    expect(rerun.stderr).toMatch(/holds a dataset made with different settings \(input\.sha256: /);
  });

  it("refuses a rerun with another metric, language pair or likelihood setting into the same directory", async () => {
    for (const [extra, what] of [
      [["--metric", "bleu"], "metric\\.name"],
      // The same input file: only the flags that give its lines their pair differ.
      [["--src-lang", "fr", "--tgt-lang", "en"], "languages\\.pairs"],
      [["--no-large-likelihood"], "large_likelihood"],
    ] as const) {
      const run = await runCliCaptured(collectArgs(reference, [...extra]));
      expect({ extra, code: run.code }).toEqual({ extra, code: 2 });
      expect(run.stderr).toMatch(new RegExp(`holds a dataset made with different settings \\(${what}: `));
    }
    // And the other way round: a run without the likelihood is not continued with it.
    const plain = await runCliCaptured(collectArgs(path.join(work, "no-likelihood"), ["--limit", "8"]));
    expect(plain.code).toBe(2);
    expect(plain.stderr).toMatch(/different settings \(large_likelihood: was false, now the default\)/);
  });

  it("resumes with the same model files named by relative paths, and names a moved one's field", async () => {
    const out = path.join(work, "spec-paths");
    const args = (small: string, large: string) =>
      collectArguments({ ...pair, small, large, input, out }, ["--max-tokens", "6", "--limit", "4"]);
    expect((await runCliCaptured(args(pair.small, pair.large))).code).toBe(0);
    const relative = (file: string) => path.relative(process.cwd(), file);
    const again = await runCliCaptured(args(relative(pair.small), relative(pair.large)));
    expect({ code: again.code, stderr: again.stderr }).toEqual({
      code: 0,
      stderr: expect.stringMatching(/already holds this collection/),
    });
    // Directories from before held the paths as typed: read against today's working directory.
    const checkpointFile = path.join(out, "checkpoint.json");
    const checkpoint = JSON.parse(await readFile(checkpointFile, "utf8")) as {
      identity: { small: { spec: string }; large: { spec: string } };
    };
    expect(checkpoint.identity.small.spec).toBe(pair.small);
    checkpoint.identity.small.spec = relative(pair.small);
    await writeFile(checkpointFile, JSON.stringify(checkpoint));
    expect((await runCliCaptured(args(pair.small, pair.large))).stderr).toMatch(
      /already holds this collection/,
    );
    // The same model at another place: the refusal names that field alone, not the whole model.
    const moved = path.join(work, "moved", "small.gguf");
    await mkdir(path.dirname(moved), { recursive: true });
    await copyFile(pair.small, moved);
    const refused = await runCliCaptured(args(moved, pair.large));
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain(
      `different settings (small.spec: was ${JSON.stringify(pair.small)}, now ${JSON.stringify(moved)}); use another`,
    );
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

  it("refuses two metrics of one name before loading any model", async () => {
    // Nothing listens there: the names are refused before any metric is asked for a score.
    const namedChrf = "http:http://127.0.0.1:9/score#chrf";
    for (const [metrics, message] of [
      [["--extra-metric", namedChrf], `--metric chrf and --extra-metric ${namedChrf} are both named "chrf"`],
      [
        ["--metric", "bleu", "--extra-metric", "chrf", "--extra-metric", "chrf"],
        '--extra-metric chrf and --extra-metric chrf are both named "chrf"',
      ],
    ] as const) {
      const out = path.join(work, "never-named");
      const args = collectArgs(out, [...metrics]);
      args[args.indexOf("--small") + 1] = path.join(work, "missing.gguf");
      const run = await runCliCaptured(args);
      expect(run.code).toBe(2);
      expect(run.stderr).toContain(message);
      expect(run.stderr).toMatch(/http:<URL>#<name>/);
      expect(run.stderr.split("\n").filter(Boolean)).toHaveLength(1);
      expect(existsSync(out)).toBe(false);
    }
  });
});
