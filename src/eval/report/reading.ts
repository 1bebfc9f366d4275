/**
 * The plain-language reading of an evaluation: sentences generated from the summary's numbers,
 * saying plainly whether RouteLMT beats the best router-free baseline, how much headroom the gain
 * oracle shows, and what the streaming controller and the QE guard cost or deliver.
 */
import type { GuardTradeoff, RouterFindings } from "../router-findings.js";
import type { EvalSummary, PolicySummary } from "../run-eval.js";
import { entryAt } from "./budget-table.js";
import { formatBudget, formatCount, formatNumber, formatPercent } from "./format.js";

/** How a confidence interval of a difference sits relative to 0. */
export type IntervalVerdict = "above" | "below" | "includes-zero";

export function intervalVerdict(interval: { lo: number; hi: number }): IntervalVerdict {
  if (interval.lo > 0) return "above";
  if (interval.hi < 0) return "below";
  return "includes-zero";
}

function headlineBudget(summary: EvalSummary): number | undefined {
  const withInterval = summary.reported_budgets.filter((budget) => summary.ci[String(budget)] !== undefined);
  return withInterval.find((budget) => Math.abs(budget - 0.3) < 1e-9) ?? withInterval[0];
}

function meanDeltaAt(policy: PolicySummary | undefined, budget: number): number | null {
  return policy ? (entryAt(policy.curve, budget)?.mean_delta ?? null) : null;
}

function qualityAt(policy: PolicySummary | undefined, budget: number): number | null {
  return policy ? (entryAt(policy.curve, budget)?.quality ?? null) : null;
}

/**
 * RouteLMT against every ranking it should beat (each baseline and RouteLMT-Q) at every reported
 * budget: the differences with their intervals, and where one is not above 0. Null without them.
 */
function rivalsReading(summary: EvalSummary): string | null {
  const byPolicy = summary.ci_by_policy ?? {};
  const budgets = summary.reported_budgets.filter((budget) => byPolicy[String(budget)] !== undefined);
  const names = [...new Set(budgets.flatMap((budget) => Object.keys(byPolicy[String(budget)]!)))];
  if (names.length === 0) return null;
  const notAbove: string[] = [];
  const lines = names.map((name) => {
    const cells = budgets.flatMap((budget) => {
      const interval = byPolicy[String(budget)]![name];
      if (!interval) return [];
      if (intervalVerdict(interval) !== "above") notAbove.push(`${name} at ${formatBudget(budget)}`);
      return [
        `${formatBudget(budget)} ${signed(interval.diff)} [${formatNumber(interval.lo)}, ${formatNumber(interval.hi)}]`,
      ];
    });
    return `${name}: ${cells.join(", ")}`;
  });
  const verdict =
    notAbove.length === 0
      ? "the interval lies above 0 against every one at every reported budget"
      : `the interval does not lie above 0 against ${notAbove.join(", ")}`;
  return `RouteLMT's MeanDelta minus each other ranking's, with its 95 % CI — ${lines.join("; ")}: ${verdict}.`;
}

/** What the columns of the budget tables mean, in plain text (renderers escape it). */
export function measuresLegend(summary: Pick<EvalSummary, "severe_delta">): string {
  return `Quality: mean hybrid quality. MeanDelta: mean true gain of the routed segments. HitRate: share of them among the true top-⌊p·N⌋ by gain (a segment tied with the ⌊p·N⌋-th gain counts while that set has room). Severe loss: share of them with gain < −${formatNumber(summary.severe_delta)}. Realized: share routed in batch; streaming: one request at a time through the budget controller (none for a guard by vetoes or a --qe score, which allocates rather than scores).`;
}

/** Paragraphs of plain text (not escaped: renderers escape them). */
export function plainReading(summary: EvalSummary): string[] {
  const paragraphs: string[] = [];
  const router = summary.policies.routelmt;
  const oracle = summary.policies["oracle-gain"];
  const headline = headlineBudget(summary);

  if (summary.large_only <= summary.small_only) {
    paragraphs.push(
      `On this data the large model is not better on average: large only scores ${formatNumber(summary.large_only)} vs ${formatNumber(summary.small_only)} for small only (${summary.label_metric}), so any routing can only help through the segments where the large model is better.`,
    );
  }

  if (!router) {
    const why = summary.skipped.find((skip) => skip.name === "routelmt")?.reason;
    paragraphs.push(
      `RouteLMT was not evaluated${why ? ` (it ${why})` : ""}. This report compares the baselines and oracles only and says nothing about the router.`,
    );
  } else if (headline === undefined) {
    paragraphs.push(
      summary.reported_budgets.length === 0
        ? "None of the reported budgets (10, 20, 30, 50 %) is in the budget grid, so no confidence interval was computed."
        : "No router-free baseline was evaluated, so RouteLMT is compared with nothing but the oracles and no confidence interval was computed.",
    );
  } else {
    const interval = summary.ci[String(headline)]!;
    const verdict = intervalVerdict(interval);
    const range = `[${formatNumber(interval.lo)}, ${formatNumber(interval.hi)}]`;
    const conclusion =
      verdict === "above"
        ? `lies above 0, so on this data RouteLMT beats ${interval.vs} at this budget`
        : verdict === "below"
          ? `lies below 0, so on this data RouteLMT is worse than ${interval.vs} at this budget`
          : `includes 0, so on this data the router is not distinguishable from ${interval.vs}`;
    paragraphs.push(
      `At a ${formatBudget(headline)} budget RouteLMT routes segments whose mean gain is ${formatNumber(interval.routelmt_mean_delta)} vs ${formatNumber(interval.baseline_mean_delta)} for the best baseline (${interval.vs}); the 95 % CI of the difference ${range} ${conclusion}.`,
    );
    const verdicts = summary.reported_budgets
      .filter((budget) => summary.ci[String(budget)] !== undefined)
      .map((budget) => ({ budget, verdict: intervalVerdict(summary.ci[String(budget)]!) }));
    const wins = verdicts.filter((item) => item.verdict === "above").map((item) => formatBudget(item.budget));
    const others = verdicts
      .filter((item) => item.verdict !== "above")
      .map((item) => formatBudget(item.budget));
    const losses = verdicts
      .filter((item) => item.verdict === "below")
      .map((item) => formatBudget(item.budget));
    if (wins.length === 0) {
      paragraphs.push(
        `RouteLMT does NOT beat the best baseline at any reported budget (${others.join(", ")})${losses.length > 0 ? `; it is significantly worse at ${losses.join(", ")}` : ""}.`,
      );
    } else if (others.length === 0) {
      paragraphs.push(`RouteLMT beats the best baseline at every reported budget (${wins.join(", ")}).`);
    } else {
      paragraphs.push(
        `RouteLMT beats the best baseline at ${wins.join(", ")} but NOT at ${others.join(", ")}${losses.length > 0 ? ` (significantly worse at ${losses.join(", ")})` : ""}.`,
      );
    }
    const each = rivalsReading(summary);
    if (each !== null) paragraphs.push(each);
    const averaged = summary.reported_budgets
      .map((budget) => summary.ci[String(budget)])
      .find((item) => item?.baseline_seeds_averaged !== undefined);
    if (averaged) {
      paragraphs.push(
        `The ${averaged.vs} baseline averages ${averaged.baseline_seeds_averaged} seeds; against it the interval bounds are the means of the per-seed bootstrap bounds, which errs on the wide side.`,
      );
    }
  }

  if (oracle) {
    const budget =
      headline ??
      summary.reported_budgets.find((value) => Math.abs(value - 0.3) < 1e-9) ??
      summary.reported_budgets[0];
    if (budget !== undefined) {
      const routerPart = router
        ? `, RouteLMT reaches ${formatNumber(qualityAt(router, budget))} (mean gain ${formatNumber(meanDeltaAt(router, budget))})`
        : "";
      paragraphs.push(
        `The gain oracle shows the headroom: at ${formatBudget(budget)} it routes segments with mean gain ${formatNumber(meanDeltaAt(oracle, budget))} for a hybrid quality of ${formatNumber(qualityAt(oracle, budget))}${routerPart}; small only is ${formatNumber(summary.small_only)} and large only ${formatNumber(summary.large_only)}.`,
      );
    }
  }

  const baselines = Object.entries(summary.policies).filter(([, policy]) => policy.family === "baseline");
  const bestByApgr = baselines
    .filter(([, policy]) => policy.apgr !== null)
    .sort((a, b) => b[1].apgr! - a[1].apgr!)[0];
  if (router?.apgr !== null && router?.apgr !== undefined) {
    const baselinePart = bestByApgr
      ? ` vs ${formatPercent(bestByApgr[1].apgr)} for the best baseline by APGR (${bestByApgr[0]})`
      : "";
    const oraclePart = oracle?.apgr != null ? `; the gain oracle ${formatPercent(oracle.apgr)}` : "";
    paragraphs.push(
      `Over the whole budget range RouteLMT recovers on average ${formatPercent(router.apgr)} of the small-to-large quality gap (APGR; above 100 % means the hybrid beats large only)${baselinePart}${oraclePart}. Spearman correlation of its score with the true gain: ${formatNumber(router.spearman)}.`,
    );
  }

  const streamingBudget = headline ?? summary.reported_budgets[0];
  if (router && streamingBudget !== undefined) {
    const entry = entryAt(router.curve, streamingBudget);
    if (entry?.streaming) {
      paragraphs.push(
        `Streaming (one request at a time, budget controller started from the gain head's training quantiles): at a ${formatBudget(streamingBudget)} target the controller sent ${formatPercent(entry.streaming.realized)} of the segments to the large model, for a hybrid quality of ${formatNumber(entry.streaming.quality)} vs ${formatNumber(entry.quality)} in batch.`,
      );
    }
  }

  const guarded = summary.policies.guarded;
  if (
    guarded &&
    streamingBudget !== undefined &&
    !summary.router?.guard &&
    summary.router?.guarded_by !== "post-hoc"
  ) {
    const entry = entryAt(guarded.curve, streamingBudget);
    if (entry) {
      paragraphs.push(
        `The guarded router vetoed ${formatCount(entry.guarded)} candidates at ${formatBudget(streamingBudget)}, for a severe-loss rate of ${formatPercent(entry.severe_loss)}${router ? ` vs ${formatPercent(entryAt(router.curve, streamingBudget)?.severe_loss ?? null)} unguarded` : ""}.`,
      );
    }
  }
  paragraphs.push(...routerReading(summary));

  const qe = summary.policies["guarded-qe"];
  if (qe) {
    const budget = streamingBudget;
    const figures =
      budget !== undefined
        ? ` At ${formatBudget(budget)} it reaches a hybrid quality of ${formatNumber(qualityAt(qe, budget))} (mean gain ${formatNumber(meanDeltaAt(qe, budget))}).`
        : "";
    paragraphs.push(`Cost of guarded-qe: ${qe.cost ?? ""}${figures}`);
  }
  return paragraphs;
}

function signed(value: number): string {
  return `${value >= 0 ? "+" : "−"}${formatNumber(Math.abs(value))}`;
}

/** What the source-text blocks are, when the router reads them: a name alone would not say. */
function sourceBlocksNote(blocks: readonly string[]): string {
  const notes: string[] = [];
  if (blocks.includes("words"))
    notes.push(
      " The words block is the source text as a hashed bag of words (computed from the text, not read from the model): the gain here depends on which words a sentence holds, as when the small model never learned some of them.",
    );
  if (blocks.includes("length"))
    notes.push(
      " The length block is the source's length in words and characters (log scale), computed from the text: the gain here depends on how long a source is.",
    );
  return notes.join("");
}

/** The choice's bias-corrected worth, and whether it beats the default by more than resampling noise. */
function selectionEstimateNote(selection: NonNullable<RouterFindings["selection"]>): string {
  const estimate = selection.estimate;
  if (!estimate) return "";
  const against = estimate.versus_default;
  let verdict = "";
  if (against && selection.candidates > 1) {
    verdict =
      against.lo > 0
        ? " — the chosen view beats the default"
        : against.hi < 0
          ? " — below the default on resamples (the choice was noise)"
          : " — not distinguishable from the default";
  }
  const comparison = against
    ? `, against the default ${signed(against.diff)} [${formatNumber(against.lo)}, ${formatNumber(against.hi)}]${verdict}`
    : "";
  return ` That score is the best of ${selection.candidates} measured on the same folds, so it runs high; replaying the choice on bootstrap resamples of the training rows (bias-corrected cross-validation), choosing is worth ${formatNumber(estimate.score)} [${formatNumber(estimate.lo)}, ${formatNumber(estimate.hi)}]${comparison}.`;
}

/** What the router reads and why, whether more labels would help, and what its guard does here. */
export function routerReading(summary: EvalSummary): string[] {
  const findings = summary.router;
  if (!findings) return [];
  const paragraphs: string[] = [];
  const blocks = findings.blocks.join(" + ");
  const selection = findings.selection;
  if (selection) {
    const versus = selection.versus_default;
    const comparison =
      versus && selection.default
        ? ` against ${formatNumber(selection.default.score)} ± ${formatNumber(selection.default.score_se)} for the default (last:final, ridge), a paired difference of ${signed(versus.diff)} ± ${formatNumber(versus.se)}`
        : "";
    paragraphs.push(
      `Feature view: the router reads ${blocks} with a ${selection.chosen.probe} probe, chosen in training among ${selection.candidates} candidates by nested cross-validation: mean MeanDelta over the budgets ${selection.budgets.map(formatBudget).join(", ")} of ${formatNumber(selection.chosen.score)} ± ${formatNumber(selection.chosen.score_se)} on the training data${comparison}. The best score wins (a simpler candidate only where its out-of-fold predictions nearly copy the best one's).${selectionEstimateNote(selection)}${sourceBlocksNote(findings.blocks)}`,
    );
  } else {
    paragraphs.push(
      `Feature view: the router reads ${blocks} (trained without selection).${sourceBlocksNote(findings.blocks)}`,
    );
  }
  const curve = findings.learning_curve;
  if (curve) {
    const points = curve.points
      .map(
        (point) =>
          `${formatBudget(point.share)} of the labels (${point.rows} rows): ${formatNumber(point.mean_delta)} [${formatNumber(point.lo)}, ${formatNumber(point.hi)}]`,
      )
      .join("; ");
    paragraphs.push(`${curve.reading} Cross-validated mean MeanDelta by training size: ${points}.`);
  }
  const routelmt = summary.policies.routelmt;
  const guard = findings.guard;
  const guarded = summary.policies.guarded;
  const postHocGuarded = findings.guarded_by === "post-hoc";
  if (guard && routelmt && postHocGuarded) {
    paragraphs.push(
      `Guard: the in-model guard (predicted gain − λ · predicted P(gain < −${formatNumber(guard.risk_delta)}), nothing decoded first) ${guard.chosen_lambda === 0 ? `found no affordable λ (within ${formatPercent(guard.tolerance)} of RouteLMT's cross-validated MeanDelta at every budget) that cut the cross-validated severe losses by more than fold noise` : `has λ = ${formatNumber(guard.chosen_lambda)} (within ${formatPercent(guard.tolerance)} of RouteLMT's cross-validated MeanDelta at every budget)`}, and the router's guarded policy ranks by its post-hoc guard instead (ROUTER.json guarded_by): guarded ranks as guarded-qe, below.`,
      guardVerdict(guard, "the risk head does not find the segments the large model will ruin"),
    );
  } else if (guard && routelmt && guarded) {
    const { budget, mine, plain, chance, kept } = guardFigures(summary, guard, guarded);
    const how =
      guard.chosen_lambda === 0
        ? "λ = 0: in training no affordable λ cut the cross-validated severe losses by more than fold noise, so guarded ranks exactly as RouteLMT"
        : `λ = ${formatNumber(guard.chosen_lambda)}, the affordable λ (within ${formatPercent(guard.tolerance)} of RouteLMT's cross-validated MeanDelta at every budget) that cut cross-validated severe losses most`;
    paragraphs.push(
      `Guard: guarded ranks by predicted gain − λ · predicted P(gain < −${formatNumber(guard.risk_delta)}), ${how}. On this data at ${budget === undefined ? "–" : formatBudget(budget)} it routes ${formatPercent(mine?.severe_loss ?? null)} severe losses vs ${formatPercent(plain?.severe_loss ?? null)} for RouteLMT and ${formatPercent(chance?.severe_loss ?? null)} for random, keeping ${formatPercent(kept)} of RouteLMT's MeanDelta.`,
    );
    paragraphs.push(
      guardVerdict(guard, "the risk head does not find the segments the large model will ruin"),
    );
  }
  const qeGuard = findings.guard_qe;
  const qeGuarded = summary.policies["guarded-qe"];
  if (qeGuard && routelmt && qeGuarded) {
    const { budget, mine, plain, chance, kept } = guardFigures(summary, qeGuard, qeGuarded);
    const restacked = qeGuard.restack_inputs !== undefined;
    const how =
      qeGuard.chosen_lambda === 0
        ? restacked
          ? "λ = 0: no λ term on the re-estimate cut the cross-validated severe losses by more than fold noise"
          : "λ = 0: in training no affordable λ cut the cross-validated severe losses by more than fold noise, so guarded-qe ranks exactly as RouteLMT"
        : `λ = ${formatNumber(qeGuard.chosen_lambda)}, chosen in training as the guard's λ is`;
    const perBudget = qeGuard.budgets
      .map((value) => {
        const guardedEntry = entryAt(qeGuarded.curve, value);
        const plainEntry = entryAt(routelmt.curve, value);
        return `${formatBudget(value)}: ${formatPercent(guardedEntry?.severe_loss ?? null)} vs ${formatPercent(plainEntry?.severe_loss ?? null)}`;
      })
      .join("; ");
    const ranking =
      qeGuard.signal === "large-likelihood"
        ? "the large model's mean token log-probability of it (a stronger model's quality estimate of the small output, one large-model prefill per request: where the large model finds the small translation likely, routing has little to gain and much to lose)"
        : "its mean token log-probability (the small model's confidence in its own output: a confident small model has little to gain and much to lose from routing)";
    const gainText = restacked
      ? `the gain re-estimated after the decode (a ridge regression, fitted in training on out-of-fold predictions, of the gain on ${qeGuard.restack_inputs!.join(", ")}: what the decode makes known says when the prefill's prediction is too hopeful)`
      : "predicted gain";
    paragraphs.push(
      `Post-hoc guard${postHocGuarded ? " (the one the guarded policy ranks by)" : ""}: guarded-qe decodes the small model's translation first and ranks by ${gainText} − λ · ${ranking}, ${how}. On this data at ${budget === undefined ? "–" : formatBudget(budget)} it routes ${formatPercent(mine?.severe_loss ?? null)} severe losses vs ${formatPercent(plain?.severe_loss ?? null)} for RouteLMT and ${formatPercent(chance?.severe_loss ?? null)} for random, keeping ${formatPercent(kept)} of RouteLMT's MeanDelta (severe losses by budget, guarded-qe vs RouteLMT: ${perBudget}).`,
    );
    paragraphs.push(
      restacked
        ? restackVerdict(qeGuard, qeGuarded, routelmt)
        : guardVerdict(
            qeGuard,
            qeGuard.signal === "large-likelihood"
              ? "the large model's likelihood of the small translation does not find the segments the large model will ruin"
              : "the small model's confidence does not find the segments the large model will ruin",
          ),
    );
  }
  return paragraphs;
}

/** A guarded policy against RouteLMT and random at 30 % (else the guard's first budget). */
function guardFigures(summary: EvalSummary, guard: GuardTradeoff, guarded: PolicySummary) {
  const budget = guard.budgets.find((value) => Math.abs(value - 0.3) < 1e-9) ?? guard.budgets[0];
  const at = (policy: PolicySummary | undefined) =>
    budget === undefined || !policy ? undefined : entryAt(policy.curve, budget);
  const mine = at(guarded);
  const plain = at(summary.policies.routelmt);
  const chance = at(summary.policies.random);
  const kept = mine?.mean_delta != null && plain?.mean_delta ? mine.mean_delta / plain.mean_delta : null;
  return { budget, mine, plain, chance, kept };
}

/**
 * A guarded policy's figures at one budget against the unguarded ones: fewer severe losses at a
 * MeanDelta within `tolerance` of the unguarded MeanDelta (false where a figure is missing).
 */
function cutsWithinTolerance(
  tolerance: number,
  mine: { severe: number | null | undefined; delta: number | null | undefined },
  base: { severe: number | null | undefined; delta: number | null | undefined },
): boolean {
  if (mine.severe == null || base.severe == null || mine.delta == null || base.delta == null) return false;
  return mine.severe < base.severe && mine.delta >= base.delta - tolerance * Math.abs(base.delta);
}

/**
 * Whether guarded-qe on the re-estimated gain guards on this data: the budgets at which it routes
 * fewer severe losses than RouteLMT within the MeanDelta tolerance.
 */
function restackVerdict(
  guard: GuardTradeoff,
  guarded: EvalSummary["policies"][string],
  plain: EvalSummary["policies"][string],
): string {
  const figures = (policy: EvalSummary["policies"][string], budget: number) => {
    const entry = entryAt(policy.curve, budget);
    return { severe: entry?.severe_loss, delta: entry?.mean_delta };
  };
  const where = guard.budgets.filter((budget) =>
    cutsWithinTolerance(guard.tolerance, figures(guarded, budget), figures(plain, budget)),
  );
  return where.length === guard.budgets.length
    ? `On this data it cuts RouteLMT's severe losses within that MeanDelta tolerance at every reported budget.`
    : `On this data it cuts RouteLMT's severe losses within that MeanDelta tolerance at ${where.length === 0 ? "none" : where.map(formatBudget).join(", ")} of ${guard.budgets.map(formatBudget).join(", ")}.`;
}

/**
 * Whether any λ of the grid would have guarded on this data: a lower severe-loss rate than λ = 0 at
 * every reported budget while keeping MeanDelta within the training tolerance.
 */
function guardVerdict(guard: GuardTradeoff, failure: string): string {
  const base = guard.points[0];
  if (!base) return "";
  const figures = (point: GuardTradeoff["points"][number], column: number) => ({
    severe: point.severe_loss[column],
    delta: point.mean_delta[column],
  });
  const guardsAt = (point: GuardTradeoff["points"][number], column: number) =>
    cutsWithinTolerance(guard.tolerance, figures(point, column), figures(base, column));
  const helps = guard.points
    .slice(1)
    .filter((point) => guard.budgets.every((_, column) => guardsAt(point, column)));
  if (helps.length === 0) {
    // The λ in use may still guard at some budgets: say where, rather than that nothing can.
    const inUse = guard.points.find((point) => point.lambda === guard.chosen_lambda && point.lambda !== 0);
    const where = inUse ? guard.budgets.filter((_, column) => guardsAt(inUse, column)) : [];
    const partly =
      where.length > 0
        ? `; the λ in use cuts them within it at ${where.map(formatBudget).join(", ")} of ${guard.budgets.map(formatBudget).join(", ")}.`
        : `: ${failure}, so no weighting of it can guard.`;
    return `On this data no λ of the grid cuts severe losses at every reported budget within that MeanDelta tolerance (see the trade-off plot)${partly}`;
  }
  return `On this data ${helps.length} λ of the grid (from ${formatNumber(helps[0]!.lambda)}) cut severe losses at every reported budget within that MeanDelta tolerance (see the trade-off plot).`;
}
