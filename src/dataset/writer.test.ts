import { spawn } from "node:child_process";
import { appendFile, mkdtemp, readdir, readFile, rm, stat, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { UsageError } from "../errors/index.js";
import { CHECKPOINT_FILE, FEATURES_FILE, META_FILE, RECORDS_FILE } from "./files.js";
import { datasetFeatures, littleEndianBytesToFloat32, loadDataset } from "./reader.js";
import type { DatasetMeta, DatasetRecord } from "./types.js";
import { DatasetWriter } from "./writer.js";

function record(id: string, gain: number): DatasetRecord {
  return {
    id,
    src: `source ${id}`,
    ref: `reference ${id}`,
    src_lang: "en",
    tgt_lang: "de",
    small: "s",
    large: "l",
    scores: { chrf: { small: 10, large: 10 + gain } },
    q_small: 10,
    q_large: 10 + gain,
    gain,
    src_chars: 8,
    prompt_tokens: 5,
    entropy: 1.5,
  };
}

function meta(n: number, dim: number | null): DatasetMeta {
  return {
    n,
    dim,
    label_metric: "chrf",
    label_higher_is_better: true,
    metric_signatures: { chrf: "nrefs:1" },
    small: { spec: "a.gguf", fingerprint: "sha256:x", arch: "llama", layer: "final" },
    large: { spec: "b.gguf" },
    template: "{text}",
    src_lang: "en",
    tgt_lang: "de",
    created: "2026-01-01T00:00:00.000Z",
    routelmt_version: "0.0.0",
    source: { kind: "collect", input: "in.jsonl", decoding: {} },
  };
}

const identity = { small: "a.gguf", large: "b.gguf", metric: "chrf" };

async function freshDir(): Promise<string> {
  return mkdtemp(path.join(tmpdir(), "routelmt-dataset-"));
}

/** The id of a process that ran and ended: the lock or temporary file it names is a killed run's. */
async function endedPid(): Promise<number> {
  const ended = spawn(process.execPath, ["-e", ""]);
  await new Promise((resolve) => ended.once("exit", resolve));
  return ended.pid as number;
}

/** Every file of a directory with its content, to show that a refusal left it as it was. */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const files: Record<string, string> = {};
  for (const name of (await readdir(dir)).sort()) {
    files[name] = (await readFile(path.join(dir, name))).toString("base64");
  }
  return files;
}

/** Opens, writes two records and finishes: the directory a resumed run must end up with. */
async function writeTwo(dir: string): Promise<void> {
  const { writer, done } = await DatasetWriter.open(dir, identity, 2);
  expect(done).toBe(0);
  await writer.append([record("a", 1), record("b", 2)], new Float32Array([1, 2, 3, 4]));
  await writer.finish(meta(2, 2));
  expect((await loadDataset(dir)).records.map((r) => r.id)).toEqual(["a", "b"]);
  expect((await readdir(dir)).sort()).toEqual([CHECKPOINT_FILE, FEATURES_FILE, META_FILE, RECORDS_FILE]);
}

describe("DatasetWriter", () => {
  it("writes records and aligned little-endian features that load back", async () => {
    const dir = await freshDir();
    const { writer, done } = await DatasetWriter.open(dir, identity, 2);
    expect(done).toBe(0);
    await writer.append([record("a", 1), record("b", -2)], new Float32Array([1, 2, 3, 4]));
    await writer.append([record("c", 0)], new Float32Array([5.5, -6]));
    await writer.finish(meta(3, 2));
    const dataset = await loadDataset(dir);
    expect(dataset.records.map((r) => r.id)).toEqual(["a", "b", "c"]);
    expect(Array.from(dataset.features ?? [])).toEqual([1, 2, 3, 4, 5.5, -6]);
    const raw = await readFile(path.join(dir, FEATURES_FILE));
    expect(raw.readFloatLE(16)).toBe(5.5);
  });

  it("resumes after a crash by cutting off what was appended after the last checkpoint", async () => {
    const dir = await freshDir();
    const first = await DatasetWriter.open(dir, identity, 2);
    await first.writer.append([record("a", 1)], new Float32Array([1, 2]));
    // A killed run may leave a half-written chunk behind its checkpoint (and its lock: see below).
    await first.writer.close();
    await appendFile(path.join(dir, RECORDS_FILE), '{"id":"b","src":"tor');
    await appendFile(path.join(dir, FEATURES_FILE), Buffer.alloc(6));
    const second = await DatasetWriter.open(dir, identity, 2);
    expect(second.done).toBe(1);
    expect(second.complete).toBe(false);
    expect((await stat(path.join(dir, FEATURES_FILE))).size).toBe(8);
    await second.writer.append([record("b", 2)], new Float32Array([3, 4]));
    await second.writer.finish(meta(2, 2));
    const dataset = await loadDataset(dir);
    expect(dataset.records.map((r) => r.id)).toEqual(["a", "b"]);
    expect(Array.from(dataset.features ?? [])).toEqual([1, 2, 3, 4]);
    expect((await DatasetWriter.open(dir, identity, 2)).complete).toBe(true);
  });

  it("starts afresh over whatever a run killed before its first checkpoint left", async () => {
    const pid = await endedPid();
    // Each the state of one kill point while a directory is being created, the killed run's lock
    // included; the data files without a checkpoint are what versions that created them first left.
    const killPoints: Record<string, string>[] = [
      {},
      { [`${CHECKPOINT_FILE}.tmp-${pid}-0123abcd`]: '{"identity":' },
      { [RECORDS_FILE]: "" },
      { [RECORDS_FILE]: "", [`${FEATURES_FILE}.tmp-${pid}-0123abcd`]: "" },
      { [RECORDS_FILE]: "", [FEATURES_FILE]: "" },
      { [`${RECORDS_FILE}.tmp-${pid}-0123abcd`]: "" },
    ];
    for (const files of killPoints) {
      const dir = await freshDir();
      await writeFile(path.join(dir, ".routelmt.lock"), `${pid}\n`);
      for (const [name, content] of Object.entries(files)) await writeFile(path.join(dir, name), content);
      await writeTwo(dir);
    }
  });

  it("resumes a run killed after its first checkpoint and before its data files were all made", async () => {
    const pid = await endedPid();
    const killPoints: Record<string, string>[] = [
      {},
      { [`${RECORDS_FILE}.tmp-${pid}-0123abcd`]: "" },
      { [RECORDS_FILE]: "" },
      { [RECORDS_FILE]: "", [`${FEATURES_FILE}.tmp-${pid}-0123abcd`]: "" },
    ];
    for (const files of killPoints) {
      const dir = await freshDir();
      await (await DatasetWriter.open(dir, identity, 2)).writer.close();
      await rm(path.join(dir, RECORDS_FILE));
      await rm(path.join(dir, FEATURES_FILE));
      await writeFile(path.join(dir, ".routelmt.lock"), `${pid}\n`);
      for (const [name, content] of Object.entries(files)) await writeFile(path.join(dir, name), content);
      await writeTwo(dir);
    }
  });

  it("refuses data files without a checkpoint that hold anything, and leaves them", async () => {
    const dir = await freshDir();
    await writeFile(path.join(dir, RECORDS_FILE), '{"id":"mine"}\n');
    await writeFile(path.join(dir, FEATURES_FILE), "");
    const before = await snapshot(dir);
    await expect(DatasetWriter.open(dir, identity, 2)).rejects.toThrow(/not empty/);
    expect(await snapshot(dir)).toEqual(before);
  });

  it("refuses a dataset whose files are shorter than its checkpoint, changing nothing", async () => {
    for (const damaged of [RECORDS_FILE, FEATURES_FILE]) {
      for (const finished of [false, true]) {
        const dir = await freshDir();
        const { writer } = await DatasetWriter.open(dir, identity, 2);
        await writer.append([record("a", 1), record("b", 2)], new Float32Array([1, 2, 3, 4]));
        if (finished) await writer.finish(meta(2, 2));
        else await writer.close();
        // What a killed run appended after its checkpoint: were it cut first, the refusal would change it.
        await appendFile(path.join(dir, RECORDS_FILE), '{"id":"c","src":"tor');
        await appendFile(path.join(dir, FEATURES_FILE), Buffer.alloc(6));
        const kept = damaged === RECORDS_FILE ? 10 : 12;
        await truncate(path.join(dir, damaged), kept);
        const before = await snapshot(dir);
        const opened = DatasetWriter.open(dir, identity, 2);
        await expect(opened).rejects.toThrow(UsageError);
        await expect(opened).rejects.toThrow(
          new RegExp(
            `^\\S*${damaged.replace(".", "\\.")} is shorter than its checkpoint records \\(${kept} of \\d+ bytes\\); the dataset is damaged$`,
          ),
        );
        expect(await snapshot(dir)).toEqual(before);
      }
    }
  });

  it("refuses a rerun with different settings, naming what differs", async () => {
    const dir = await freshDir();
    await (await DatasetWriter.open(dir, identity, 2)).writer.close();
    await expect(DatasetWriter.open(dir, { ...identity, metric: "bleu" }, 2)).rejects.toThrow(
      /different settings \(metric: was "chrf", now "bleu"\)/,
    );
  });

  it("names the differing fields of nested settings, not the whole object", async () => {
    const dir = await freshDir();
    const model = { spec: "/m/a.gguf", fingerprint: "sha256:1", views: [{ name: "last:final", dim: 2 }] };
    await (await DatasetWriter.open(dir, { model, metric: "chrf" }, 2)).writer.close();
    const moved = { ...model, spec: "/n/a.gguf" };
    await expect(DatasetWriter.open(dir, { model: moved, metric: "chrf" }, 2)).rejects.toThrow(
      /different settings \(model\.spec: was "\/m\/a\.gguf", now "\/n\/a\.gguf"\); use another/,
    );
    // Every other field that differs is named after the first; arrays are compared whole.
    const other = { spec: "/n/b.gguf", fingerprint: "sha256:2", views: [] };
    await expect(DatasetWriter.open(dir, { model: other, metric: "bleu" }, 2)).rejects.toThrow(
      /\(model\.spec: was "\/m\/a\.gguf", now "\/n\/b\.gguf"; also model\.fingerprint, model\.views, metric\)/,
    );
  });

  it("reads a stored identity into today's form before comparing, and records today's", async () => {
    const dir = await freshDir();
    const first = await DatasetWriter.open(dir, { input: "in.jsonl" }, 2);
    await first.writer.append([record("a", 1)], new Float32Array([1, 2]));
    await first.writer.close();
    const current = { input: "/data/in.jsonl" };
    const readStoredIdentity = (stored: Record<string, unknown>) => ({
      ...stored,
      input: `/data/${stored.input as string}`,
    });
    await expect(DatasetWriter.open(dir, current, 2)).rejects.toThrow(/\(input: was "in\.jsonl"/);
    const second = await DatasetWriter.open(dir, current, 2, { readStoredIdentity });
    expect(second.done).toBe(1);
    await second.writer.append([record("b", 2)], new Float32Array([3, 4]));
    await second.writer.close();
    const checkpoint = JSON.parse(await readFile(path.join(dir, CHECKPOINT_FILE), "utf8")) as {
      identity: unknown;
    };
    expect(checkpoint.identity).toEqual(current);
  });

  it("lets only one run write a directory, and takes over the lock of a run that died", async () => {
    const dir = await freshDir();
    const { writer } = await DatasetWriter.open(dir, identity, 2);
    await expect(DatasetWriter.open(dir, identity, 2)).rejects.toThrow(
      `is being written by another routelmt run (process ${process.pid})`,
    );
    await writer.close();
    // A lock naming a process that no longer exists is stale.
    await writeFile(path.join(dir, ".routelmt.lock"), "2147483646\n");
    const again = await DatasetWriter.open(dir, identity, 2);
    expect(again.done).toBe(0);
    await again.writer.close();
  });

  it("refuses to write into a non-empty directory that is not a dataset", async () => {
    const dir = await freshDir();
    await writeFile(path.join(dir, "notes.txt"), "mine");
    await expect(DatasetWriter.open(dir, identity, null)).rejects.toThrow(/not empty/);
  });

  it("writes replay datasets without a feature file", async () => {
    const dir = await freshDir();
    const { writer } = await DatasetWriter.open(dir, identity, null);
    await writer.append([record("a", 1)], null);
    await writer.finish(meta(1, null));
    const dataset = await loadDataset(dir);
    expect(dataset.features).toBeNull();
  });
});

describe("loadDataset", () => {
  it("reports misaligned features", async () => {
    const dir = await freshDir();
    const { writer } = await DatasetWriter.open(dir, identity, 2);
    await writer.append([record("a", 1)], new Float32Array([1, 2]));
    await writer.finish(meta(1, 2));
    await appendFile(path.join(dir, FEATURES_FILE), Buffer.alloc(8));
    await expect(loadDataset(dir)).rejects.toThrow(/4 floats, expected n × dim = 1 × 2/);
  });

  it("names the row, id and column of a feature that is not a finite number", async () => {
    const dir = await freshDir();
    const { writer } = await DatasetWriter.open(dir, identity, 2);
    await writer.append([record("a", 1), record("b", 2)], new Float32Array([1, 2, 3, 4]));
    await writer.finish(meta(2, 2));
    const file = path.join(dir, FEATURES_FILE);
    const bytes = await readFile(file);
    bytes.writeFloatLE(Number.NaN, 12);
    await writeFile(file, bytes);
    await expect(loadDataset(dir)).rejects.toThrow(
      `${file}: row 2 (id "b", records.jsonl line 2) holds NaN at column 1; the features are damaged`,
    );
  });

  it("tells an unfinished collection from a non-dataset", async () => {
    const dir = await freshDir();
    await (await DatasetWriter.open(dir, identity, 2)).writer.close();
    await expect(loadDataset(dir)).rejects.toThrow(/unfinished collection/);
    await expect(loadDataset(await freshDir())).rejects.toThrow(/not a routelmt dataset/);
  });

  it("reads the named blocks meta.json lists, and any of them as a feature matrix", async () => {
    const dir = await freshDir();
    const { writer } = await DatasetWriter.open(dir, identity, 3);
    // Rows: [last:final (2 values) | mean:1 (1 value)].
    await writer.append([record("a", 1), record("b", 2)], new Float32Array([1, 2, 3, 4, 5, 6]));
    await writer.finish({
      ...meta(2, 3),
      feature_blocks: [
        { name: "last:final", pooling: "last", layer: "final", dim: 2, offset: 0 },
        { name: "mean:1", pooling: "mean", layer: 1, dim: 1, offset: 2 },
      ],
    });
    const dataset = await loadDataset(dir);
    expect(dataset.blocks.map((block) => block.name)).toEqual(["last:final", "mean:1"]);
    const mean = datasetFeatures(dataset, ["mean:1"]);
    expect({ rows: mean.rows, dim: mean.dim, values: Array.from(mean.features) }).toEqual({
      rows: 2,
      dim: 1,
      values: [3, 6],
    });
    expect(Array.from(datasetFeatures(dataset, ["mean:1", "final"]).features)).toEqual([3, 1, 2, 6, 4, 5]);
    expect(datasetFeatures(dataset).features).toBe(dataset.features);
    expect(() => datasetFeatures(dataset, ["last:1"])).toThrow(/no feature block last:1/);
  });

  it("reads a dataset from before blocks as one block named after its layer", async () => {
    const dir = await freshDir();
    const { writer } = await DatasetWriter.open(dir, identity, 2);
    await writer.append([record("a", 1)], new Float32Array([1, 2]));
    const old = meta(1, 2);
    await writer.finish({ ...old, small: { ...old.small, layer: "8,final" } });
    const dataset = await loadDataset(dir);
    expect(dataset.blocks).toEqual([
      { name: "last:8,last:final", pooling: "last", layer: "8,final", dim: 2, offset: 0 },
    ]);
    expect(datasetFeatures(dataset, ["last:8", "last:final"]).dim).toBe(2);
  });

  it("refuses blocks that do not tile the feature row", async () => {
    const dir = await freshDir();
    const { writer } = await DatasetWriter.open(dir, identity, 2);
    await writer.append([record("a", 1)], new Float32Array([1, 2]));
    await writer.finish({
      ...meta(1, 2),
      feature_blocks: [{ name: "last:final", pooling: "last", layer: "final", dim: 1, offset: 0 }],
    });
    await expect(loadDataset(dir)).rejects.toThrow(
      new RegExp(`${META_FILE}: feature blocks cover 1 values but the feature dim is 2`),
    );
  });

  it("decodes little-endian floats", () => {
    const bytes = new Uint8Array([0, 0, 0x80, 0x3f]);
    expect(Array.from(littleEndianBytesToFloat32(bytes))).toEqual([1]);
  });
});
