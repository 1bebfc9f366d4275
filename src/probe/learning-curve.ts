/**
 * "Do I need more labels?": the chosen probe's cross-validated MeanDelta when trained on 25, 50 and
 * 100 % of each outer training set (measured on the whole outer fold, so the points are paired fold
 * by fold), with 95 % intervals over the folds, and a plain verdict on the last doubling.
 *
 * The rule: the curve still rises when going from 50 % to 100 % of the labels added at least
 * {@link RISING_THRESHOLD} (2 %) of the 100 % MeanDelta and more than one standard error of that
 * paired difference; it is flat when even one standard error above the observed difference stays
 * under 2 %; otherwise the folds cannot tell.
 */
import { foldInterval, standardError } from "./probe-selection.js";

/** Relative MeanDelta gain per doubling of the labels that counts as "still rising". */
export const RISING_THRESHOLD = 0.02;
export const LEARNING_CURVE_SHARES: readonly number[] = [0.25, 0.5, 1];

export interface LearningCurvePoint {
  /** Share of each outer training set used. */
  share: number;
  /** Training rows at this share (mean over outer folds). */
  rows: number;
  /** Mean over outer folds of the mean MeanDelta@p over the budgets, with a 95 % interval over folds. */
  mean_delta: number;
  lo: number;
  hi: number;
}

export type LearningCurveVerdict = "rising" | "flat" | "uncertain";

export interface LearningCurveReport {
  budgets: number[];
  points: LearningCurvePoint[];
  /** 100 % minus 50 %, paired over folds: mean, standard error, and relative to the 100 % value. */
  last_doubling: { diff: number; se: number; relative: number };
  threshold: number;
  verdict: LearningCurveVerdict;
  /** The verdict in one sentence. */
  reading: string;
  seconds: number;
}

/** The verdict of the rule above from the paired per-fold scores at 50 % and 100 %. */
export function learningCurveVerdict(
  half: ArrayLike<number>,
  full: ArrayLike<number>,
  threshold = RISING_THRESHOLD,
): { verdict: LearningCurveVerdict; diff: number; se: number; relative: number } {
  const differences = Float64Array.from({ length: full.length }, (_, fold) => full[fold]! - half[fold]!);
  const diff = differences.reduce((sum, value) => sum + value, 0) / differences.length;
  const se = standardError(differences);
  const level = Array.from(full).reduce((sum, value) => sum + value, 0) / full.length;
  const needed = threshold * Math.abs(level);
  const relative = level === 0 ? 0 : diff / Math.abs(level);
  let verdict: LearningCurveVerdict = "uncertain";
  if (diff >= needed && diff - se > 0) verdict = "rising";
  else if (diff + se < needed) verdict = "flat";
  return { verdict, diff, se, relative };
}

function percent(value: number): string {
  return `${(100 * value).toFixed(1)} %`;
}

/** The sentence a report shows for a verdict. */
export function learningCurveReading(report: Omit<LearningCurveReport, "reading" | "seconds">): string {
  const { diff, se, relative } = report.last_doubling;
  const step = `going from 50 % to 100 % of the labels changed the cross-validated MeanDelta by ${diff.toFixed(2)} ± ${se.toFixed(2)} (${percent(relative)})`;
  const rule = `the rule: rising when a doubling adds at least ${percent(report.threshold)} and more than one standard error`;
  if (report.verdict === "rising")
    return `More labels would likely help: ${step}, and the curve is still rising (${rule}).`;
  if (report.verdict === "flat")
    return `More labels are unlikely to help much: ${step}, under ${percent(report.threshold)} even at one standard error above (${rule}).`;
  return `The folds cannot tell whether more labels would help: ${step}, within the noise of the folds (${rule}).`;
}

/**
 * Measures the curve with `measureOnShare` (per-fold scores at a share of the training rows) and
 * applies the rule.
 */
export function measureLearningCurve(
  measureOnShare: (share: number) => Float64Array,
  options: { budgets: readonly number[]; trainingRows: number; shares?: readonly number[] },
): LearningCurveReport {
  const started = performance.now();
  const shares = options.shares ?? LEARNING_CURVE_SHARES;
  if (!shares.includes(0.5) || !shares.includes(1))
    throw new Error("a learning curve needs the 50 % and 100 % points");
  const byShare = new Map(shares.map((share) => [share, measureOnShare(share)]));
  const points = shares.map((share) => {
    const interval = foldInterval(byShare.get(share)!);
    return {
      share,
      rows: Math.round(share * options.trainingRows),
      mean_delta: interval.mean,
      lo: interval.lo,
      hi: interval.hi,
    };
  });
  const { verdict, diff, se, relative } = learningCurveVerdict(byShare.get(0.5)!, byShare.get(1)!);
  const report = {
    budgets: [...options.budgets],
    points,
    last_doubling: { diff, se, relative },
    threshold: RISING_THRESHOLD,
    verdict,
  };
  return { ...report, reading: learningCurveReading(report), seconds: (performance.now() - started) / 1000 };
}
