import { describe, expect, it } from "vitest";
import { UsageError } from "../errors/index.js";
import { createRandom, normal } from "../stats/random.js";
import { maxLargeInAnyWindow, maxOverspendOfLongRuns } from "./budget-cap.js";
import { BudgetController, type RouteDecision } from "./budget-controller.js";

function largeLog(decisions: readonly RouteDecision[]): number[] {
  return decisions.map((decision) => (decision.target === "large" ? 1 : 0));
}

/** Whether the decisions keep the budget's guarantee: ≤ p·N in runs of N ≥ W, ≤ ⌊p·W⌋ in shorter ones. */
function keepsBudget(decisions: readonly RouteDecision[], budget: number, window: number): boolean {
  const log = largeLog(decisions);
  return (
    maxOverspendOfLongRuns(log, budget, window) <= 1e-9 &&
    maxLargeInAnyWindow(log, window) <= Math.floor(budget * window + 1e-9)
  );
}

function runStream(controller: BudgetController, scores: readonly number[]): RouteDecision[] {
  return scores.map((score) => controller.decide(score));
}

describe("BudgetController setup", () => {
  it("starts at the (1 − p) quantile of the training scores, given in any order", () => {
    const training = Array.from({ length: 101 }, (_, index) => 100 - index);
    expect(new BudgetController({ budget: 0.3, trainingScores: training }).threshold()).toBeCloseTo(70, 12);
    expect(new BudgetController({ budget: 0.25, trainingScores: [4, 1, 3, 2] }).threshold()).toBeCloseTo(
      3.25,
      12,
    );
  });

  it("prefers an explicit initial threshold", () => {
    const controller = new BudgetController({ budget: 0.3, trainingScores: [1, 2, 3], initialThreshold: 9 });
    expect(controller.threshold()).toBe(9);
  });

  it("computes the hard cap as ⌊p·W⌋, zero at p = 0", () => {
    expect(new BudgetController({ budget: 0.3, window: 10, initialThreshold: 0 }).cap).toBe(3);
    expect(new BudgetController({ budget: 0.7, window: 1000, initialThreshold: 0 }).cap).toBe(700);
    expect(new BudgetController({ budget: 0.25, window: 10, initialThreshold: 0 }).cap).toBe(2);
    expect(new BudgetController({ budget: 0, window: 10, initialThreshold: 0 }).cap).toBe(0);
    expect(new BudgetController({ budget: 1, window: 10, initialThreshold: 0 }).cap).toBe(10);
  });

  it("rejects bad settings", () => {
    expect(() => new BudgetController({ budget: 1.5, initialThreshold: 0 })).toThrow(UsageError);
    expect(() => new BudgetController({ budget: 0.2 })).toThrow(UsageError);
    expect(() => new BudgetController({ budget: 0.2, trainingScores: [Number.NaN] })).toThrow(UsageError);
    expect(() => new BudgetController({ budget: 0.2, initialThreshold: 0, window: 0 })).toThrow(UsageError);
    expect(() => new BudgetController({ budget: 0.2, initialThreshold: 0, adaptationGain: 0 })).toThrow(
      UsageError,
    );
  });
});

describe("BudgetController decisions", () => {
  it("routes at or above the threshold large and explains each decision", () => {
    const controller = new BudgetController({ budget: 0.5, window: 100, initialThreshold: 0.5 });
    const above = controller.decide(0.9);
    expect(above).toEqual({ target: "large", reason: "score-above-threshold", score: 0.9, threshold: 0.5 });
    const thresholdAfterFirst = controller.threshold();
    const below = controller.decide(-3);
    expect(below).toEqual({
      target: "small",
      reason: "score-below-threshold",
      score: -3,
      threshold: thresholdAfterFirst,
    });
    expect(controller.realizedFraction()).toBe(0.5);
    const atThreshold = new BudgetController({ budget: 0.5, window: 100, initialThreshold: 0.5 }).decide(0.5);
    expect(atThreshold.target).toBe("large");
  });

  it("raises the threshold after a large decision and lowers it after a small one", () => {
    const controller = new BudgetController({ budget: 0.2, trainingScores: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9] });
    const start = controller.threshold();
    controller.decide(100);
    const afterLarge = controller.threshold();
    expect(afterLarge).toBeGreaterThan(start);
    controller.decide(-100);
    expect(controller.threshold()).toBeLessThan(afterLarge);
  });

  it("recalibrates within tens of decisions when deployed scores sit far from the training ones", () => {
    const random = createRandom(3);
    // Training scores around 0; deployed scores around 5 with a tenth of the spread.
    const training = Array.from({ length: 500 }, () => normal(random));
    const fractionAfterTransient = (controller: BudgetController): number => {
      let large = 0;
      for (let index = 0; index < 400; index++) {
        const decision = controller.decide(5 + 0.1 * normal(random));
        if (index >= 100 && decision.target === "large") large++;
      }
      return large / 300;
    };
    for (const budget of [0.1, 0.3]) {
      const calibrated = fractionAfterTransient(new BudgetController({ budget, trainingScores: training }));
      expect(Math.abs(calibrated - budget)).toBeLessThan(0.05);
      // The tracker alone is still far off after the same decisions.
      const trackerOnly = fractionAfterTransient(
        new BudgetController({ budget, trainingScores: training, recalibration: false }),
      );
      expect(Math.abs(trackerOnly - budget)).toBeGreaterThan(0.05);
    }
  });

  it("sends invalid scores small without moving the threshold", () => {
    const controller = new BudgetController({ budget: 0.3, initialThreshold: 1 });
    for (const score of [Number.NaN, Number.POSITIVE_INFINITY]) {
      const decision = controller.decide(score);
      expect(decision.target).toBe("small");
      expect(decision.reason).toBe("invalid-score");
      expect(controller.threshold()).toBe(1);
    }
    expect(controller.snapshot().invalidScores).toBe(2);
  });

  it("never routes large at p = 0 and always at p = 1", () => {
    const none = new BudgetController({ budget: 0, window: 10, initialThreshold: -1e9 });
    expect(runStream(none, [5, 6, 7, Number.NaN]).every((decision) => decision.target === "small")).toBe(
      true,
    );
    expect(none.decide(1).reason).toBe("budget-cap");
    const all = new BudgetController({ budget: 1, window: 10, initialThreshold: 1e9 });
    expect(runStream(all, [5, -6, Number.NaN]).every((decision) => decision.reason === "full-budget")).toBe(
      true,
    );
    expect(all.realizedFraction()).toBe(1);
  });

  it("blocks exactly at the cap when every score passes", () => {
    // A gain this small keeps the threshold far below the scores, so only the cap limits large decisions.
    const controller = new BudgetController({
      budget: 0.3,
      window: 10,
      initialThreshold: -1e6,
      adaptationGain: 1e-9,
    });
    const decisions = runStream(
      controller,
      Array.from({ length: 40 }, () => 1),
    );
    expect(decisions.slice(0, 3).every((decision) => decision.target === "large")).toBe(true);
    expect(decisions[3]).toMatchObject({ target: "small", reason: "budget-cap" });
    expect(keepsBudget(decisions, 0.3, 10)).toBe(true);
    // The opening burst of 3, then groups of 3 a decision apart every 13: a run of N ≥ 10 holding
    // more than 0.3·N would otherwise form across a group and the next (⌊0.3 × 40⌋ = 12 is out of reach).
    expect(largeLog(decisions).join("")).toBe("1110000000000100100100000010010010000001");
    expect(controller.snapshot()).toMatchObject({ largeInWindow: 2, windowFilled: 10, capBlocked: 30 });
  });

  it("never breaks the cap on adversarial streams, checked on every window", () => {
    const random = createRandom(7);
    for (const [budget, window] of [
      [0.1, 20],
      [0.3, 7],
      [0.5, 50],
      [0.05, 100],
    ] as const) {
      const controller = new BudgetController({ budget, window, initialThreshold: 0, adaptationGain: 0.5 });
      // Bursts of high scores between quiet stretches try to push many large decisions together.
      const scores = Array.from({ length: 5000 }, (_, index) =>
        Math.floor(index / 37) % 3 === 0 ? 10 + random.nextFloat() : normal(random),
      );
      const decisions = runStream(controller, scores);
      expect(keepsBudget(decisions, budget, window)).toBe(true);
      expect(decisions.some((decision) => decision.reason === "budget-cap")).toBe(true);
    }
  });
});

describe("BudgetController tracking", () => {
  const scoreCount = 10_000;
  const window = 1000;

  function driftingScores(seed: number, meanAt: (step: number) => number, unit = 1): number[] {
    const random = createRandom(seed);
    return Array.from({ length: scoreCount }, (_, step) => (normal(random) + meanAt(step)) * unit);
  }

  function trainingScores(seed: number, unit = 1): number[] {
    const random = createRandom(seed);
    return Array.from({ length: 2000 }, () => normal(random) * unit);
  }

  const drifts: Record<string, (step: number) => number> = {
    "rising by 3 sd": (step) => (3 * step) / scoreCount,
    "falling by 3 sd": (step) => (-3 * step) / scoreCount,
    "falling by 6 sd": (step) => (-6 * step) / scoreCount,
  };

  for (const budget of [0.1, 0.3, 0.5]) {
    for (const [name, meanAt] of Object.entries(drifts)) {
      it(`keeps the realized fraction within 2 points of ${budget} with scores ${name}, cap never broken`, () => {
        const controller = new BudgetController({ budget, window, trainingScores: trainingScores(1) });
        const decisions = runStream(controller, driftingScores(2, meanAt));
        const realized = decisions.filter((decision) => decision.target === "large").length / scoreCount;
        expect(Math.abs(realized - budget)).toBeLessThanOrEqual(0.02);
        expect(keepsBudget(decisions, budget, window)).toBe(true);
        // The threshold followed the drift instead of leaving it to the cap: few decisions were blocked.
        expect(controller.snapshot().capBlocked).toBeLessThan(0.02 * scoreCount);
      });
    }
  }

  it("does not track a fixed threshold: without adaptation a falling drift starves the large model", () => {
    const fixed = new BudgetController({
      budget: 0.3,
      window,
      trainingScores: trainingScores(1),
      adaptationGain: 1e-12,
    });
    const decisions = runStream(fixed, driftingScores(2, drifts["falling by 3 sd"]!));
    const realized = decisions.filter((decision) => decision.target === "large").length / scoreCount;
    expect(realized).toBeLessThan(0.2);
  });

  it("routes by score, not at random: large decisions have higher scores", () => {
    const controller = new BudgetController({ budget: 0.3, window, trainingScores: trainingScores(1) });
    const scores = driftingScores(3, () => 0);
    const decisions = runStream(controller, scores);
    const ideal = 0.5244; // (1 − 0.3) quantile of the standard normal
    const agreeing = decisions.filter(
      (decision) => (decision.target === "large") === decision.score >= ideal,
    );
    expect(agreeing.length / scoreCount).toBeGreaterThan(0.95);
  });

  it("behaves the same whatever the score units", () => {
    const inUnits = new BudgetController({ budget: 0.3, window, trainingScores: trainingScores(1) });
    const inThousands = new BudgetController({
      budget: 0.3,
      window,
      trainingScores: trainingScores(1, 1000),
    });
    const targets = runStream(inUnits, driftingScores(4, drifts["falling by 3 sd"]!)).map((d) => d.target);
    const scaledTargets = runStream(inThousands, driftingScores(4, drifts["falling by 3 sd"]!, 1000)).map(
      (d) => d.target,
    );
    const differing = targets.filter((target, index) => target !== scaledTargets[index]).length;
    expect(differing).toBeLessThan(10);
  });

  it("recovers from a stale initial threshold", () => {
    const controller = new BudgetController({ budget: 0.3, window, initialThreshold: 50 });
    const decisions = runStream(
      controller,
      driftingScores(5, () => 0),
    );
    const lastWindow =
      decisions.slice(-window).filter((decision) => decision.target === "large").length / window;
    expect(Math.abs(lastWindow - 0.3)).toBeLessThanOrEqual(0.03);
  });

  it("is deterministic and reports consistent counters", () => {
    const first = new BudgetController({ budget: 0.3, window: 100, trainingScores: trainingScores(1) });
    const second = new BudgetController({ budget: 0.3, window: 100, trainingScores: trainingScores(1) });
    const scores = driftingScores(6, () => 0).slice(0, 500);
    expect(runStream(first, scores)).toEqual(runStream(second, scores));
    const snapshot = first.snapshot();
    expect(snapshot.decisions).toBe(500);
    expect(snapshot.windowFilled).toBe(100);
    expect(snapshot.realizedFraction).toBe(snapshot.largeInWindow / 100);
  });
});

describe("BudgetController with weights", () => {
  it("tracks p of the weight when heavy requests score higher, where a count of requests would overspend", () => {
    const random = createRandom(29);
    const training = Array.from({ length: 2000 }, () => normal(random));
    const budget = 0.2;
    const controller = new BudgetController({
      budget,
      window: 1000,
      trainingScores: training,
      weighted: true,
    });
    let largeWeight = 0;
    let totalWeight = 0;
    let largeCount = 0;
    const count = 20_000;
    for (let index = 0; index < count; index++) {
      const score = normal(random);
      // Requests of 10 to about 90 tokens; the longer, the higher their predicted gain.
      const weight = Math.max(10, 50 + 20 * score + 10 * normal(random));
      const decision = controller.decide(score, weight);
      totalWeight += weight;
      if (decision.target === "large") {
        largeWeight += weight;
        largeCount++;
      }
    }
    expect(largeWeight / totalWeight).toBeLessThanOrEqual(budget);
    expect(largeWeight / totalWeight).toBeGreaterThan(budget - 0.015);
    // Heavy requests pass first, so fewer than p of the requests carry p of the weight.
    expect(largeCount / count).toBeLessThan(budget - 0.03);
    expect(controller.snapshot().realizedFraction).toBeCloseTo(largeWeight / totalWeight, 1);
  });

  it("leaves the cap to another ledger when told to", () => {
    const controller = new BudgetController({
      budget: 0.5,
      window: 4,
      initialThreshold: 0,
      enforceCap: false,
    });
    const targets = [1, 1, 1, 1, 1, 1].map((score) => controller.decide(score).target);
    expect(targets).toEqual(["large", "large", "large", "large", "large", "large"]);
  });
});

describe("BudgetController fed the realized fraction", () => {
  it("aims its pass rate above p while the ledger realizes less, bounded, and back once it realizes p", () => {
    const controller = new BudgetController({
      budget: 0.2,
      window: 100,
      initialThreshold: 0,
      enforceCap: false,
    });
    // The ledger realizes 15 % for a long while: the threshold falls further than p alone would take it.
    const plain = new BudgetController({ budget: 0.2, window: 100, initialThreshold: 0, enforceCap: false });
    for (let index = 0; index < 2000; index++) {
      const score = (index % 100) / 100;
      controller.decide(score);
      plain.decide(score);
      controller.observeRealized(0.15);
    }
    // Scores 0, 0.01, …, 0.99 in turn: the bias, at most 0.25 × 0.2 = 5 points of pass rate, lowers
    // the threshold by about 0.05.
    const lowered = plain.threshold() - controller.threshold();
    expect(lowered).toBeGreaterThan(0.03);
    expect(lowered).toBeLessThan(0.08);
    // A surplus brings the bias back to nothing.
    for (let index = 0; index < 4000; index++) {
      const score = (index % 100) / 100;
      controller.decide(score);
      plain.decide(score);
      controller.observeRealized(0.25);
    }
    expect(Math.abs(controller.threshold() - plain.threshold())).toBeLessThan(0.01);
  });
});
