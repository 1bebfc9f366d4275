import { link, mkdir, mkdtemp, readdir, readFile, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCliCaptured, spawnCli } from "./helpers/cli.js";
import { startFakeOpenAIServer } from "./helpers/fake-openai-server.js";
import { writeTinyLlamaGguf } from "./helpers/tiny-llama.js";

let work: string;
let model: string;
let input: string;
let server: Awaited<ReturnType<typeof startFakeOpenAIServer>>;

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), "routelmt-translate-"));
  model = path.join(work, "m.gguf");
  writeTinyLlamaGguf(model, { seed: 5 });
  input = path.join(work, "in.jsonl");
  await writeFile(
    input,
    [
      { id: "b", src: "the cat sat" },
      { id: 2, src: "a big red house", tgt_lang: "fr" },
      { id: "c", src: "hello world" },
    ]
      .map((line) => JSON.stringify(line))
      .join("\n"),
  );
  server = await startFakeOpenAIServer({ label: "remote" });
});

afterAll(async () => {
  await server?.close();
});

async function readOutput(file: string) {
  return (await readFile(file, "utf8"))
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

/** `translate` en→de with a model spec, an input and an output, then any extra flags. */
function translateArgs(modelSpec: string, inFile: string, outFile: string, extra: string[] = []): string[] {
  return [
    "translate",
    ...["--model", modelSpec, "--src-lang", "en", "--tgt-lang", "de"],
    ...["--in", inFile, "--out", outFile, ...extra],
  ];
}

describe("routelmt translate", () => {
  it("translates in input order with an in-process GGUF, twice the same", async () => {
    const outputs = [];
    for (const name of ["a.jsonl", "b.jsonl"]) {
      const out = path.join(work, name);
      const run = await runCliCaptured(translateArgs(model, input, out, ["--max-tokens", "5"]));
      expect(run.stderr).toMatch(/translate 3\/3 done/);
      expect(run.code).toBe(0);
      outputs.push(await readOutput(out));
    }
    const [first, second] = outputs;
    expect(first?.map((line) => line.id)).toEqual(["b", "2", "c"]);
    for (const line of first ?? []) {
      expect(Object.keys(line).sort()).toEqual([
        "hyp",
        "id",
        "model",
        "ms",
        "output_tokens",
        "prompt_tokens",
        "src",
      ]);
      expect(line.model).toBe("m.gguf");
      expect(line.output_tokens).toBeLessThanOrEqual(5);
    }
    expect(second?.map((line) => line.hyp)).toEqual(first?.map((line) => line.hyp));
  });

  it("translates through an OpenAI-compatible server", async () => {
    const out = path.join(work, "remote.jsonl");
    const run = await runCliCaptured(translateArgs(`openai:${server.url}#big`, input, out));
    expect(run.code).toBe(0);
    const lines = await readOutput(out);
    // The fake engine echoes the prompt it got: the default template, filled with language names.
    expect(lines.map((line) => line.hyp)).toEqual([
      "[remote] Translate the following text from English into German: English: the cat sat German:",
      "[remote] Translate the following text from English into French: English: a big red house French:",
      "[remote] Translate the following text from English into German: English: hello world German:",
    ]);
  });

  it("keeps an existing --out and leaves no temporary file when a run fails", async () => {
    const folder = path.join(work, "keep");
    await mkdir(folder);
    const out = path.join(folder, "out.jsonl");
    await writeFile(out, "earlier results\n");
    // The second request fails for good (a 400 is not retried) after the first was written.
    server.setBehaviour((request) =>
      JSON.stringify(request.body).includes("a big red house")
        ? { kind: "fail", status: 400, body: '{"error":{"message":"no thanks"}}' }
        : { kind: "succeed" },
    );
    try {
      const run = await runCliCaptured(translateArgs(`openai:${server.url}#big`, input, out));
      // The server is the only judge of a remote prompt's length; its refusal names the line.
      expect(run.code).toBe(2);
      expect(run.stderr).toMatch(
        /^routelmt: [^\n]*in\.jsonl:2: id "2": openai:[^\n]*HTTP 400[^\n]*no thanks/,
      );
    } finally {
      server.setBehaviour({ kind: "succeed" });
    }
    expect(await readFile(out, "utf8")).toBe("earlier results\n");
    expect(await readdir(folder)).toEqual(["out.jsonl"]);
  });

  describe("a segment whose prompt does not fit the context", () => {
    const maxTokens = 6;
    let mixed: string;
    let out: string;
    const longText = Array.from({ length: 150 }, () => "hello world").join(" ");

    beforeAll(async () => {
      mixed = path.join(work, "mixed.jsonl");
      const lines = [
        { id: "short-1", src: "the cat sat" },
        { id: "long-1", src: longText },
        { id: "short-2", src: "a big red house" },
        { id: "long-2", src: `${longText} the cat` },
      ];
      await writeFile(mixed, `${lines.map((line) => JSON.stringify(line)).join("\n")}\n`);
      out = path.join(work, "fit", "out.jsonl");
      await mkdir(path.dirname(out));
    });

    function translateMixed(extra: string[] = []) {
      return runCliCaptured(translateArgs(model, mixed, out, ["--max-tokens", String(maxTokens), ...extra]));
    }

    /** Every listed line: file:line, id, the prompt's tokens and the most that fit (context 256 of the tiny model). */
    function listedLines(stderr: string): { line: number; id: string }[] {
      const listed = [
        ...stderr.matchAll(
          /mixed\.jsonl:(\d+): id "([^"]+)": (\d+) prompt tokens on m\.gguf, at most (\d+) fit \(context (\d+)\)/g,
        ),
      ];
      for (const [, , , tokens, limit, context] of listed) {
        expect(Number(context)).toBe(256);
        expect(Number(limit)).toBe(256 - maxTokens);
        expect(Number(tokens)).toBeGreaterThan(Number(limit));
      }
      return listed.map(([, line, id]) => ({ line: Number(line), id: id as string }));
    }

    it("refuses the run up front listing every such line, and leaves --out as it was", async () => {
      await writeFile(out, "earlier results\n");
      const run = await translateMixed();
      expect(run.code).toBe(2);
      expect(run.stderr).toMatch(/^routelmt: 2 of 4 segments do not fit the model context/);
      expect(listedLines(run.stderr)).toEqual([
        { line: 2, id: "long-1" },
        { line: 4, id: "long-2" },
      ]);
      // Refused before decoding: no progress line.
      expect(run.stderr).not.toMatch(/translate \d+\/\d+/);
      expect(await readFile(out, "utf8")).toBe("earlier results\n");
      expect(await readdir(path.dirname(out))).toEqual(["out.jsonl"]);
    });

    it("with --skip-too-long translates the rest and lists what it skipped", async () => {
      const run = await translateMixed(["--skip-too-long"]);
      expect(run.code).toBe(0);
      expect(run.stderr).toMatch(
        /translate: skipped 2 of 4 segments too long for the context \(--skip-too-long\):/,
      );
      expect(listedLines(run.stderr)).toEqual([
        { line: 2, id: "long-1" },
        { line: 4, id: "long-2" },
      ]);
      expect((await readOutput(out)).map((line) => line.id)).toEqual(["short-1", "short-2"]);
      const none = await runCliCaptured(
        translateArgs(model, input, out, ["--max-tokens", String(maxTokens), "--skip-too-long"]),
      );
      expect(none.code).toBe(0);
      expect(none.stderr).toMatch(/translate: skipped 0 of 3 segments too long for the context/);
    });
  });

  it("refuses an --out that is the input file under any name, before the model loads", async () => {
    const folder = path.join(work, "same");
    await mkdir(folder);
    const source = path.join(folder, "in.jsonl");
    const content = '{"id":"a","src":"the cat sat"}\n';
    await writeFile(source, content);
    await symlink(source, path.join(folder, "link.jsonl"));
    await link(source, path.join(folder, "hard.jsonl"));
    const spellings: [string, string][] = [
      [source, source],
      [source, `${folder}/./in.jsonl`],
      [`./${path.relative(process.cwd(), source)}`, source],
      [path.join(folder, "link.jsonl"), source],
      [source, path.join(folder, "link.jsonl")],
      [source, path.join(folder, "hard.jsonl")],
    ];
    for (const [inFile, outFile] of spellings) {
      const run = await runCliCaptured(translateArgs(path.join(work, "missing.gguf"), inFile, outFile));
      expect(run.code).toBe(2);
      expect(run.stderr.trimEnd().split("\n")).toEqual([
        `routelmt: --out ${outFile} is the input file ${inFile}; write the translations elsewhere`,
      ]);
    }
    expect(await readFile(source, "utf8")).toBe(content);
    expect((await readdir(folder)).sort()).toEqual(["hard.jsonl", "in.jsonl", "link.jsonl"]);
  });

  it("refuses a repeated id, naming both lines, before the model loads", async () => {
    const repeated = path.join(work, "repeated.jsonl");
    await writeFile(
      repeated,
      '{"id":1,"src":"the cat"}\n{"id":"2","src":"a dog"}\n\n{"id":"1","src":"a mat"}\n',
    );
    const out = path.join(work, "repeated-out.jsonl");
    const run = await runCliCaptured(translateArgs(path.join(work, "missing.gguf"), repeated, out));
    expect(run.code).toBe(2);
    expect(run.stderr).toBe(`routelmt: ${repeated}:4: duplicate id "1" (first on line 1)\n`);
  });

  it("rejects an unknown language with file and line", async () => {
    const bad = path.join(work, "bad.jsonl");
    // As collect reads them: a field that is not a code is refused, not replaced by the flag.
    for (const [line, message] of [
      ['{"id":1,"src":"x","src_lang":"english"}', /bad\.jsonl:1: unknown language code "english"/],
      ['{"id":1,"src":"x","src_lang":5}', /bad\.jsonl:1: "src_lang" must be a language code/],
    ] as const) {
      await writeFile(bad, line);
      const run = await runCliCaptured(translateArgs(model, bad, path.join(work, "o.jsonl")));
      expect(run.code).toBe(2);
      expect(run.stderr).toMatch(message);
    }
  });

  it("on Ctrl-C while a backend is answering, ends leaving the old --out and no temporary file", async () => {
    const hanging = await startFakeOpenAIServer({ behaviour: { kind: "hang" } });
    try {
      const folder = await mkdtemp(path.join(work, "interrupted-"));
      const out = path.join(folder, "out.jsonl");
      await writeFile(out, "previous output\n");
      const child = spawnCli(translateArgs(`openai:${hanging.url}#big`, input, out));
      const exited = new Promise<NodeJS.Signals | null>((resolve) =>
        child.once("exit", (_, signal) => resolve(signal)),
      );
      while (hanging.inFlight === 0) await new Promise((resolve) => setTimeout(resolve, 20));
      expect((await readdir(folder)).some((name) => name.includes(".tmp-"))).toBe(true);
      child.kill("SIGINT");
      expect(await exited).toBe("SIGINT");
      expect(await readdir(folder)).toEqual(["out.jsonl"]);
      expect(await readFile(out, "utf8")).toBe("previous output\n");
    } finally {
      await hanging.close();
    }
  }, 60_000);
});
