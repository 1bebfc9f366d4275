import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCliCaptured } from "./helpers/cli.js";
import { fixtureSentence, writeFixturePair } from "./helpers/fixture-pair.js";

let work: string;
let small: string;
let large: string;
let template: string;
let server: Server;
let floresUrl: string;

function sentence(index: number, shift = 0): string {
  return fixtureSentence(index, { lengthCycle: 4, stride: 5, shift });
}

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), "routelmt-demo-"));
  ({ small, large, template } = await writeFixturePair(work, { small: 31, large: 32 }));
  // A miniature FLORES-200 archive with the real layout, served over loopback HTTP.
  const root = path.join(work, "flores", "flores200_dataset");
  for (const split of ["dev", "devtest"]) {
    await mkdir(path.join(root, split), { recursive: true });
    const count = split === "dev" ? 30 : 20;
    await writeFile(
      path.join(root, split, `eng_Latn.${split}`),
      `${Array.from({ length: count }, (_, i) => sentence(i)).join("\n")}\n`,
    );
    await writeFile(
      path.join(root, split, `deu_Latn.${split}`),
      `${Array.from({ length: count }, (_, i) => sentence(i, 1)).join("\n")}\n`,
    );
  }
  execFileSync("tar", [
    "-czf",
    path.join(work, "flores.tar.gz"),
    "-C",
    path.join(work, "flores"),
    "flores200_dataset",
  ]);
  const archive = await readFile(path.join(work, "flores.tar.gz"));
  server = createServer((_request, response) => {
    response.writeHead(200, { "content-length": archive.length, "content-type": "application/gzip" });
    response.end(archive);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  floresUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/flores200_dataset.tar.gz`;
});

afterAll(async () => {
  await new Promise((resolve) => server?.close(resolve));
});

function demoArgs(out: string, extra: string[] = []): string[] {
  return [
    "demo",
    "--small",
    small,
    "--large",
    large,
    "--template",
    template,
    "--out",
    out,
    "--threads",
    "1",
    "--max-tokens",
    "6",
    ...extra,
  ];
}

describe("routelmt demo", () => {
  it("runs collect, train, collect and eval on the given data and prints the table at p = 0.3", async () => {
    const data = path.join(work, "pairs.jsonl");
    await writeFile(
      data,
      Array.from({ length: 50 }, (_, i) =>
        JSON.stringify({ id: `p${i}`, src: sentence(i), ref: sentence(i, 2) }),
      ).join("\n"),
    );
    const out = path.join(work, "run");
    const run = await runCliCaptured(demoArgs(out, ["--data", data, "--train", "40", "--test", "30"]));
    expect(run.stderr).not.toMatch(/error/i);
    expect(run.code).toBe(0);
    // 40 + 30 > 50: the split keeps the proportions on the smaller file.
    expect(run.stderr).toMatch(/has 50 segments; using 28 to train and 22 to test/);
    expect(run.stderr).toMatch(/\[4\/4\] evaluating/);
    expect(run.stdout).toMatch(/At p = 30 %:\nPolicy/);
    expect(run.stdout).toMatch(/report: .*report\.html/);
    for (const file of [
      "router.json",
      "train/meta.json",
      "test/meta.json",
      "report/summary.json",
      "report/pareto.png",
      "report/report.html",
    ]) {
      expect(existsSync(path.join(out, file)), file).toBe(true);
    }
    const trainIds = (await readFile(path.join(out, "train.jsonl"), "utf8"))
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l).id);
    const testIds = (await readFile(path.join(out, "test.jsonl"), "utf8"))
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l).id);
    expect(trainIds.filter((id) => testIds.includes(id))).toEqual([]);

    // Rerun: both collections are already done and resume as such (the test split's run identity
    // must not depend on what the training split's scoring did first).
    const again = await runCliCaptured(demoArgs(out, ["--data", data, "--train", "40", "--test", "30"]));
    expect(again.stderr).not.toMatch(/different settings/);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/At p = 30 %:\nPolicy/);
  }, 180_000);

  it("refuses segments too long for the context, or skips them in both splits with --skip-too-long", async () => {
    const longText = Array.from({ length: 150 }, () => "hello world").join(" ");
    const data = path.join(work, "with-long.jsonl");
    // Line 3 falls in the training split (its line 3), line 25 in the test split (its line 5).
    const lines = Array.from({ length: 32 }, (_, i) =>
      JSON.stringify({ id: `w${i}`, src: i === 2 || i === 24 ? longText : sentence(i), ref: sentence(i, 2) }),
    );
    await writeFile(data, `${lines.join("\n")}\n`);
    const splitFlags = ["--data", data, "--train", "20", "--test", "12"];
    const refused = await runCliCaptured(demoArgs(path.join(work, "long-refused"), splitFlags));
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/train\.jsonl:3: id "w2": \d+ prompt tokens on small/);
    expect(refused.stderr).toMatch(/or pass --skip-too-long to leave them out/);

    const skipping = await runCliCaptured(
      demoArgs(path.join(work, "long-skipped"), [...splitFlags, "--skip-too-long"]),
    );
    expect(skipping.code).toBe(0);
    expect(skipping.stderr).toMatch(
      /collect train: skipped 1 of 20 segments too long[^\n]*\n {2}[^\n]*train\.jsonl:3: id "w2"/,
    );
    expect(skipping.stderr).toMatch(
      /collect test: skipped 1 of 12 segments too long[^\n]*\n {2}[^\n]*test\.jsonl:5: id "w24"/,
    );
  }, 120_000);

  it("downloads FLORES-200 once into the cache when no data is given", async () => {
    const cache = path.join(work, "cache");
    const environment = { ROUTELMT_FLORES_URL: floresUrl, ROUTELMT_CACHE: cache };
    Object.assign(process.env, environment);
    try {
      const run = await runCliCaptured(
        demoArgs(path.join(work, "flores-run"), ["--train", "12", "--test", "8"]),
      );
      expect(run.stderr).not.toMatch(/error/i);
      expect(run.code).toBe(0);
      expect(run.stderr).toMatch(/FLORES-200 dev\/devtest, CC BY-SA 4\.0.*: 12 training and 8 test segments/);
      expect(existsSync(path.join(cache, "data", "flores200_dataset.tar.gz"))).toBe(true);
      const firstTest = JSON.parse(
        (await readFile(path.join(work, "flores-run", "test.jsonl"), "utf8")).split("\n")[0] as string,
      );
      expect(firstTest).toMatchObject({ id: "devtest-0001", src: sentence(0), ref: sentence(0, 1) });
    } finally {
      delete process.env.ROUTELMT_FLORES_URL;
      delete process.env.ROUTELMT_CACHE;
    }
  }, 120_000);

  it("explains how to run offline when the data cannot be downloaded", async () => {
    process.env.ROUTELMT_FLORES_URL = "http://127.0.0.1:9/unreachable.tar.gz";
    process.env.ROUTELMT_CACHE = path.join(work, "empty-cache");
    try {
      const run = await runCliCaptured(demoArgs(path.join(work, "offline")));
      expect(run.code).toBe(2);
      expect(run.stderr).toMatch(
        /cannot download the demo data .*pass your own parallel data as --data FILE\.jsonl/,
      );
    } finally {
      delete process.env.ROUTELMT_FLORES_URL;
      delete process.env.ROUTELMT_CACHE;
    }
  });

  it("explains how to pass local models when a hub model cannot be fetched", async () => {
    const data = path.join(work, "pairs-small.jsonl");
    await writeFile(
      data,
      Array.from({ length: 10 }, (_, i) =>
        JSON.stringify({ id: `q${i}`, src: sentence(i), ref: sentence(i, 2) }),
      ).join("\n"),
    );
    process.env.ROUTELMT_CACHE = path.join(work, "model-cache");
    try {
      const run = await runCliCaptured([
        "demo",
        "--small",
        "hf:routelmt-test/missing/missing.gguf",
        "--large",
        large,
        "--data",
        data,
        "--out",
        path.join(work, "nomodel"),
      ]);
      expect(run.code).toBe(2);
      expect(run.stderr).toMatch(/Offline, pass local GGUF files and data/);
    } finally {
      delete process.env.ROUTELMT_CACHE;
    }
  }, 60_000);
});
