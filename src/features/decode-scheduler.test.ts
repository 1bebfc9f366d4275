import { describe, expect, it } from "vitest";
import { EngineCallError, UsageError } from "../errors/index.js";
import { DecodeScheduler, type SchedulerEngine, type SchedulerEvent } from "./decode-scheduler.js";
import type { FeatureView } from "./feature-views.js";
import type { BatchEntry } from "./llama-ffi-engine.js";

const END = 0;

/**
 * A deterministic stand-in for the engine: a sequence's next token is a function of its whole history
 * (so any mix-up between sequences shows), `END` ends generation. It records every batch it decodes.
 */
class FakeEngine implements SchedulerEngine {
  readonly contextSize: number;
  readonly batchCapacity: number;
  readonly histories = new Map<number, number[]>();
  readonly batches: BatchEntry[][] = [];
  readonly prefills: number[] = [];
  failNextBatch = false;

  constructor(options: { contextSize?: number; batchCapacity?: number } = {}) {
    this.contextSize = options.contextSize ?? 64;
    this.batchCapacity = options.batchCapacity ?? 16;
  }

  static next(history: readonly number[]): number {
    const sum = history.reduce((total, token, index) => total + token * (index + 1), 0);
    return sum % 13 === 0 ? END : 1 + (sum % 97);
  }

  isEndOfGeneration(token: number): boolean {
    return token === END;
  }

  /** Not what the scheduler checks: it passes the engine's sum through. */
  generatedLogProbability(sequenceId: number): number {
    return -(this.histories.get(sequenceId)?.length ?? 0);
  }

  positionOf(sequenceId: number): number {
    return this.histories.get(sequenceId)?.length ?? 0;
  }

  prefill(sequenceId: number, tokens: readonly number[], options: { views: readonly FeatureView[] }) {
    this.prefills.push(sequenceId);
    this.histories.set(sequenceId, [...tokens]);
    return {
      features: options.views.map(() => Float32Array.of(sequenceId, tokens.length)),
      firstToken: FakeEngine.next(tokens),
      entropy: 1.5,
    };
  }

  decodeBatch(entries: readonly BatchEntry[]): (number | undefined)[] {
    if (this.failNextBatch) {
      this.failNextBatch = false;
      throw new EngineCallError("fake", "llama_decode returned -3");
    }
    const total = entries.reduce((sum, entry) => sum + entry.tokens.length, 0);
    if (total > this.batchCapacity) throw new Error(`batch of ${total} over capacity`);
    // What keeps llama.cpp's numerics those of one-sequence decoding: a prompt chunk is alone in its
    // batch and starts at a multiple of the batch capacity; other batches are one token per sequence
    // in descending sequence id order (one-row ubatches).
    for (const [index, entry] of entries.entries()) {
      if (entries.length > 1 && entry.tokens.length > 1) throw new Error("a prompt shares a batch");
      if (entry.tokens.length > 1 && this.positionOf(entry.sequenceId) % this.batchCapacity !== 0) {
        throw new Error(`a prompt chunk starts at ${this.positionOf(entry.sequenceId)}`);
      }
      const previous = entries[index - 1];
      if (previous !== undefined && previous.sequenceId <= entry.sequenceId) {
        throw new Error("decode steps are not in descending sequence id order");
      }
    }
    this.batches.push(entries.map((entry) => ({ ...entry, tokens: [...entry.tokens] })));
    return entries.map((entry) => {
      const history = [...(this.histories.get(entry.sequenceId) ?? []), ...entry.tokens];
      this.histories.set(entry.sequenceId, history);
      return entry.outputLast ? FakeEngine.next(history) : undefined;
    });
  }

  releaseSequence(sequenceId: number): void {
    this.histories.delete(sequenceId);
  }
}

/** Greedy generation computed directly from the fake engine's rule. */
function expectedGeneration(prompt: readonly number[], maxTokens: number, contextSize = 64) {
  const history = [...prompt];
  const tokens: number[] = [];
  let token = FakeEngine.next(history);
  for (;;) {
    if (token === END) return { tokens, finishReason: "stop" };
    tokens.push(token);
    if (tokens.length >= maxTokens || history.length >= contextSize)
      return { tokens, finishReason: "length" };
    history.push(token);
    token = FakeEngine.next(history);
  }
}

function runToIdle(scheduler: DecodeScheduler, limit = 1000): SchedulerEvent[] {
  const events: SchedulerEvent[] = [...scheduler.takeEvents()];
  for (let steps = 0; scheduler.hasWork(); steps++) {
    if (steps >= limit) throw new Error("the scheduler did not finish");
    scheduler.step();
    events.push(...scheduler.takeEvents());
  }
  return events;
}

const finished = (events: SchedulerEvent[], requestId: number) =>
  events.find((event) => event.requestId === requestId && event.kind === "finished");

const view: FeatureView = { name: "last:final", pooling: "last", layer: "final" };
const prompts = [
  [5, 6, 7],
  [8, 9, 10, 11, 12],
  [3, 1, 4, 1, 5, 9, 2, 6],
  [2, 7],
];

describe("DecodeScheduler", () => {
  it("gives every concurrent translation the tokens it gets alone", () => {
    const engine = new FakeEngine();
    const scheduler = new DecodeScheduler(engine);
    prompts.forEach((prompt, index) => {
      scheduler.translate({ requestId: index + 1, sequenceId: index, maxTokens: 20, stream: false }, prompt);
    });
    const events = runToIdle(scheduler);
    prompts.forEach((prompt, index) => {
      expect(finished(events, index + 1)).toMatchObject(expectedGeneration(prompt, 20));
    });
    // Decode steps of several sequences shared batches.
    expect(engine.batches.some((batch) => batch.length > 1)).toBe(true);
  });

  it("decodes each prompt alone and the steps of all sequences together, by descending sequence id", () => {
    const engine = new FakeEngine();
    const scheduler = new DecodeScheduler(engine);
    scheduler.translate({ requestId: 1, sequenceId: 2, maxTokens: 5, stream: false }, [5, 6, 7]);
    scheduler.translate({ requestId: 2, sequenceId: 0, maxTokens: 5, stream: false }, [8, 10]);
    scheduler.step();
    scheduler.step();
    const first = expectedGeneration([5, 6, 7], 5).tokens;
    const second = expectedGeneration([8, 10], 5).tokens;
    expect(engine.batches.slice(0, 4)).toEqual([
      [{ sequenceId: 2, tokens: [5, 6, 7], outputLast: true }],
      [{ sequenceId: 2, tokens: [first[0]], outputLast: true }],
      [{ sequenceId: 0, tokens: [8, 10], outputLast: true }],
      [
        { sequenceId: 2, tokens: [first[1]], outputLast: true },
        { sequenceId: 0, tokens: [second[0]], outputLast: true },
      ],
    ]);
  });

  it("cuts a long prompt at multiples of the batch capacity, a generation step between chunks", () => {
    const engine = new FakeEngine({ batchCapacity: 4 });
    const scheduler = new DecodeScheduler(engine);
    scheduler.translate({ requestId: 1, sequenceId: 0, maxTokens: 3, stream: false }, [1, 2, 3]);
    scheduler.step();
    scheduler.translate({ requestId: 2, sequenceId: 1, maxTokens: 3, stream: false }, [4, 5, 6, 7, 8]);
    const events = runToIdle(scheduler);
    const generated = expectedGeneration([1, 2, 3], 3).tokens;
    expect(engine.batches.slice(2, 5)).toEqual([
      [{ sequenceId: 1, tokens: [4, 5, 6, 7], outputLast: false }],
      [{ sequenceId: 0, tokens: [generated[1]], outputLast: true }],
      [{ sequenceId: 1, tokens: [8], outputLast: true }],
    ]);
    expect(finished(events, 1)).toMatchObject(expectedGeneration([1, 2, 3], 3));
    expect(finished(events, 2)).toMatchObject(expectedGeneration([4, 5, 6, 7, 8], 3));
  });

  it("runs a view-reading prefill first and alone, then continues it in shared steps", () => {
    const engine = new FakeEngine();
    const scheduler = new DecodeScheduler(engine);
    scheduler.translate(
      { requestId: 1, sequenceId: 0, maxTokens: 10, stream: false },
      prompts[0] as number[],
    );
    scheduler.prefill(2, 1, prompts[1] as number[], { views: [view], entropy: true });
    scheduler.step();
    let events = scheduler.takeEvents();
    // The prefill ran through the engine's own prefill; the plain prompt waits for the next step.
    expect(engine.prefills).toEqual([1]);
    expect(engine.batches).toEqual([]);
    expect(events.find((event) => event.kind === "prefilled")).toMatchObject({
      requestId: 2,
      entropy: 1.5,
      firstToken: FakeEngine.next(prompts[1] as number[]),
    });
    scheduler.continueFrom({ requestId: 3, sequenceId: 1, maxTokens: 10, stream: false });
    events = runToIdle(scheduler);
    expect(engine.batches.some((batch) => batch.length === 2)).toBe(true);
    expect(finished(events, 1)).toMatchObject(expectedGeneration(prompts[0] as number[], 10));
    expect(finished(events, 3)).toMatchObject(expectedGeneration(prompts[1] as number[], 10));
  });

  it("stops at maxTokens and at a full context with finish reason length", () => {
    const engine = new FakeEngine({ contextSize: 10 });
    const scheduler = new DecodeScheduler(engine);
    scheduler.translate({ requestId: 1, sequenceId: 0, maxTokens: 2, stream: false }, [5, 6, 7]);
    scheduler.translate(
      { requestId: 2, sequenceId: 1, maxTokens: 50, stream: false },
      [3, 1, 4, 1, 5, 9, 2, 6],
    );
    const events = runToIdle(scheduler);
    expect(finished(events, 1)).toMatchObject({ finishReason: "length" });
    expect((finished(events, 1) as { tokens: number[] }).tokens).toHaveLength(2);
    // 8 prompt tokens + 2 decoded fill the 10 cells; the third generated token is returned, not decoded.
    expect(finished(events, 2)).toMatchObject(expectedGeneration([3, 1, 4, 1, 5, 9, 2, 6], 50, 10));
    expect((finished(events, 2) as { tokens: number[] }).tokens).toHaveLength(3);
  });

  it("streams tokens step by step, which add up to the finished list", () => {
    const scheduler = new DecodeScheduler(new FakeEngine());
    scheduler.translate({ requestId: 1, sequenceId: 0, maxTokens: 20, stream: true }, prompts[2] as number[]);
    const events = runToIdle(scheduler);
    const streamed = events.flatMap((event) => (event.kind === "tokens" ? event.tokens : []));
    expect(streamed).toEqual((finished(events, 1) as { tokens: number[] }).tokens);
    expect(streamed.length).toBeGreaterThan(1);
  });

  it("stops an aborted generation before the next decode, keeping what it produced", () => {
    const engine = new FakeEngine();
    const scheduler = new DecodeScheduler(engine);
    scheduler.translate({ requestId: 1, sequenceId: 0, maxTokens: 40, stream: false }, [2, 7]);
    scheduler.translate({ requestId: 2, sequenceId: 1, maxTokens: 40, stream: false }, [5, 6, 7]);
    // Step 1: prompt 0, then its first decode step; step 2: prompt 1, then both sequences' steps.
    scheduler.step();
    scheduler.step();
    scheduler.abort(1);
    const batchesBefore = engine.batches.length;
    scheduler.step();
    const events = runToIdle(scheduler);
    expect(finished(events, 1)).toMatchObject({ finishReason: "abort" });
    expect((finished(events, 1) as { tokens: number[] }).tokens).toEqual(
      expectedGeneration([2, 7], 40).tokens.slice(0, 3),
    );
    expect(engine.batches[batchesBefore]?.map((entry) => entry.sequenceId)).toEqual([1]);
    expect(finished(events, 2)).toMatchObject(expectedGeneration([5, 6, 7], 40));
    // An abort that comes after the end changes nothing, not even a later request with that id.
    scheduler.abort(2);
    scheduler.release(1);
    scheduler.translate({ requestId: 2, sequenceId: 1, maxTokens: 3, stream: false }, [9]);
    expect(finished(runToIdle(scheduler), 2)).toMatchObject(expectedGeneration([9], 3));
  });

  it("reports the engine's log-probability of a finished generation, read when it ends", () => {
    const engine = new FakeEngine();
    const scheduler = new DecodeScheduler(engine);
    scheduler.translate(
      { requestId: 1, sequenceId: 0, maxTokens: 3, stream: false, confidence: true },
      [5, 6],
    );
    scheduler.translate({ requestId: 2, sequenceId: 1, maxTokens: 3, stream: false }, [5, 6]);
    const events = runToIdle(scheduler);
    const done = finished(events, 1) as Extract<SchedulerEvent, { kind: "finished" }>;
    // The fake's sum is minus the sequence's history length: prompt plus the tokens decoded.
    expect(done.tokens.length).toBeGreaterThan(0);
    expect(done.logProbability).toBe(-engine.positionOf(0));
    // Asked for by the request alone: its outputs are scored, the other request's are not.
    expect(finished(events, 2)).toMatchObject({ logProbability: null });
    const scored = engine.batches.flat().filter((entry) => entry.scoreOutput);
    expect(scored.length).toBeGreaterThan(0);
    expect(scored.every((entry) => entry.sequenceId === 0)).toBe(true);
  });

  it("finishes requests aborted before they started with no tokens", () => {
    const engine = new FakeEngine();
    const scheduler = new DecodeScheduler(engine);
    scheduler.translate({ requestId: 1, sequenceId: 0, maxTokens: 5, stream: false, aborted: true }, [5, 6]);
    scheduler.prefill(2, 1, [5, 6], { views: [], entropy: false });
    runToIdle(scheduler);
    scheduler.continueFrom({ requestId: 3, sequenceId: 1, maxTokens: 5, stream: false, aborted: true });
    const events = [...scheduler.takeEvents(), ...runToIdle(scheduler)];
    expect(finished(events, 3)).toEqual({
      kind: "finished",
      requestId: 3,
      tokens: [],
      finishReason: "abort",
      logProbability: null,
    });
    expect(engine.batches).toEqual([]);
  });

  it("fails only the requests of a batch whose decode failed", () => {
    const engine = new FakeEngine();
    const scheduler = new DecodeScheduler(engine);
    scheduler.translate({ requestId: 1, sequenceId: 0, maxTokens: 5, stream: false }, [5, 6]);
    scheduler.prefill(2, 1, [7, 8], { views: [view], entropy: false });
    scheduler.step();
    engine.failNextBatch = true;
    scheduler.step();
    const events = scheduler.takeEvents();
    expect(events.find((event) => event.requestId === 1)).toMatchObject({ kind: "failed" });
    expect(events.find((event) => event.requestId === 2)).toMatchObject({ kind: "prefilled" });
    // The failed sequence can take a new request once released.
    scheduler.release(0);
    scheduler.translate({ requestId: 3, sequenceId: 0, maxTokens: 5, stream: false }, [5, 6]);
    expect(finished(runToIdle(scheduler), 3)).toMatchObject(expectedGeneration([5, 6], 5));
  });

  it("frees a held prefill on release and fails a running request released under it", () => {
    const engine = new FakeEngine();
    const scheduler = new DecodeScheduler(engine);
    scheduler.prefill(1, 0, [5, 6, 7], { views: [view], entropy: false });
    runToIdle(scheduler);
    scheduler.release(0);
    expect(engine.histories.has(0)).toBe(false);
    expect(() =>
      scheduler.continueFrom({ requestId: 2, sequenceId: 0, maxTokens: 5, stream: false }),
    ).toThrow(UsageError);
    scheduler.translate({ requestId: 3, sequenceId: 0, maxTokens: 30, stream: false }, [2, 7]);
    scheduler.step();
    scheduler.release(0);
    expect(scheduler.takeEvents().find((event) => event.requestId === 3)).toMatchObject({ kind: "failed" });
    expect(scheduler.hasWork()).toBe(false);
  });

  it("fails everything queued or running on failAll, and refuses two requests on one sequence", () => {
    const scheduler = new DecodeScheduler(new FakeEngine());
    scheduler.translate({ requestId: 1, sequenceId: 0, maxTokens: 30, stream: false }, [2, 7]);
    expect(() =>
      scheduler.translate({ requestId: 2, sequenceId: 0, maxTokens: 30, stream: false }, [2, 7]),
    ).toThrow(UsageError);
    scheduler.prefill(3, 1, [5], { views: [view], entropy: false });
    scheduler.step();
    scheduler.translate({ requestId: 4, sequenceId: 2, maxTokens: 30, stream: false }, [9, 9]);
    scheduler.takeEvents();
    scheduler.failAll(new UsageError("disposed"));
    const failed = scheduler.takeEvents().filter((event) => event.kind === "failed");
    expect(failed.map((event) => event.requestId).sort()).toEqual([1, 4]);
    expect(scheduler.hasWork()).toBe(false);
  });
});
