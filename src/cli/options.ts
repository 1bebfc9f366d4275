import { UsageError } from "../errors/index.js";

/** Parses a positive integer flag, naming the flag on error. */
export function positiveInteger(flag: string): (value: string) => number {
  return (value) => {
    const number = Number(value);
    if (!/^\d+$/.test(value.trim()) || !Number.isInteger(number) || number <= 0) {
      throw new UsageError(`${flag} must be a positive integer, got ${JSON.stringify(value)}`);
    }
    return number;
  };
}

/** Parses a finite number flag. */
export function finiteNumber(flag: string): (value: string) => number {
  return (value) => {
    const number = Number(value);
    if (value.trim() === "" || !Number.isFinite(number))
      throw new UsageError(`${flag} must be a number, got ${JSON.stringify(value)}`);
    return number;
  };
}

/** A flag's number that must be finite and at least 0 (a delta, a margin). */
export function nonNegativeNumber(flag: string): (value: string) => number {
  const parse = finiteNumber(flag);
  return (value) => {
    const number = parse(value);
    if (number < 0)
      throw new UsageError(`${flag} must be a non-negative number, got ${JSON.stringify(value)}`);
    return number;
  };
}

export { defaultThreadsPerModel } from "../util/default-threads.js";
