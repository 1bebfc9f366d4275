import { UsageError } from "../../errors/index.js";

/**
 * Wraps a string function with a least-recently-used cache of at most `maxEntries` results, so
 * references tokenised again and again (one corpus, many systems) cost one tokenisation.
 */
export function memoizeBounded(
  compute: (input: string) => string,
  maxEntries: number,
): (input: string) => string {
  if (!Number.isInteger(maxEntries) || maxEntries < 1) {
    throw new UsageError(`maxEntries must be a positive integer, got ${maxEntries}`);
  }
  const cache = new Map<string, string>();
  return (input: string): string => {
    const cached = cache.get(input);
    if (cached !== undefined) {
      // re-insert so Map order stays least-recently-used first
      cache.delete(input);
      cache.set(input, cached);
      return cached;
    }
    const result = compute(input);
    if (cache.size >= maxEntries) cache.delete(cache.keys().next().value!);
    cache.set(input, result);
    return result;
  };
}
