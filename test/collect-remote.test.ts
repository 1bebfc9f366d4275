/**
 * `routelmt collect` against remote (`openai:`) engines: `--concurrency N` keeps N requests in
 * flight per engine across chunk boundaries, and the dataset is the one concurrency 1 writes — on
 * fake engines, and on llama.cpp's real server with parallel slots and the tinymt pair.
 */
import { existsSync } from "node:fs";
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCliCaptured } from "./helpers/cli.js";
import { type FakeOpenAIServer, startFakeOpenAIServer } from "./helpers/fake-openai-server.js";
import {
  type LlamaServer,
  llamaServerBinary,
  llamaServerSkipReason,
  startLlamaServer,
} from "./helpers/llama-server.js";
import { hasShared, sharedPath, sharedSkipReason } from "./helpers/shared.js";

let work: string;

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), "routelmt-collect-remote-"));
});

/** Everything collect wrote that must not depend on concurrency. */
async function datasetContent(directory: string): Promise<{ records: string; features: Buffer }> {
  return {
    records: await readFile(path.join(directory, "records.jsonl"), "utf8"),
    features: await readFile(path.join(directory, "features.f32")),
  };
}

function collectArgs(small: string, large: string, input: string, out: string, extra: string[]): string[] {
  return [
    "collect",
    ...["--small", small, "--large", large, "--in", input, "--out", out],
    ...["--src-lang", "en", "--tgt-lang", "de", "--threads", "1", "--max-tokens", "64"],
    ...extra,
  ];
}

describe("collect on fake remote engines", () => {
  let small: FakeOpenAIServer;
  let large: FakeOpenAIServer;

  beforeAll(async () => {
    small = await startFakeOpenAIServer({
      label: "small",
      models: ["small"],
      embeddingDim: 8,
      behaviour: { kind: "succeed", delayMs: 40 },
    });
    large = await startFakeOpenAIServer({
      label: "large",
      models: ["large"],
      behaviour: { kind: "succeed", delayMs: 40 },
    });
  });

  afterAll(async () => {
    await small.close();
    await large.close();
  });

  it("keeps --concurrency requests in flight per engine across chunks, writing what concurrency 1 writes", async () => {
    const input = path.join(work, "fake.jsonl");
    const lines = Array.from({ length: 40 }, (_, index) =>
      JSON.stringify({
        id: `s${index}`,
        src: `Sentence number ${index} about ${index % 3} dogs.`,
        ref: `Satz ${index}.`,
      }),
    );
    await writeFile(input, `${lines.join("\n")}\n`);
    const run = async (concurrency: number) => {
      const out = path.join(work, `fake-${concurrency}`);
      small.setBehaviour({ kind: "succeed", delayMs: 40 });
      large.setBehaviour({ kind: "succeed", delayMs: 40 });
      const result = await runCliCaptured(
        collectArgs(`openai:${small.url}#small`, `openai:${large.url}#large`, input, out, [
          ...["--small-dim", "8", "--chunk-size", "4", "--concurrency", String(concurrency)],
        ]),
      );
      expect(result.code, result.stderr).toBe(0);
      return { out, largeInFlight: large.maxInFlight };
    };
    const one = await run(1);
    const eight = await run(8);
    // Chunks of 4, yet 8 requests at once: segments of the next chunks were already started.
    expect(eight.largeInFlight).toBe(8);
    expect(one.largeInFlight).toBe(1);
    expect(await datasetContent(eight.out)).toEqual(await datasetContent(one.out));
    // The large model's reported token counts are kept: eval can draw quality against them.
    const evaluation = await runCliCaptured(["eval", "--data", eight.out, "--budget-unit", "tokens"]);
    expect(evaluation.code, evaluation.stderr).toBe(0);
    expect(existsSync(path.join(eight.out, "eval", "pareto-cost.svg"))).toBe(true);
    const noPrices = await runCliCaptured(["eval", "--data", eight.out, "--budget-unit", "cost"]);
    expect(noPrices.code).toBe(2);
    expect(noPrices.stderr).toMatch(/--budget-unit cost needs --large-input-price and --large-output-price/);
    const free = await runCliCaptured([
      ...["eval", "--data", eight.out, "--budget-unit", "cost"],
      ...["--large-input-price", "0", "--large-output-price", "0"],
    ]);
    expect(free.code).toBe(2);
    expect(free.stderr).toMatch(/both 0: a budget in cost needs a price/);
  });
});

const sharedAvailable = hasShared(
  ["models", "tinymt-small.gguf"],
  ["models", "tinymt-large.gguf"],
  ["models", "tinymt.template"],
  ["data", "multi30k-en-de", "val.jsonl"],
);
const skipReason =
  llamaServerBinary() === null
    ? llamaServerSkipReason("collect on llama-server")
    : sharedAvailable
      ? ""
      : sharedSkipReason("collect on llama-server");

describe.skipIf(skipReason !== "")(`collect on llama.cpp's server ${skipReason}`, () => {
  const servers: LlamaServer[] = [];

  afterAll(async () => {
    await Promise.all(servers.map((server) => server.stop()));
  });

  it("writes the same dataset at concurrency 4 on 4 slots as at concurrency 1", async () => {
    const [small, large] = await Promise.all([
      startLlamaServer({
        model: sharedPath("models", "tinymt-small.gguf"),
        parallel: 4,
        embeddingsPooling: "last",
      }),
      startLlamaServer({ model: sharedPath("models", "tinymt-large.gguf"), parallel: 4 }),
    ]);
    servers.push(small, large);
    const input = path.join(work, "val.jsonl");
    const lines = (await readFile(sharedPath("data", "multi30k-en-de", "val.jsonl"), "utf8"))
      .split("\n")
      .slice(0, 48);
    await writeFile(input, `${lines.join("\n")}\n`);
    const outputs: { records: string; features: Buffer }[] = [];
    for (const concurrency of [1, 4]) {
      const out = path.join(work, `llama-server-${concurrency}`);
      const result = await runCliCaptured(
        collectArgs(
          `openai:${small.url}#tinymt-small`,
          `openai+completions:${large.url}#tinymt-large`,
          input,
          out,
          [
            ...["--template", sharedPath("models", "tinymt.template"), "--small-dim", "128"],
            ...["--chunk-size", "8", "--concurrency", String(concurrency)],
          ],
        ),
      );
      expect(result.code, result.stderr).toBe(0);
      outputs.push(await datasetContent(out));
    }
    const [first, second] = outputs.map(({ records }) =>
      records
        .split("\n")
        .filter(Boolean)
        .map((line) => JSON.parse(line) as Record<string, unknown>),
    );
    expect(first).toHaveLength(48);
    // The small model's confidence comes from the server's logits, with the rounding of the features
    // below; every other field is equal.
    const withoutConfidence = (records: Record<string, unknown>[]) =>
      records.map(({ small_mean_logprob: _, ...rest }) => rest);
    expect(withoutConfidence(second!)).toEqual(withoutConfidence(first!));
    first!.forEach((record, index) => {
      expect(record.small_mean_logprob, String(record.id)).toEqual(expect.any(Number));
      expect(second![index]!.small_mean_logprob as number).toBeCloseTo(
        record.small_mean_logprob as number,
        3,
      );
    });
    // The second run's embeddings come out within float rounding of the first's, not bit for bit:
    // the server's prompt cache then holds all but each prompt's last token, which it evaluates on
    // its own, and parallel slots share ubatches — and llama.cpp's CPU backend multiplies a one-row
    // batch with another kernel (another summation order) than a multi-row one. Components here
    // reach ~6, so 1e-3 is still rounding (seen: 7e-5), while another request's row differs by far
    // more in its largest components.
    const [alone, batched] = outputs.map(
      ({ features }) => new Float32Array(features.buffer, features.byteOffset, features.byteLength / 4),
    );
    let largest = 0;
    for (let index = 0; index < alone!.length; index++) {
      largest = Math.max(largest, Math.abs(alone![index]! - batched![index]!));
    }
    expect(largest).toBeLessThan(1e-3);
  });
});
