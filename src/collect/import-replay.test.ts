import { createHash } from "node:crypto";
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { hasShared, sharedPath, sharedSkipReason } from "../../test/helpers/shared.js";
import { loadDataset } from "../dataset/index.js";
import { importReplay, languagePairOf, parseExtraScore } from "./import-replay.js";

async function writeInput(lines: unknown[]): Promise<{ dir: string; file: string }> {
  const dir = await mkdtemp(path.join(tmpdir(), "routelmt-import-"));
  const file = path.join(dir, "in.jsonl");
  await writeFile(
    file,
    lines.map((line) => (typeof line === "string" ? line : JSON.stringify(line))).join("\n"),
  );
  return { dir, file };
}

const base = {
  smallField: "systems.small-1",
  largeField: "systems.big_2",
  smallLabel: "mqm.small-1",
  largeLabel: "mqm.big_2",
};

describe("importReplay", () => {
  it("builds records with oriented gains, skips null labels and keeps extra scores", async () => {
    const { dir, file } = await writeInput([
      {
        id: 7,
        lp: "en-de",
        src: "Hello",
        ref: "Hallo",
        systems: { "small-1": "Hallo!", big_2: "Hallo" },
        mqm: { "small-1": -5, big_2: -1 },
        m: { "a.b": { s: 0.5, l: 0.7 } },
      },
      {
        id: 8,
        lp: "en-de",
        src: "Bye",
        ref: "Tschüss",
        systems: { "small-1": "Tschau", big_2: "Tschüss" },
        mqm: { "small-1": null, big_2: 0 },
      },
      {
        id: 9,
        lp: "en-de",
        src: "Yes",
        ref: null,
        systems: { "small-1": "Ja", big_2: "Jawohl" },
        mqm: { "small-1": 0, big_2: -2 },
        m: { "a.b": { s: 0.9, l: null } },
      },
    ]);
    const out = path.join(dir, "ds");
    const summary = await importReplay({
      ...base,
      input: file,
      out,
      scores: [parseExtraScore('kiwi=m."a.b".s,m."a.b".l')],
    });
    expect(summary).toMatchObject({ written: 2, skippedNullLabel: 1 });
    const dataset = await loadDataset(out);
    expect(dataset.meta).toMatchObject({
      n: 2,
      dim: null,
      label_metric: "mqm",
      src_lang: "en",
      tgt_lang: "de",
    });
    expect(dataset.features).toBeNull();
    const [first, second] = dataset.records;
    expect(first).toMatchObject({
      id: "7",
      small: "Hallo!",
      large: "Hallo",
      q_small: -5,
      q_large: -1,
      gain: 4,
      src_chars: 5,
    });
    expect(first?.scores.kiwi).toEqual({ small: 0.5, large: 0.7 });
    expect(second).toMatchObject({ id: "9", ref: null, gain: -2, prompt_tokens: null, entropy: null });
    expect(second?.scores.kiwi).toEqual({ small: 0.9, large: null });
  });

  it("orients the gain of error-like labels", async () => {
    const { dir, file } = await writeInput([
      { id: "a", src: "x", systems: { "small-1": "s", big_2: "l" }, mqm: { "small-1": 3, big_2: 1 } },
    ]);
    await importReplay({
      ...base,
      input: file,
      out: path.join(dir, "ds"),
      labelLowerIsBetter: true,
      labelName: "err",
    });
    const dataset = await loadDataset(path.join(dir, "ds"));
    expect(dataset.records[0]?.gain).toBe(2);
    expect(dataset.meta.label_higher_is_better).toBe(false);
  });

  it("names file and line of bad records", async () => {
    const cases: [unknown[], RegExp][] = [
      [
        [{ id: 1, src: "a", systems: {}, mqm: { "small-1": 1, big_2: 2 } }, "{oops"],
        /in\.jsonl:2: malformed JSON/,
      ],
      [
        [
          { id: 1, src: "a", systems: { "small-1": "s", big_2: "l" }, mqm: { "small-1": 1, big_2: 2 } },
          { id: 1, src: "b", mqm: { "small-1": 1, big_2: 2 } },
        ],
        /in\.jsonl:2: duplicate id "1" \(first on line 1\)/,
      ],
      [
        [{ id: 1, src: "  ", systems: { "small-1": "s", big_2: "l" }, mqm: { "small-1": 1, big_2: 2 } }],
        /in\.jsonl:1: empty or missing source/,
      ],
      [
        [{ id: 1, src: "a", systems: { "small-1": "s", big_2: "l" }, mqm: { "small-1": "bad", big_2: 2 } }],
        /in\.jsonl:1: mqm\.small-1 is "bad"/,
      ],
      [
        [
          {
            id: 1,
            lp: "en-zz",
            src: "a",
            systems: { "small-1": "s", big_2: "l" },
            mqm: { "small-1": 1, big_2: 2 },
          },
        ],
        /in\.jsonl:1: unknown language code "zz"/,
      ],
      [
        [
          {
            id: 1,
            src: "a",
            systems: { "small-1": "s", big_2: "l" },
            mqm: { "small-1": -1e308, big_2: 1e308 },
          },
        ],
        /in\.jsonl:1: the labels -1e\+308 and 1e\+308 differ by more than a number can hold/,
      ],
      [[], /in\.jsonl: no records to import/],
      [
        [{ id: 1, src: "a", systems: { "small-1": "s", big_2: "l" }, mqm: { "small-1": null, big_2: 2 } }],
        /in\.jsonl: no record has both labels \(mqm\.small-1, mqm\.big_2\): all 1 are null in one/,
      ],
    ];
    for (const [lines, message] of cases) {
      const { dir, file } = await writeInput(lines);
      await expect(importReplay({ ...base, input: file, out: path.join(dir, "ds") })).rejects.toThrow(
        message,
      );
    }
  });

  it("calls a path found in no record a typo", async () => {
    const { dir, file } = await writeInput([
      { id: 1, src: "a", systems: { "small-1": "s", big_2: "l" }, mqm: { "small-1": 1 }, k: { s: 1, l: 2 } },
    ]);
    await expect(importReplay({ ...base, input: file, out: path.join(dir, "ds") })).rejects.toThrow(
      /mqm\.big_2 \(large-label field\) is missing from every record/,
    );
    // An extra score's paths too: a typo would otherwise import it as null everywhere.
    const labelled = { ...base, largeLabel: "mqm.small-1", input: file, out: path.join(dir, "ds") };
    await expect(importReplay({ ...labelled, scores: [parseExtraScore("kiwi=k.s,k.L")] })).rejects.toThrow(
      /k\.L \(--score kiwi, large\) is missing from every record/,
    );
  });

  it("refuses a score named like the label, or like another score, before reading the input", async () => {
    // No input file: the names are checked first.
    const dir = await mkdtemp(path.join(tmpdir(), "routelmt-import-"));
    const options = { ...base, input: path.join(dir, "missing.jsonl"), out: path.join(dir, "ds") };
    await expect(importReplay({ ...options, scores: [parseExtraScore("mqm=k.s,k.l")] })).rejects.toThrow(
      '--small-label mqm.small-1 (the label\'s name is its first key) and --score mqm=k.s,k.l are both named "mqm"',
    );
    await expect(
      importReplay({ ...options, labelName: "kiwi", scores: [parseExtraScore("kiwi=k.s,k.l")] }),
    ).rejects.toThrow('--label-name kiwi and --score kiwi=k.s,k.l are both named "kiwi"');
    await expect(
      importReplay({
        ...options,
        scores: [parseExtraScore("kiwi=k.s,k.l"), parseExtraScore("kiwi=j.s,j.l")],
      }),
    ).rejects.toThrow('--score kiwi=k.s,k.l and --score kiwi=j.s,j.l are both named "kiwi"');
    // Renaming the label is the way out.
    await expect(
      importReplay({ ...options, labelName: "human", scores: [parseExtraScore("mqm=k.s,k.l")] }),
    ).rejects.toThrow(/missing\.jsonl: cannot read file/);
  });

  /** One importable record: a source, both systems' outputs and both MQM labels. */
  const ONE_LINE = {
    id: 1,
    src: "a",
    systems: { "small-1": "s", big_2: "l" },
    mqm: { "small-1": 1, big_2: 2 },
  };

  it("refuses a rerun over another input or language pair, and finishes nothing twice", async () => {
    const line = ONE_LINE;
    const { dir, file } = await writeInput([line]);
    const out = path.join(dir, "ds");
    await importReplay({ ...base, input: file, out, srcLang: "en", tgtLang: "de" });
    // The identity hashes the bytes the records were parsed from (one read of the file).
    const checkpoint = JSON.parse(await readFile(path.join(out, "checkpoint.json"), "utf8")) as {
      identity: { input_sha256: string };
    };
    expect(checkpoint.identity.input_sha256).toBe(
      createHash("sha256").update(JSON.stringify(line)).digest("hex"),
    );
    expect(await importReplay({ ...base, input: file, out, srcLang: "en", tgtLang: "de" })).toMatchObject({
      alreadyComplete: true,
    });
    await expect(importReplay({ ...base, input: file, out, srcLang: "fr", tgtLang: "en" })).rejects.toThrow(
      /different settings \(languages: was \["en-de"\], now \["fr-en"\]\)/,
    );
    await writeFile(file, JSON.stringify({ ...line, src: "b" }));
    await expect(importReplay({ ...base, input: file, out, srcLang: "en", tgtLang: "de" })).rejects.toThrow(
      /different settings \(input_sha256: /,
    );
  });

  it("resumes the same input file named by a relative or an absolute path", async () => {
    const line = ONE_LINE;
    const { dir, file } = await writeInput([line]);
    const out = path.join(dir, "ds");
    const relative = path.relative(process.cwd(), file);
    await importReplay({ ...base, input: file, out });
    expect(await importReplay({ ...base, input: relative, out })).toMatchObject({ alreadyComplete: true });
    // Identities written before paths were resolved hold the path as typed.
    const checkpointFile = path.join(out, "checkpoint.json");
    const checkpoint = JSON.parse(await readFile(checkpointFile, "utf8")) as { identity: { input: string } };
    expect(checkpoint.identity.input).toBe(file);
    checkpoint.identity.input = relative;
    await writeFile(checkpointFile, JSON.stringify(checkpoint));
    expect(await importReplay({ ...base, input: file, out })).toMatchObject({ alreadyComplete: true });
    // Another file of the same content is another input.
    const copy = path.join(dir, "copy.jsonl");
    await writeFile(copy, await readFile(file));
    await expect(importReplay({ ...base, input: copy, out })).rejects.toThrow(
      `different settings (input: was ${JSON.stringify(file)}, now ${JSON.stringify(copy)})`,
    );
  });

  it.skipIf(!hasShared(["wmt23", "en-de.jsonl"]))(
    `imports the WMT23 en-de MQM case ${hasShared(["wmt23", "en-de.jsonl"]) ? "" : sharedSkipReason("the WMT23 import")}`,
    async () => {
      const dir = await mkdtemp(path.join(tmpdir(), "routelmt-wmt-"));
      const summary = await importReplay({
        input: sharedPath("wmt23", "en-de.jsonl"),
        out: dir,
        smallField: "systems.NLLB_Greedy",
        largeField: "systems.GPT4-5shot",
        smallLabel: "mqm.NLLB_Greedy",
        largeLabel: "mqm.GPT4-5shot",
        scores: [
          parseExtraScore("cometkiwi=metrics.CometKiwi-src.NLLB_Greedy,metrics.CometKiwi-src.GPT4-5shot"),
        ],
      });
      expect(summary.written + summary.skippedNullLabel).toBe(557);
      expect(summary.written).toBe(460);
      const dataset = await loadDataset(dir);
      expect(dataset.records.every((r) => r.gain === (r.q_large as number) - (r.q_small as number))).toBe(
        true,
      );
      expect(dataset.records.every((r) => typeof r.scores.cometkiwi?.small === "number")).toBe(true);
    },
  );
});

describe("parseExtraScore", () => {
  it("splits on the comma outside quotes", () => {
    expect(parseExtraScore('k=m."x,y".a,m.b')).toEqual({ name: "k", small: 'm."x,y".a', large: "m.b" });
    expect(() => parseExtraScore("nope")).toThrow(/NAME=SMALL_PATH,LARGE_PATH/);
  });
});

describe("languagePairOf", () => {
  it("splits an lp field at the hyphen that leaves a known code on both sides", () => {
    expect(languagePairOf("en-de")).toEqual(["en", "de"]);
    expect(languagePairOf("zh-Hant-en")).toEqual(["zh-Hant", "en"]);
    expect(languagePairOf("en-pt-BR")).toEqual(["en", "pt-BR"]);
    expect(languagePairOf("sr-Latn-de")).toEqual(["sr-Latn", "de"]);
    // No known split: the first hyphen, so the unknown code is the one named.
    expect(languagePairOf("en-zz")).toEqual(["en", "zz"]);
    expect(languagePairOf("english")).toEqual([]);
  });
});
