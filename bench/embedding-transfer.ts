/**
 * What reading a remote small model's features costs the router per request, with the state sent
 * as base64 float32 (what `OpenAIProbedTranslator` asks for) against JSON numbers (what a server
 * that refuses base64 sends). One fake OpenAI-compatible engine process serves embeddings of the
 * given widths; this process calls `prefill()` one request at a time through two translators, one
 * on an engine that answers base64, one on an engine of the same process that refuses it, and
 * measures this process's CPU time and the wall time per call. Prints one JSON object.
 * Run: `npx tsx bench/embedding-transfer.ts`.
 */
import { spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { OpenAIProbedTranslator } from "../src/translators/openai-embeddings.js";
import { startFakeOpenAIServer } from "../test/helpers/fake-openai-server.js";
import { awaitChildOutput } from "./helpers/child-output.js";
import { isMainModule, runIfMain } from "./run-if-main.js";

const WIDTHS = [896, 2048, 4096];
const CALLS = 1000;
const WARM_UP = 500;
const ENGINES_FLAG = "--engines";

const round = (value: number) => Math.round(value * 1000) / 1000;

/** The engine process: for each width, one engine answering base64 and one refusing it. */
async function serveEngines(): Promise<void> {
  const engines = await Promise.all(
    WIDTHS.flatMap((width) => [
      startFakeOpenAIServer({ label: "small", models: ["small"], embeddingDim: width }),
      startFakeOpenAIServer({
        label: "small",
        models: ["small"],
        embeddingDim: width,
        behaviour: (request) =>
          (request.body as { encoding_format?: string }).encoding_format === "base64"
            ? { kind: "fail", status: 400, body: '{"error":{"message":"unsupported encoding_format"}}' }
            : { kind: "succeed" },
      }),
    ]),
  );
  console.log(`engines ${JSON.stringify(engines.map((engine) => engine.url))}`);
  process.once("SIGTERM", () => process.exit(0));
}

const REQUEST = { text: "The quick brown fox jumps over the lazy dog.", srcLang: "en", tgtLang: "de" };

async function warmUp(translator: OpenAIProbedTranslator): Promise<void> {
  for (let call = 0; call < WARM_UP; call++) await translator.prefill(REQUEST);
}

async function measure(translator: OpenAIProbedTranslator) {
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  for (let call = 0; call < CALLS; call++) await translator.prefill(REQUEST);
  const cpu = process.cpuUsage(cpuBefore);
  return {
    wall_ms_per_call: round((performance.now() - started) / CALLS),
    cpu_ms_per_call: round((cpu.user + cpu.system) / 1000 / CALLS),
  };
}

export async function run(): Promise<Record<string, unknown>> {
  const child = spawn(process.execPath, ["--import", "tsx", fileURLToPath(import.meta.url), ENGINES_FLAG], {
    cwd: path.resolve(path.dirname(fileURLToPath(import.meta.url)), ".."),
    stdio: ["ignore", "pipe", "pipe"],
  });
  try {
    const urls = JSON.parse(await awaitChildOutput(child, /engines (\[.*\])/, 60_000)) as string[];
    const translators = WIDTHS.map((width, index) => {
      const open = (url: string) => new OpenAIProbedTranslator("small", { baseURL: url, dim: width });
      return { width, base64: open(urls[2 * index]!), numbers: open(urls[2 * index + 1]!) };
    });
    // Every path is optimised before any is measured, so the first measured is not the slowest.
    for (const { base64, numbers } of translators) {
      await warmUp(base64);
      await warmUp(numbers);
    }
    const widths = [];
    for (const { width, base64, numbers } of translators) {
      const viaBase64 = await measure(base64);
      const viaNumbers = await measure(numbers);
      widths.push({
        dim: width,
        base64: viaBase64,
        json_numbers: viaNumbers,
        cpu_ratio_base64_to_numbers: round(viaBase64.cpu_ms_per_call / viaNumbers.cpu_ms_per_call),
        wall_ratio_base64_to_numbers: round(viaBase64.wall_ms_per_call / viaNumbers.wall_ms_per_call),
      });
    }
    return { benchmark: "embedding-transfer", node: process.version, calls: CALLS, widths };
  } finally {
    child.kill("SIGTERM");
  }
}

if (isMainModule(import.meta.url) && process.argv.includes(ENGINES_FLAG)) await serveEngines();
else runIfMain(import.meta.url, run);
