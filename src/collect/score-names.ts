import { UsageError } from "../errors/index.js";

/** One score a dataset keeps under `scores`, with what asked for it (a flag and its value). */
export interface NamedScore {
  name: string;
  /** Named in the refusal, e.g. `--extra-metric http:…#chrf`. */
  source: string;
}

/**
 * Refuses two scores under one name before anything runs. Records' `scores` and meta.json's
 * `metric_signatures` are keyed by name, so the later one would silently replace the earlier —
 * the label's included, leaving q_small, q_large and gain holding another metric's scores while
 * `label_metric` still names the first. `remedy` says how to rename one.
 */
export function refuseDuplicateScoreNames(scores: readonly NamedScore[], remedy: string): void {
  const firstByName = new Map<string, NamedScore>();
  for (const score of scores) {
    const first = firstByName.get(score.name);
    if (first) {
      throw new UsageError(
        `${first.source} and ${score.source} are both named ${JSON.stringify(score.name)}: scores are kept by name, so one would replace the other; ${remedy}`,
      );
    }
    firstByName.set(score.name, score);
  }
}
