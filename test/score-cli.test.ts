import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { corpusBleu, sentenceBleu } from "../src/metrics/bleu.js";
import { corpusChrf } from "../src/metrics/chrf.js";
import { collectText, runCliCaptured, spawnCli } from "./helpers/cli.js";

let work: string;
let hyp: string;
let ref: string;
let ref2: string;
const hypLines = ["The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."];
const refLines = ["The dog bit the man.", "It was not unexpected.", "The man bit him first."];
const ref2Lines = ["The dog had bit the man.", "No one was surprised.", "The man had bitten the dog."];

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), "routelmt-score-"));
  hyp = path.join(work, "hyp.txt");
  ref = path.join(work, "ref.txt");
  ref2 = path.join(work, "ref2.txt");
  await writeFile(hyp, `${hypLines.join("\n")}\n`);
  await writeFile(ref, `${refLines.join("\n")}\n`);
  await writeFile(ref2, `${ref2Lines.join("\n")}\n`);
});

describe("routelmt score", () => {
  it("prints the corpus score and signature on one line", async () => {
    const run = await runCliCaptured([
      "score",
      "--metric",
      "bleu",
      "--hyp",
      hyp,
      "--ref",
      ref,
      "--ref",
      ref2,
    ]);
    expect(run.code).toBe(0);
    // sacreBLEU's own test value for this corpus and these two references.
    expect(run.stdout).toMatch(
      /^BLEU = 48\.5308 {2}nrefs:2\|case:mixed\|eff:no\|tok:13a\|smooth:exp\|version:routelmt-\d+\.\d+\.\d+\n$/,
    );
  });

  it("--json gives metric, score and signature", async () => {
    const run = await runCliCaptured(["score", "--metric", "chrf++", "--hyp", hyp, "--ref", ref, "--json"]);
    expect(run.code).toBe(0);
    const result = JSON.parse(run.stdout) as { metric: string; score: number; signature: string };
    expect(Object.keys(result)).toEqual(["metric", "score", "signature"]);
    expect(result.metric).toBe("chrf++");
    expect(result.score).toBe(corpusChrf(hypLines, [refLines], { wordOrder: 2 }).score);
    expect(result.signature).toMatch(
      /^nrefs:1\|case:mixed\|eff:yes\|nc:6\|nw:2\|space:no\|version:routelmt-/,
    );
  });

  it("--sentence --json gives one {score} a line", async () => {
    const run = await runCliCaptured([
      "score",
      "--metric",
      "bleu",
      "--hyp",
      hyp,
      "--ref",
      ref,
      "--sentence",
      "--json",
      "--tokenize",
      "intl",
      "--lowercase",
    ]);
    expect(run.code).toBe(0);
    const lines = run.stdout
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as { score: number });
    expect(lines).toHaveLength(3);
    lines.forEach((line, index) => {
      expect(Object.keys(line)).toEqual(["score"]);
      expect(line.score).toBe(
        sentenceBleu(hypLines[index] as string, [refLines[index] as string], {
          tokenize: "intl",
          lowercase: true,
        }).score,
      );
    });
  });

  it("scores the corpus like the library", async () => {
    const run = await runCliCaptured([
      "score",
      "--metric",
      "bleu",
      "--hyp",
      hyp,
      "--ref",
      ref,
      "--json",
      "--tokenize",
      "char",
    ]);
    expect(JSON.parse(run.stdout).score).toBe(corpusBleu(hypLines, [refLines], { tokenize: "char" }).score);
  });

  const errorCases: [string, () => string[], RegExp][] = [
    [
      "line counts differ",
      () => ["--metric", "chrf", "--hyp", hyp, "--ref", path.join(work, "short.txt")],
      /short\.txt:3: has 2 lines but .*hyp\.txt has 3/,
    ],
    [
      "unreadable file",
      () => ["--metric", "chrf", "--hyp", path.join(work, "nope.txt"), "--ref", ref],
      /nope\.txt: cannot read file \(ENOENT\)/,
    ],
    [
      "empty hypothesis file",
      () => ["--metric", "chrf", "--hyp", path.join(work, "empty.txt"), "--ref", ref],
      /empty\.txt: empty file: no segment to score/,
    ],
    [
      "empty reference file",
      () => ["--metric", "bleu", "--hyp", hyp, "--ref", ref, "--ref", path.join(work, "empty.txt")],
      /empty\.txt: empty file: no segment to score/,
    ],
    [
      "invalid UTF-8",
      () => ["--metric", "bleu", "--hyp", path.join(work, "latin1.txt"), "--ref", ref],
      /latin1\.txt:2: invalid UTF-8/,
    ],
    [
      "unknown option",
      () => ["--metric", "bleu", "--hyp", hyp, "--ref", ref, "--smooth", "x"],
      /unknown option '--smooth'/,
    ],
    [
      "unknown metric",
      () => ["--metric", "ter", "--hyp", hyp, "--ref", ref],
      /--metric.*ter.*invalid|Allowed choices/i,
    ],
    ["missing --ref", () => ["--metric", "bleu", "--hyp", hyp], /--ref <file> is required/],
    [
      "tokenizer with chrF",
      () => ["--metric", "chrf", "--hyp", hyp, "--ref", ref, "--tokenize", "13a"],
      /--tokenize applies to bleu only/,
    ],
  ];
  it.each(errorCases)("%s: one line on stderr, exit 2, no stack trace", async (_, argv, message) => {
    await writeFile(path.join(work, "short.txt"), "a\nb\n");
    await writeFile(path.join(work, "empty.txt"), "");
    await writeFile(path.join(work, "latin1.txt"), Buffer.from([0x61, 0x0a, 0x62, 0xe4, 0x0a, 0x63, 0x0a]));
    const run = await runCliCaptured(["score", ...argv()]);
    expect(run.code).toBe(2);
    expect(run.stdout).toBe("");
    expect(run.stderr).toMatch(message);
    expect(run.stderr.trimEnd().split("\n")).toHaveLength(1);
    expect(run.stderr).not.toMatch(/\n\s+at /);
  });

  it("stops writing quietly when its reader goes away (score … | head -1)", async () => {
    // Far more than a pipe buffer of per-sentence scores, so writes are still pending when it closes.
    const many = path.join(work, "many.txt");
    await writeFile(
      many,
      `${Array.from({ length: 20_000 }, (_, i) => `line number ${i} of many`).join("\n")}\n`,
    );
    const child = spawnCli([
      "score",
      "--metric",
      "chrf",
      "--sentence",
      "--json",
      "--hyp",
      many,
      "--ref",
      many,
    ]);
    const stderr = collectText(child.stderr);
    child.stdout.once("data", () => child.stdout.destroy());
    const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
    expect({ code, stderr: stderr() }).toEqual({ code: 0, stderr: "" });
  });
});
