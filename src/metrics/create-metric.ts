import { UsageError } from "../errors/index.js";
import { createBleuMetric } from "./bleu.js";
import { CHRF_PLUS_PLUS_WORD_ORDER, createChrfMetric } from "./chrf.js";
import { createHttpMetric } from "./http-metric.js";
import type { SegmentMetric } from "./segment-metric.js";

/**
 * A metric from its command-line spec: `chrf`, `chrf++`, `bleu` (sentence level, sacreBLEU
 * defaults), or `http:<URL>[#<name>]` for a neural metric served elsewhere (the name, default
 * `http`, keys its scores in the dataset).
 */
export function createMetric(spec: string): SegmentMetric {
  switch (spec) {
    case "chrf":
      return createChrfMetric();
    case "chrf++":
      return createChrfMetric({ wordOrder: CHRF_PLUS_PLUS_WORD_ORDER });
    case "bleu":
      return createBleuMetric();
  }
  if (spec.startsWith("http:")) {
    const rest = spec.slice("http:".length);
    const hash = rest.lastIndexOf("#");
    const url = hash === -1 ? rest : rest.slice(0, hash);
    const name = hash === -1 ? "http" : rest.slice(hash + 1);
    try {
      new URL(url);
    } catch {
      throw new UsageError(
        `metric ${JSON.stringify(spec)}: ${JSON.stringify(url)} is not a URL (expected http:<URL>[#<name>])`,
      );
    }
    if (!/^[A-Za-z0-9_.+-]+$/.test(name))
      throw new UsageError(`metric ${JSON.stringify(spec)}: bad name ${JSON.stringify(name)}`);
    return createHttpMetric({ url, name });
  }
  throw new UsageError(
    `unknown metric ${JSON.stringify(spec)}: expected chrf, chrf++, bleu or http:<URL>[#<name>]`,
  );
}
