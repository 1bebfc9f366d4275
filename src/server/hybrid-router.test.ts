import { describe, expect, it } from "vitest";
import { EngineCallError, InputError } from "../errors/index.js";
import { fnv1a32, SOURCE_WORDS_DIM, sourceWordFeatures } from "../features/source-words.js";
import type { GainRestack, RestackInput } from "../probe/gain-restack.js";
import type { GuardReport } from "../probe/guard-choice.js";
import { PROBE_MODEL_FORMAT } from "../probe/probe-model.js";
import type { RouterFile, RouterHead } from "../probe/router-file.js";
import { createRandom } from "../stats/random.js";
import type {
  FeatureIdentity,
  Prefilled,
  ProbedTranslator,
  Translation,
  TranslationRequest,
  Translator,
} from "../translators/types.js";
import { maxLargeInAnyWindow, maxOverspendOfLongRuns } from "./decision-window.js";
import { ServerError } from "./errors.js";
import { guardThresholds, HybridRouter } from "./hybrid-router.js";

/** Text "g=<gain> q=<quality> r=<risk logit>" → features [gain, quality, risk logit] (defaults 0, 0, −5). */
function featuresOf(text: string): Float32Array {
  const value = (name: string, absent: number) =>
    Number(new RegExp(`${name}=(-?[\\d.]+)`).exec(text)?.[1] ?? absent);
  return Float32Array.from([value("g", 0), value("q", 0), value("r", -5)]);
}

function translation(text: string, model: string): Translation {
  return { text, model, promptTokens: 3, outputTokens: 2, ms: 1, finishReason: "stop" };
}

/** A small engine whose features are read from the text; records every call. */
function memorySmall(events: string[]): ProbedTranslator {
  const identity: FeatureIdentity = {
    fingerprint: "f",
    arch: "test",
    layer: "final",
    dim: 3,
    template: "{text}",
  };
  return {
    engine: "memory",
    modelId: "small",
    featureIdentity: identity,
    async translate(requests: TranslationRequest[]) {
      events.push(...requests.map((request) => `small.translate ${request.text}`));
      return requests.map((request) => translation(`small(${request.text})`, "small"));
    },
    async prefill(request: TranslationRequest): Promise<Prefilled> {
      events.push(`prefill ${request.text}`);
      return {
        features: featuresOf(request.text),
        entropy: null,
        promptTokens: 3,
        continue: async () => {
          events.push(`continue ${request.text}`);
          return translation(`small(${request.text})`, "small");
        },
        release: async () => {
          events.push(`release ${request.text}`);
        },
      };
    },
    async dispose() {},
  };
}

/** `memorySmall` whose translations report a confidence read from the text ("c=<mean log-probability>", default −1). */
function confidentSmall(events: string[]): ProbedTranslator {
  const plain = memorySmall(events);
  const confidenceOf = (text: string) => Number(/c=(-?[\d.]+)/.exec(text)?.[1] ?? -1);
  return {
    ...plain,
    reportsConfidence: true,
    async prefill(request) {
      const prefilled = await plain.prefill(request);
      return {
        ...prefilled,
        continue: async () => ({
          ...(await prefilled.continue()),
          meanLogProbability: confidenceOf(request.text),
        }),
      };
    },
  };
}

function memoryLarge(events: string[], fail = false): Translator {
  return {
    engine: "memory",
    modelId: "large",
    async translate(requests: TranslationRequest[]) {
      events.push(...requests.map((request) => `large ${request.text}`));
      if (fail) throw new EngineCallError("large", "HTTP 500", { status: 500 });
      return requests.map((request) => translation(`large(${request.text})`, "large"));
    },
    async dispose() {},
  };
}

function head(weights: number[], kind: "ridge" | "logistic", quantiles: number[]): RouterHead {
  return {
    model: { format: 1, kind, dim: 3, mean: [0, 0, 0], std: [1, 1, 1], weights, bias: 0, lambda: 1 },
    report: {
      target: "t",
      probe: kind,
      folds: 5,
      n: 101,
      cv_spearman: null,
      cv_pearson: null,
      cv_spearman_gain: null,
      cv_mse: null,
      lambda: 1,
    },
    score_quantiles: quantiles,
  };
}

/** Gain = feature 0 with training scores 0..100; quality = feature 1 with training scores 0..100; risk = σ(feature 2). */
function testRouter(): RouterFile {
  const percent = Array.from({ length: 101 }, (_, index) => index);
  return {
    format: 1,
    routelmt_version: "test",
    created: "",
    label_metric: "chrf",
    label_signature: null,
    label_higher_is_better: true,
    feature: { fingerprint: "f", arch: "test", layer: "final", dim: 3, template: "{text}", spec: null },
    src_lang: "en",
    tgt_lang: "de",
    language_pairs: [],
    training: { n: 101, datasets: [], seed: 0, folds: 5 },
    heads: {
      gain: head([1, 0, 0], "ridge", percent),
      quality: head([0, 1, 0], "ridge", percent),
      risk: head(
        [0, 0, 1],
        "logistic",
        percent.map((value) => value / 100),
      ),
    },
  };
}

/** A router's guard record: what serving reads of it is λ and the score quantiles. */
function guardOf(method: GuardReport["method"], lambda: number, quantiles: number[]): GuardReport {
  return {
    method,
    rule: "test",
    lambda,
    tolerance: 0.05,
    severe_delta: 10,
    budgets: [0.3],
    grid: [],
    score_quantiles: quantiles,
  };
}

function request(text: string): TranslationRequest {
  return { text, srcLang: "en", tgtLang: "de" };
}

function router(events: string[], options: Partial<ConstructorParameters<typeof HybridRouter>[0]> = {}) {
  return new HybridRouter({
    small: memorySmall(events),
    large: memoryLarge(events),
    smallName: "small-spec",
    largeName: "large-spec",
    router: testRouter(),
    budget: 0.3,
    window: 100,
    ...options,
  });
}

describe("guardThresholds", () => {
  it("takes the quality threshold from the quality head's training quantiles", () => {
    expect(guardThresholds(testRouter(), "guarded")).toEqual({ qualityPrediction: 90, riskProbability: 0.5 });
    expect(guardThresholds(testRouter(), "guarded", 0.755, 0.7)).toEqual({
      qualityPrediction: 75.5,
      riskProbability: 0.7,
    });
    expect(guardThresholds(testRouter(), "routelmt")).toEqual({});
  });
});

describe("HybridRouter", () => {
  it("routes a single request by the threshold: releases its prefill before the large call, else continues it", async () => {
    const events: string[] = [];
    const hybrid = router(events);
    // Starting threshold: the 70th percentile of 0..100 = 70.
    expect(hybrid.snapshot().threshold).toBe(70);
    const high = await hybrid.translate(request("g=95"));
    expect(high).toMatchObject({
      model: "large",
      translation: "large(g=95)",
      predictedGain: 95,
      fallback: false,
    });
    expect(events).toEqual(["prefill g=95", "release g=95", "large g=95"]);
    events.length = 0;
    const low = await hybrid.translate(request("g=10"));
    expect(low).toMatchObject({ model: "small", translation: "small(g=10)", fallback: false });
    expect(events).toEqual(["prefill g=10", "continue g=10"]);
    expect(Array.from(hybrid.decisionLog())).toEqual([1, 0]);
  });

  it("allocates exactly the top ⌊p·n⌋ of a batch, refilling slots the guards drop", async () => {
    const events: string[] = [];
    const texts = [50, 99, 10, 98, 97, 20, 96, 30, 40, 60].map((gain) => `g=${gain}`);
    const plain = await router(events).translateBatch(texts.map(request));
    expect(plain.map((item) => item.model === "large")).toEqual(
      texts.map((text) => ["g=99", "g=98", "g=97"].includes(text)),
    );
    // Guarded: g=99 has a high predicted quality (q ≥ 90), g=98 a high risk (σ(3) ≥ 0.5): g=96 and g=60 refill.
    const guardedTexts = texts.map((text) =>
      text === "g=99" ? "g=99 q=95" : text === "g=98" ? "g=98 r=3" : text,
    );
    const guarded = await router(events, { policy: "guarded" }).translateBatch(guardedTexts.map(request));
    expect(guarded.filter((item) => item.model === "large").map((item) => item.predictedGain)).toEqual([
      97, 96, 60,
    ]);
    expect(guarded.filter((item) => item.guarded).map((item) => item.predictedGain)).toEqual([99, 98]);
  });

  it("carries the unrouted fraction between batches: pairs at p = 0.3 route the better of three in ten", async () => {
    const events: string[] = [];
    const hybrid = router(events, { window: 1000 });
    const models: string[] = [];
    for (let batch = 0; batch < 10; batch++) {
      const answers = await hybrid.translateBatch([request(`g=${20 + batch}`), request(`g=${80 - batch}`)]);
      // The low-gain text of a pair never goes large.
      expect(answers[0]!.model).toBe("small");
      models.push(answers[1]!.model);
    }
    // Owed 0.6, 1.2 − 1, 0.8, 1.4 − 1, 1.0 − 1, …: six of twenty texts.
    expect(models).toEqual([
      "small",
      "large",
      "small",
      "large",
      "large",
      "small",
      "large",
      "small",
      "large",
      "large",
    ]);
  });

  it("with a risk-adjusted guard ranks and thresholds gain − λ·risk, starting from its quantiles", async () => {
    const events: string[] = [];
    const percent = Array.from({ length: 101 }, (_, index) => index);
    // λ = 100: a request with risk σ(3) ≈ 0.95 loses 95 points; the guarded score's quantiles are 0..100 shifted by −50.
    const guard = guardOf(
      "risk-adjusted",
      100,
      percent.map((value) => value - 50),
    );
    const guardedRouter = { ...testRouter(), guard };
    const hybrid = router(events, { policy: "guarded", router: guardedRouter });
    expect(hybrid.thresholds).toEqual({});
    // Starts at the 70th percentile of the guarded score: 20.
    expect(hybrid.snapshot().threshold).toBe(20);
    // Gain 95 and no risk (σ(−5) ≈ 0.0067): 95 − 0.67 passes; gain 95 at risk σ(3): 95 − 95.3 does not.
    expect(await hybrid.translate(request("g=95"))).toMatchObject({ model: "large", guarded: false });
    expect(await hybrid.translate(request("g=95 r=3"))).toMatchObject({ model: "small", guarded: true });
    // A batch routes the top ⌊0.3 · 10⌋ by the guarded score; the risky one the gain alone would route is guarded.
    const texts = [50, 99, 10, 98, 97, 20, 96, 30, 40, 60].map((gain) =>
      gain === 99 ? "g=99 r=3" : `g=${gain}`,
    );
    const batch = await router(events, { policy: "guarded", router: guardedRouter }).translateBatch(
      texts.map(request),
    );
    expect(batch.filter((item) => item.model === "large").map((item) => item.predictedGain)).toEqual([
      98, 97, 96,
    ]);
    expect(batch.filter((item) => item.guarded).map((item) => item.predictedGain)).toEqual([99]);
  });

  it("with guarded-qe decodes the small translation first and ranks by gain − λ·its confidence", async () => {
    const events: string[] = [];
    const small = confidentSmall(events);
    const percent = Array.from({ length: 101 }, (_, index) => index);
    // λ = 40: a typical confidence of −1 adds 40 points, a confident −0.1 only 4.
    const guardQe = guardOf(
      "qe-adjusted",
      40,
      percent.map((value) => value + 40),
    );
    const qeRouter = { ...testRouter(), guard_qe: guardQe };
    const hybrid = router(events, { policy: "guarded-qe", router: qeRouter, small });
    // Starts at the 70th percentile of the adjusted score: 110.
    expect(hybrid.snapshot().threshold).toBe(110);
    // Gain 95 at a typical confidence: 135 passes; the small translation was decoded first all the same.
    expect(await hybrid.translate(request("g=95"))).toMatchObject({ model: "large", guarded: false });
    expect(events).toEqual(["prefill g=95", "continue g=95", "release g=95", "large g=95"]);
    events.length = 0;
    // Gain 95 from a confident small model: 99 does not, and the answer is the decode already made.
    const deltas: string[] = [];
    const kept = await hybrid.translate(request("g=95 c=-0.1"), "text", {
      onText: (delta, source) => deltas.push(`${source.model}:${delta}`),
    });
    expect(kept).toMatchObject({ model: "small", translation: "small(g=95 c=-0.1)", guarded: true });
    expect(kept.stages.smallDecode).toBeGreaterThanOrEqual(0);
    expect(deltas).toEqual(["small:small(g=95 c=-0.1)"]);
    // One decode, no second one after the decision.
    expect(events).toEqual(["prefill g=95 c=-0.1", "continue g=95 c=-0.1"]);
    // A batch: every text decoded small first, then the top ⌊0.3 · 10⌋ by the adjusted score go large.
    const texts = [50, 99, 10, 98, 97, 20, 96, 30, 40, 60].map((gain) =>
      gain === 99 ? "g=99 c=-0.1" : `g=${gain}`,
    );
    events.length = 0;
    const batch = await router(events, { policy: "guarded-qe", router: qeRouter, small }).translateBatch(
      texts.map(request),
    );
    expect(batch.filter((item) => item.model === "large").map((item) => item.predictedGain)).toEqual([
      98, 97, 96,
    ]);
    expect(batch.filter((item) => item.guarded).map((item) => item.predictedGain)).toEqual([99]);
    expect(events.filter((event) => event.startsWith("continue"))).toHaveLength(10);
    expect(batch[1]).toMatchObject({ model: "small", translation: "small(g=99 c=-0.1)" });

    // The large engine failing, the fallback is the translation already decoded: no second decode.
    events.length = 0;
    const failing = router(events, {
      policy: "guarded-qe",
      router: qeRouter,
      small,
      large: memoryLarge(events, true),
      budget: 1,
    });
    const fellBack = await failing.translate(request("g=95"));
    expect(fellBack).toMatchObject({
      model: "small",
      translation: "small(g=95)",
      fallbackReason: "large-error",
    });
    expect(events).toEqual(["prefill g=95", "continue g=95", "release g=95", "large g=95"]);

    // Refused up front: a router without a post-hoc guard, or an engine that cannot report confidence.
    expect(() => router(events, { policy: "guarded-qe" })).toThrow(/needs a router with a post-hoc guard/);
    expect(() => router(events, { policy: "guarded-qe", router: qeRouter })).toThrow(
      /needs a small engine that reports its confidence/,
    );
  });

  it("with guarded serves the router's post-hoc guard as guarded-qe, or the in-model guard where the engines cannot", async () => {
    const events: string[] = [];
    const small = confidentSmall(events);
    const percent = Array.from({ length: 101 }, (_, index) => index);
    const qeRouter: RouterFile = {
      ...testRouter(),
      guard_qe: guardOf(
        "qe-adjusted",
        40,
        percent.map((value) => value + 40),
      ),
      guarded_by: "post-hoc",
    };
    const hybrid = router(events, { policy: "guarded", router: qeRouter, small });
    expect(hybrid.policy).toBe("guarded-qe");
    expect(hybrid.decodesSmallFirst).toBe(true);
    expect(hybrid.guardedNotice).toMatch(/guard is post-hoc .* decoded before the decision/);
    // Ranked by gain − λ · confidence: a confident small model keeps gain 95 small, as under guarded-qe.
    expect(await hybrid.translate(request("g=95 c=-0.1"))).toMatchObject({ model: "small", guarded: true });
    expect(events).toEqual(["prefill g=95 c=-0.1", "continue g=95 c=-0.1"]);
    // A small engine that reports no confidence cannot serve it: the in-model guard, said at start.
    const inModel = router(events, { policy: "guarded", router: qeRouter });
    expect(inModel.policy).toBe("guarded");
    expect(inModel.decodesSmallFirst).toBe(false);
    expect(inModel.guardedNotice).toMatch(/does not report; requests are ranked by the in-model guard/);
    // An in-model router (no guarded_by) is served as before, with no notice.
    const plain = router(events, {
      policy: "guarded",
      router: { ...qeRouter, guarded_by: "in-model" },
      small,
    });
    expect([plain.policy, plain.guardedNotice]).toEqual(["guarded", null]);
  });

  it("with guarded-qe on the large model's likelihood has the large model score each small translation first", async () => {
    const events: string[] = [];
    // The large model's likelihood of the small translation is read from it ("l=<value>", default −1);
    // "l=fail" makes the scoring call fail.
    const large: Translator = {
      ...memoryLarge(events),
      async scoreTranslation(_request: TranslationRequest, text: string) {
        // The score holds a large-engine place of the router it serves while it runs.
        events.push(`large.score ${text} (large places ${scoring.largeGate.depth})`);
        if (text.includes("l=fail")) throw new EngineCallError("large", "HTTP 500", { status: 500 });
        return Number(/l=(-?[\d.]+)/.exec(text)?.[1] ?? -1);
      },
    };
    const percent = Array.from({ length: 101 }, (_, index) => index);
    const guardQe = {
      ...guardOf(
        "qe-adjusted",
        40,
        percent.map((value) => value + 40),
      ),
      signal: "large-likelihood" as const,
    };
    const qeRouter = { ...testRouter(), guard_qe: guardQe };
    // The small engine need not report confidence: the large model gives the signal.
    const hybrid = router(events, { policy: "guarded-qe", router: qeRouter, large });
    let scoring = hybrid;
    expect(hybrid.qeScoredByLarge).toBe(true);
    const routed = await hybrid.translate(request("g=95"));
    expect(routed).toMatchObject({ model: "large", guarded: false });
    expect(routed.stages.qeScore).toBeGreaterThanOrEqual(0);
    expect(events).toEqual([
      "prefill g=95",
      "continue g=95",
      "large.score small(g=95) (large places 1)",
      "release g=95",
      "large g=95",
    ]);
    events.length = 0;
    // The large model finds the small translation likely: 95 + 4 stays below the threshold of 110.
    expect(await hybrid.translate(request("g=95 l=-0.1"))).toMatchObject({
      model: "small",
      translation: "small(g=95 l=-0.1)",
      guarded: true,
    });
    expect(events).toEqual([
      "prefill g=95 l=-0.1",
      "continue g=95 l=-0.1",
      "large.score small(g=95 l=-0.1) (large places 1)",
    ]);
    expect(hybrid.largeGate.depth).toBe(0);
    // A failed score ranks that request by its gain alone (95 < 110: kept) and does not fail it.
    events.length = 0;
    expect(await hybrid.translate(request("g=95 l=fail"))).toMatchObject({ model: "small" });
    expect(hybrid.largeGate.depth).toBe(0);
    // With every large-engine place taken the score is skipped, not queued past the bound: the
    // request ranks by its gain alone (105 < 110: kept, where the likelihood −3 would send it large).
    events.length = 0;
    const full = router(events, { policy: "guarded-qe", router: qeRouter, large, queueSize: 1 });
    scoring = full;
    expect(full.largeGate.tryAcquire()).toBe(true);
    expect(await full.translate(request("g=105 l=-3"))).toMatchObject({ model: "small" });
    expect(events).toEqual(["prefill g=105 l=-3", "continue g=105 l=-3"]);
    full.largeGate.release();
    events.length = 0;
    expect(await full.translate(request("g=105 l=-3"))).toMatchObject({ model: "large" });
    expect(events).toContain("large.score small(g=105 l=-3) (large places 1)");
    // A large engine that cannot score a given text is refused up front...
    expect(() => router(events, { policy: "guarded-qe", router: qeRouter })).toThrow(
      /ranks by the large model's likelihood of the small translation, which needs a large engine that scores/,
    );
    // ...unless training also measured the small model's confidence: then that guard ranks, and says so.
    const confidence = {
      signal: "small-confidence" as const,
      lambda: 20,
      mean_delta: [1],
      severe_loss: [0],
      score_quantiles: percent.map((value) => value + 20),
    };
    const bothRouter = {
      ...testRouter(),
      guard_qe: { ...guardQe, signal_choice: { rule: "test", candidates: [confidence] } },
    };
    const fallback = router(events, {
      policy: "guarded-qe",
      router: bothRouter,
      small: confidentSmall(events),
    });
    expect(fallback.qeNotice).toMatch(
      /ranks by the small model's confidence instead, the best guard training measured without it \(λ 20\.0\)/,
    );
    expect(fallback.qeScoredByLarge).toBe(false);
    // Its λ and start quantiles: threshold 90 at the 70th percentile; gain 95 at confidence −1 passes (115).
    expect(fallback.snapshot().threshold).toBe(90);
    expect(await fallback.translate(request("g=75 c=-0.1"))).toMatchObject({ model: "small", guarded: true });
    // At λ = 0 nothing is decoded or scored before the decision.
    const still = router(events, {
      policy: "guarded-qe",
      router: { ...testRouter(), guard_qe: { ...guardQe, lambda: 0, score_quantiles: percent } },
    });
    expect(still.qeScoredByLarge).toBe(false);
  });

  it("with guarded-qe at λ = 0 ranks by gain alone and decodes nothing before deciding", async () => {
    const events: string[] = [];
    const percent = Array.from({ length: 101 }, (_, index) => index);
    const qeRouter = { ...testRouter(), guard_qe: guardOf("qe-adjusted", 0, percent) };
    // An engine that cannot report confidence is fine: the policy does not need it.
    const hybrid = router(events, { policy: "guarded-qe", router: qeRouter });
    expect(hybrid.snapshot().threshold).toBe(70);
    expect(await hybrid.translate(request("g=95"))).toMatchObject({ model: "large", guarded: false });
    // Routed straight after the prefill, as under routelmt: no small decode it would then discard.
    expect(events).toEqual(["prefill g=95", "release g=95", "large g=95"]);
    events.length = 0;
    expect(await hybrid.translate(request("g=5"))).toMatchObject({ model: "small", guarded: false });
    expect(events).toEqual(["prefill g=5", "continue g=5"]);
  });

  it("with guarded-qe on the re-estimated gain ranks by what the decode made known, even at λ = 0", async () => {
    const events: string[] = [];
    const percent = Array.from({ length: 101 }, (_, index) => index);
    // Re-estimate = gain + 50 · the small model's confidence: −1 (typical) costs 50 points, −0.1 only 5.
    const restack: GainRestack = {
      inputs: ["gain", "small-confidence"],
      model: {
        format: PROBE_MODEL_FORMAT,
        kind: "ridge",
        dim: 2,
        mean: [0, 0],
        std: [1, 1],
        weights: [1, 50],
        bias: 0,
        lambda: 1,
      },
    };
    const qeRouter = { ...testRouter(), guard_qe: { ...guardOf("qe-adjusted", 0, percent), restack } };
    const hybrid = router(events, { policy: "guarded-qe", router: qeRouter, small: confidentSmall(events) });
    expect(hybrid.decodesSmallFirst).toBe(true);
    expect(hybrid.snapshot().threshold).toBe(70);
    // 95 − 5 = 90 passes; 95 − 50 = 45 does not, though its gain alone would have: guarded.
    expect(await hybrid.translate(request("g=95 c=-0.1"))).toMatchObject({ model: "large", guarded: false });
    expect(await hybrid.translate(request("g=95"))).toMatchObject({
      model: "small",
      translation: "small(g=95)",
      guarded: true,
    });
    expect(events.slice(-2)).toEqual(["prefill g=95", "continue g=95"]);
    // It reads the small model's confidence: an engine that cannot report it is refused.
    expect(() => router(events, { policy: "guarded-qe", router: qeRouter })).toThrow(
      /needs a small engine that reports its confidence/,
    );
    // A re-estimate reading the large model's likelihood, with a large engine that cannot score: the
    // router's candidate without it serves instead, and the notice says which.
    const withLarge = {
      ...qeRouter,
      guard_qe: {
        ...qeRouter.guard_qe,
        restack: { ...restack, inputs: ["gain", "large-likelihood"] as RestackInput[] },
        signal_choice: {
          rule: "test",
          candidates: [
            {
              signal: "small-confidence" as const,
              lambda: 0,
              mean_delta: [1],
              severe_loss: [0.05],
              score_quantiles: percent,
            },
            {
              signal: "small-confidence" as const,
              restack,
              restack_cut: { diff: 0.02, se: 0.005, taken: true },
              lambda: 0,
              mean_delta: [1],
              severe_loss: [0.03],
              score_quantiles: percent,
            },
          ],
        },
      },
    };
    const served = router(events, { policy: "guarded-qe", router: withLarge, small: confidentSmall(events) });
    expect(served.qeNotice).toMatch(/ranks by the gain re-estimated from gain, small-confidence instead/);
    expect(served.qeScoredByLarge).toBe(false);
    expect(await served.translate(request("g=95"))).toMatchObject({ model: "small", guarded: true });
  });

  it("never lets batches break the hard cap", async () => {
    const events: string[] = [];
    const hybrid = router(events, { budget: 0.5, window: 4 });
    for (let round = 0; round < 5; round++) {
      await hybrid.translateBatch(Array.from({ length: 10 }, (_, index) => request(`g=${90 + index}`)));
    }
    const log = hybrid.decisionLog();
    expect(log.length).toBe(50);
    // Each batch asks for ⌊0.5 · 10⌋ = 5; the cap allows ⌊0.5 · 4⌋ = 2 in any 4 and 0.5·N in any N ≥ 4.
    expect(maxLargeInAnyWindow(log, 4)).toBe(2);
    expect(maxOverspendOfLongRuns(log, 0.5, 4)).toBeLessThanOrEqual(1e-9);
  });

  it("never spends more than p·N of any N ≥ W decisions, over thousands of requests at several budgets", async () => {
    const random = createRandom(23);
    for (const [budget, window] of [
      [0.05, 1000],
      [0.2, 1000],
      [0.5, 250],
    ] as const) {
      const hybrid = router([], { budget, window });
      // Gains uniform on the training range, with bursts of high gains that push against the cap.
      const gainAt = (index: number) =>
        Math.floor(index / 97) % 4 === 0 ? 90 + 10 * random.nextFloat() : 100 * random.nextFloat();
      for (let start = 0; start < 3000; start += 50) {
        await Promise.all(
          Array.from({ length: 50 }, (_, offset) =>
            hybrid.translate(request(`g=${gainAt(start + offset).toFixed(3)}`)),
          ),
        );
      }
      const log = hybrid.decisionLog();
      expect(log.length).toBe(3000);
      expect(maxOverspendOfLongRuns(log, budget, window)).toBeLessThanOrEqual(1e-9);
      expect(maxLargeInAnyWindow(log, window)).toBeLessThanOrEqual(Math.floor(budget * window + 1e-9));
      const realized = log.reduce((sum, value) => sum + value, 0) / log.length;
      expect(realized).toBeLessThanOrEqual(budget);
      // Bursts lift the threshold and the quiet stretch after one is not made up, so the realized
      // fraction stays below p (0.045, 0.184, 0.419 here); it must not collapse.
      expect(realized).toBeGreaterThan(0.8 * budget);
    }
  });

  it("aborts running engine calls at the shutdown deadline: 503, no fallback, small engine still healthy", async () => {
    const events: string[] = [];
    /** Waits for the abort of the call's signal, as a remote engine's fetch does. */
    const untilAborted = (signal: AbortSignal | undefined) =>
      new Promise<never>((_, reject) => signal?.addEventListener("abort", () => reject(signal.reason)));
    const large: Translator = {
      ...memoryLarge(events),
      translate: (_requests, options) => untilAborted(options?.signal),
    };
    const small = memorySmall(events);
    const prefill = small.prefill.bind(small);
    small.prefill = async (request, options) =>
      request.text.startsWith("slow") ? untilAborted(options?.signal) : prefill(request, options);
    const hybrid = router(events, { large, small, budget: 1 });
    const routedLarge = hybrid.translate(request("g=99"));
    const stuckInPrefill = hybrid.translate(request("slow g=1"));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(hybrid.inFlight).toBe(2);
    hybrid.abortInFlight();
    for (const outcome of await Promise.allSettled([routedLarge, stuckInPrefill])) {
      expect(outcome).toMatchObject({
        status: "rejected",
        reason: { status: 503, code: "RLMT_ERR_SHUTTING_DOWN", retryAfterSeconds: 1 },
      });
    }
    expect(events.filter((event) => event.startsWith("continue"))).toEqual([]);
    expect(hybrid.inFlight).toBe(0);
    expect(hybrid.snapshot().smallHealthy).toBe(true);
    await expect(hybrid.translate(request("g=5"))).rejects.toMatchObject({ code: "RLMT_ERR_SHUTTING_DOWN" });
  });

  it("names the field of a text the small engine refuses: texts.N in a batch, the caller's field otherwise", async () => {
    const events: string[] = [];
    const small = memorySmall(events);
    const prefill = small.prefill.bind(small);
    const tooLong = () =>
      new InputError("prompt of 300 tokens plus maxTokens 4 exceeds the context size 256");
    small.prefill = async (request, options) => {
      if (request.text.includes("overflow")) throw tooLong();
      const prefilled = await prefill(request, options);
      return request.text.includes("late")
        ? {
            ...prefilled,
            continue: async () => {
              throw tooLong();
            },
          }
        : prefilled;
    };
    const hybrid = router(events, { small, budget: 0 });
    await expect(
      hybrid.translateBatch([request("a"), request("b"), request("overflow")]),
    ).rejects.toMatchObject({
      status: 400,
      code: "RLMT_ERR_INVALID_REQUEST",
      field: "texts.2",
    });
    await expect(hybrid.translate(request("overflow"), "messages.3.content")).rejects.toMatchObject({
      field: "messages.3.content",
    });
    // Refused when decoding rather than at the prefill: the same field.
    await expect(hybrid.translate(request("late"), "messages.1.content")).rejects.toMatchObject({
      field: "messages.1.content",
    });
    await expect(hybrid.translate(request("late"))).rejects.toMatchObject({ field: "text" });
    expect(hybrid.snapshot().smallHealthy).toBe(true);
  });

  it("falls back to a fresh small translation when the large engine fails", async () => {
    const events: string[] = [];
    const hybrid = router(events, { large: memoryLarge(events, true), budget: 1 });
    const result = await hybrid.translate(request("g=80"));
    expect(result).toMatchObject({ model: "small", fallback: true, fallbackReason: "large-error" });
    expect(events).toEqual([
      "prefill g=80",
      "release g=80",
      "large g=80",
      "prefill g=80",
      "continue g=80",
      "release g=80",
    ]);
    expect(result.stages.fallbackDecode).toBeGreaterThanOrEqual(0);
  });

  it("refuses work beyond the small engine's queue with a 429", async () => {
    const events: string[] = [];
    const hybrid = router(events, { queueSize: 2 });
    await expect(hybrid.translateBatch([request("a"), request("b"), request("c")])).rejects.toMatchObject({
      status: 429,
      retryAfterSeconds: 1,
    });
    expect(await hybrid.translateBatch([request("a"), request("b")])).toHaveLength(2);
    expect(hybrid.smallGate.depth).toBe(0);
  });

  it("turns a small-engine failure into a 503 naming the engine", async () => {
    const events: string[] = [];
    const small = memorySmall(events);
    small.prefill = async () => {
      throw new EngineCallError("small-spec", "connection refused");
    };
    const hybrid = router(events, { small });
    const failure = await hybrid.translate(request("x")).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(ServerError);
    expect(failure).toMatchObject({ status: 503, code: "RLMT_ERR_SMALL_ENGINE_UNAVAILABLE" });
    expect((failure as Error).message).toMatch(/^small engine small-spec failed/);
    expect(hybrid.snapshot().smallHealthy).toBe(false);
  });

  it("reads a words router's block from each request's text, after the model's values", async () => {
    const zebra = fnv1a32(new TextEncoder().encode("zebra")) % SOURCE_WORDS_DIM;
    const dim = 3 + SOURCE_WORDS_DIM;
    // Gain = feature 0 (from the model) + 100 × the words block's "zebra" bucket.
    const weights = new Array<number>(dim).fill(0);
    weights[0] = 1;
    weights[3 + zebra] = 100;
    const base = testRouter();
    const wordsRouter: RouterFile = {
      ...base,
      feature: { ...base.feature, layer: "last:final,words", dim, blocks: ["last:final", "words"] },
      heads: {
        gain: {
          ...base.heads.gain!,
          model: {
            format: 1,
            kind: "ridge",
            dim,
            mean: new Array<number>(dim).fill(0),
            std: new Array<number>(dim).fill(1),
            weights,
            bias: 0,
            lambda: 1,
          },
        },
      },
    };
    const hybrid = router([], { router: wordsRouter, budget: 0.5 });
    const texts = ["g=5 a zebra", "g=5 a horse", "g=7 Zebra!"];
    const expected = texts.map((text) => featuresOf(text)[0]! + 100 * sourceWordFeatures(text)[zebra]!);
    expect(expected[0]).toBeCloseTo(5 + 100 / Math.sqrt(4), 5);
    expect(expected[1]).toBe(5);
    const one = await hybrid.translate(request(texts[0]!));
    expect(one.predictedGain).toBeCloseTo(expected[0]!, 5);
    const batch = await hybrid.translateBatch(texts.map(request));
    for (const [index, item] of batch.entries()) expect(item.predictedGain).toBeCloseTo(expected[index]!, 5);
  });
});
