/**
 * `routelmt serve --budget-unit tokens|cost` over real HTTP on fake engines: the budget is a share of
 * the large model's tokens or bill, counted from the engines' own reports, and the spend metric adds
 * up the answers.
 */
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { FastifyInstance } from "fastify";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { buildApp } from "../src/server/app.js";
import { type FakeOpenAIServer, startFakeOpenAIServer } from "./helpers/fake-openai-server.js";
import {
  fakeServerConfig,
  postJson,
  remoteRouter,
  runConcurrently,
  sampleText,
  writeRouter,
} from "./server-fixtures.js";

/** Thousands of requests through one process: minutes on a loaded machine. */
const HEAVY_TEST_TIMEOUT_MS = 300_000;
let work: string;
let small: FakeOpenAIServer;
let large: FakeOpenAIServer;
let routerFile: string;
const apps: FastifyInstance[] = [];
const REQUESTS = 2000;
const BUDGET = 0.2;
const PRICES = { input: 0.5, output: 2 };

/** Texts of 1 to 9 times the sample's length, so that requests weigh very differently. */
function weightedText(index: number): string {
  return Array.from({ length: 1 + ((index * 7) % 9) }, () => sampleText(index)).join(" ");
}

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), "routelmt-units-"));
  small = await startFakeOpenAIServer({ label: "small", models: ["small"], embeddingDim: 8 });
  large = await startFakeOpenAIServer({ label: "large", models: ["large"] });
  routerFile = await writeRouter(work, remoteRouter(small.url, { quantileSamples: REQUESTS }));
});

afterAll(async () => {
  await small.close();
  await large.close();
});

afterEach(async () => {
  while (apps.length > 0) await apps.pop()?.close();
});

interface Answer {
  model: "small" | "large";
  promptTokens: number;
  outputTokens: number;
}

async function serveAll(overrides: Record<string, unknown>): Promise<{ answers: Answer[]; origin: string }> {
  const app = await buildApp(
    fakeServerConfig(small.url, large.url, routerFile, { budget: BUDGET, ...overrides }),
  );
  apps.push(app);
  const origin = await app.listen({ port: 0, host: "127.0.0.1" });
  const answers = await runConcurrently(REQUESTS, 32, async (index) => {
    const result = await postJson(`${origin}/v1/chat/completions`, {
      model: "routelmt",
      messages: [{ role: "user", content: weightedText(index) }],
      metadata: { source_lang: "en", target_lang: "de" },
    });
    expect(result.status).toBe(200);
    const usage = result.body.usage as { prompt_tokens: number; completion_tokens: number };
    return {
      model: (result.body.routelmt as { model: "small" | "large" }).model,
      promptTokens: usage.prompt_tokens,
      outputTokens: usage.completion_tokens,
    };
  });
  return { answers, origin };
}

/** The large model's share of what it would process (tokens) or bill (cost), from the reported counts. */
function largeShare(answers: readonly Answer[], weigh: (answer: Answer) => number): number {
  const total = answers.reduce((sum, answer) => sum + weigh(answer), 0);
  return (
    answers.filter((answer) => answer.model === "large").reduce((sum, answer) => sum + weigh(answer), 0) /
    total
  );
}

describe("routelmt serve: budgets in tokens and cost", () => {
  it(
    "holds p of the large model's bill, counted from what the engines report",
    async () => {
      const { answers, origin } = await serveAll({
        "budget-unit": "cost",
        "large-input-price": PRICES.input,
        "large-output-price": PRICES.output,
        "small-input-price": 0.01,
        "small-output-price": 0.03,
      });
      // The fake engines answer with as many words as the prompt (plus a label): the small model's
      // counts stand in for what the large model would have been billed for a request kept small.
      const bill = (answer: Answer) =>
        (answer.promptTokens * PRICES.input + answer.outputTokens * PRICES.output) / 1000;
      const costShare = largeShare(answers, bill);
      expect(costShare).toBeLessThanOrEqual(BUDGET + 0.01);
      expect(costShare).toBeGreaterThan(BUDGET - 0.02);
      const metrics = await (await fetch(`${origin}/metrics`)).text();
      const largeSpend = Number(/routelmt_spend_total\{model="large"\} (\S+)/.exec(metrics)?.[1]);
      const expected = answers
        .filter((answer) => answer.model === "large")
        .reduce((sum, answer) => sum + bill(answer), 0);
      expect(largeSpend).toBeCloseTo(expected, 6);
      expect(Number(/routelmt_spend_total\{model="small"\} (\S+)/.exec(metrics)?.[1])).toBeGreaterThan(0);
    },
    HEAVY_TEST_TIMEOUT_MS,
  );

  it(
    "holds p of the tokens the large model would process",
    async () => {
      const { answers } = await serveAll({ "budget-unit": "tokens" });
      const tokens = (answer: Answer) => answer.promptTokens + answer.outputTokens;
      const tokenShare = largeShare(answers, tokens);
      expect(tokenShare).toBeLessThanOrEqual(BUDGET + 0.01);
      expect(tokenShare).toBeGreaterThan(BUDGET - 0.02);
    },
    HEAVY_TEST_TIMEOUT_MS,
  );
});
