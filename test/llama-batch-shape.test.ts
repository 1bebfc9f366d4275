/**
 * A sequence decoded beside another gets, at every step, the next-token distribution it gets alone,
 * to the last bit. Deterministic: both sequences' steps are queued in the same tick, so
 * node-llama-cpp offers them to one batch.
 *
 * In one batch, llama.cpp (a KV stream per sequence, `split_equal`) computes both steps in one
 * two-row ubatch, with another matrix-product kernel than the one-row ubatch of decoding alone; the
 * last bits change, and on tinymt-large a near-tie greedy token flipped (Multi30k val 149).
 * `promptAloneStrategy` gives every batch one sequence.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import {
  type ControlledEvaluateInputItem,
  getLlama,
  type LlamaContextSequence,
  LlamaLogLevel,
  type LlamaModel,
  type Token,
} from "node-llama-cpp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createGuardedContext, prefillSequence } from "../src/features/llama-internals.js";
import { hasShared, sharedPath } from "./helpers/shared.js";
import { writeTinyLlamaGguf } from "./helpers/tiny-llama.js";

let work: string;
const models: { name: string; model: LlamaModel; prompts: [string, string] }[] = [];

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), "routelmt-batch-shape-"));
  const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
  const tinyPath = path.join(work, "tiny.gguf");
  writeTinyLlamaGguf(tinyPath);
  models.push({
    name: "generated tiny llama",
    model: await llama.loadModel({ modelPath: tinyPath, gpuLayers: 0 }),
    prompts: ["the cat sat on a red mat with the big dog", "hello world"],
  });
  // The real model of the flip, when the shared models are there.
  if (hasShared(["models", "tinymt-large.gguf"])) {
    models.push({
      name: "tinymt-large",
      model: await llama.loadModel({ modelPath: sharedPath("models", "tinymt-large.gguf"), gpuLayers: 0 }),
      prompts: [
        "English: There is a man in fireman's gear crossing the road near a white bus and a red semi.\nGerman:",
        "English: A dog runs.\nGerman:",
      ],
    });
  }
}, 120_000);

afterAll(async () => {
  for (const { model } of models) await model.dispose();
  if (work) await rm(work, { recursive: true, force: true });
});

function tokensOf(model: LlamaModel, text: string): Token[] {
  const tokens = model.tokenize(text);
  const bos = model.tokens.bos;
  return bos !== null && model.tokens.shouldPrependBosToken ? [bos, ...tokens] : tokens;
}

/** Largest difference between two next-token distributions (a token missing from one counts as 0). */
function largestDifference(left: Map<Token, number>, right: Map<Token, number>): number {
  let largest = 0;
  for (const token of new Set([...left.keys(), ...right.keys()])) {
    largest = Math.max(largest, Math.abs((left.get(token) ?? 0) - (right.get(token) ?? 0)));
  }
  return largest;
}

const STEPS = 20;

describe("decoding beside another sequence", () => {
  it("gives the one-sequence distribution at every step to the last bit, on every model", async () => {
    expect(models.length).toBeGreaterThan(0);
    for (const { name, model, prompts } of models) {
      const [prompt, other] = prompts.map((text) => tokensOf(model, text)) as [Token[], Token[]];
      const options = { contextSize: 256, batchSize: 512, threads: 1, readsFeatures: false };
      const step = (token: Token): ControlledEvaluateInputItem[] => [
        [token, { generateNext: { token: true, probabilities: true } }],
      ];
      type Output = Awaited<ReturnType<LlamaContextSequence["controlledEvaluate"]>>[number];
      const next = (outputs: readonly (Output | undefined)[]) => outputs.at(-1)?.next;

      // Alone: the prompt, then STEPS greedy steps.
      const alone = await createGuardedContext(model, { ...options, sequences: 1 });
      const sequence = alone.getSequence();
      const expected: { token: Token; probabilities: Map<Token, number> }[] = [];
      let token = (await prefillSequence(sequence, prompt, false)).nextToken;
      for (let index = 0; index < STEPS; index++) {
        const result = next(await sequence.controlledEvaluate(step(token)));
        expected.push({ token, probabilities: result?.probabilities ?? new Map() });
        token = result?.token as Token;
      }
      await alone.dispose();

      // Beside a sequence with the next lower id that decodes at the same time.
      const shared = await createGuardedContext(model, { ...options, sequences: 2 });
      const partner = shared.getSequence();
      const decoding = shared.getSequence();
      let partnerToken = (await prefillSequence(partner, other, false)).nextToken;
      token = (await prefillSequence(decoding, prompt, false)).nextToken;
      for (let index = 0; index < STEPS; index++) {
        const [partnerOutputs, outputs] = await Promise.all([
          partner.controlledEvaluate(step(partnerToken)),
          decoding.controlledEvaluate(step(token)),
        ]);
        const result = next(outputs);
        const reference = expected[index] as { token: Token; probabilities: Map<Token, number> };
        expect(token, `${name}: input token of step ${index}`).toBe(reference.token);
        expect(
          largestDifference(reference.probabilities, result?.probabilities ?? new Map()),
          `${name}: largest probability difference at step ${index}`,
        ).toBe(0);
        token = result?.token as Token;
        // The partner keeps decoding (past its end of text too): only its presence matters.
        partnerToken = (next(partnerOutputs)?.token ?? partnerToken) as Token;
      }
      await shared.dispose();
    }
  }, 120_000);
});
