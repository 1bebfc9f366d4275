import { UsageError } from "../errors/index.js";

/** A generator of uniform numbers in [0, 1). */
export type RandomSource = () => number;

/**
 * Deterministic 32-bit generator (mulberry32): the same seed gives the same stream on every
 * platform, which is what reproducible bootstraps and shuffles need. Not for cryptography.
 *
 * Kept private to eval until the shared statistics module's generator exists; the two should be unified.
 * @param seed an integer; only its low 32 bits are used.
 */
export function seededRandom(seed: number): RandomSource {
  if (!Number.isInteger(seed)) throw new UsageError(`random seed must be an integer, got ${seed}`);
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let mixed = state;
    mixed = Math.imul(mixed ^ (mixed >>> 15), mixed | 1);
    mixed ^= mixed + Math.imul(mixed ^ (mixed >>> 7), mixed | 61);
    return ((mixed ^ (mixed >>> 14)) >>> 0) / 4294967296;
  };
}

/** Uniform integer in [0, bound). */
export function randomIndex(random: RandomSource, bound: number): number {
  return Math.floor(random() * bound);
}

/** A uniformly random permutation of 0..length−1 (Fisher–Yates). */
export function shuffledIndices(length: number, random: RandomSource): number[] {
  const indices = Array.from({ length }, (_, index) => index);
  for (let last = length - 1; last > 0; last--) {
    const pick = randomIndex(random, last + 1);
    [indices[last], indices[pick]] = [indices[pick]!, indices[last]!];
  }
  return indices;
}
