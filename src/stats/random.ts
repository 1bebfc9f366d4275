/**
 * Seeded pseudo-random numbers, so that fold splits, initialisations and synthetic data are
 * reproducible: the same seed gives the same stream on every platform.
 *
 * The generator is xoshiro128** (Blackman & Vigna, period 2^128 − 1) with its 128-bit state
 * expanded from a 32-bit seed by splitmix32, the seeding recommended by its authors.
 */

/** A stream of uniform random numbers. */
export interface Random {
  /** The next uniform integer in [0, 2^32). */
  nextUint32(): number;
  /** The next uniform float in [0, 1) with 53 random bits. */
  nextFloat(): number;
}

/** One splitmix32 step: advances `state` and returns a well-mixed 32-bit output. */
function splitmix32(state: { value: number }): number {
  state.value = (state.value + 0x9e3779b9) | 0;
  let mixed = state.value;
  mixed = Math.imul(mixed ^ (mixed >>> 16), 0x85ebca6b);
  mixed = Math.imul(mixed ^ (mixed >>> 13), 0xc2b2ae35);
  return (mixed ^ (mixed >>> 16)) >>> 0;
}

const TWO_POW_MINUS_53 = 2 ** -53;

/**
 * A xoshiro128** generator seeded with `seed` (any number; only its low 32 bits count, so
 * 1 and 2^32 + 1 give the same stream).
 */
export function createRandom(seed: number): Random {
  const seedState = { value: seed | 0 };
  return createXoshiro128([
    splitmix32(seedState),
    splitmix32(seedState),
    splitmix32(seedState),
    splitmix32(seedState),
  ]);
}

/**
 * A xoshiro128** generator started from an explicit 128-bit state (four 32-bit words), for
 * reproducing reference streams; most callers want {@link createRandom}.
 */
export function createXoshiro128(state: readonly [number, number, number, number]): Random {
  let [s0, s1, s2, s3] = state.map((word) => word >>> 0) as [number, number, number, number];
  if ((s0 | s1 | s2 | s3) === 0) s0 = 1; // the all-zero state is a fixed point

  const nextUint32 = (): number => {
    const times5 = Math.imul(s1, 5);
    const result = Math.imul((times5 << 7) | (times5 >>> 25), 9) >>> 0;
    const shifted = s1 << 9;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 ^= shifted;
    s3 = (s3 << 11) | (s3 >>> 21);
    return result;
  };
  const nextFloat = (): number => {
    // 26 + 27 bits, the same construction as numpy's and V8's 53-bit doubles.
    const high = nextUint32() >>> 6;
    const low = nextUint32() >>> 5;
    return (high * 2 ** 27 + low) * TWO_POW_MINUS_53;
  };
  return { nextUint32, nextFloat };
}

/** A uniform integer in [0, bound) without modulo bias (rejection sampling). `bound` ≤ 2^32. */
export function randomInt(random: Random, bound: number): number {
  if (!Number.isInteger(bound) || bound <= 0 || bound > 2 ** 32) {
    throw new RangeError(`randomInt bound must be an integer in [1, 2^32], got ${bound}`);
  }
  // Values at or above `limit` would make the low residues more likely; draw again instead.
  const limit = 2 ** 32 - (2 ** 32 % bound);
  for (;;) {
    const value = random.nextUint32();
    if (value < limit) return value % bound;
  }
}

/** Anything indexable and writable: plain arrays and every typed array. */
export interface MutableSequence<T> {
  length: number;
  [index: number]: T;
}

/** Shuffles `items` in place (Fisher–Yates) and returns it. */
export function shuffle<T, S extends MutableSequence<T>>(items: S, random: Random): S {
  for (let index = items.length - 1; index > 0; index--) {
    const other = randomInt(random, index + 1);
    const kept = items[index]!;
    items[index] = items[other]!;
    items[other] = kept;
  }
  return items;
}

/** A random permutation of 0…n−1. */
export function permutation(count: number, random: Random): Int32Array {
  const order = new Int32Array(count);
  for (let index = 0; index < count; index++) order[index] = index;
  return shuffle<number, Int32Array>(order, random);
}

/**
 * A normal deviate by the Box–Muller transform (one of the pair is discarded so that the call
 * has no hidden state). Defaults: `mean = 0`, `std = 1`.
 */
export function normal(random: Random, mean = 0, std = 1): number {
  // 1 − u lies in (0, 1], so the logarithm is finite.
  const radius = Math.sqrt(-2 * Math.log(1 - random.nextFloat()));
  return mean + std * radius * Math.cos(2 * Math.PI * random.nextFloat());
}

/** Fills `target` with normal deviates, using both values of each Box–Muller pair. */
export function fillNormal(target: Float32Array | Float64Array, random: Random, mean = 0, std = 1): void {
  for (let index = 0; index < target.length; index += 2) {
    const radius = Math.sqrt(-2 * Math.log(1 - random.nextFloat()));
    const angle = 2 * Math.PI * random.nextFloat();
    target[index] = mean + std * radius * Math.cos(angle);
    if (index + 1 < target.length) target[index + 1] = mean + std * radius * Math.sin(angle);
  }
}
