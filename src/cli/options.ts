import { availableParallelism } from "node:os";
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

/** Threads per in-process model when two models run side by side: half the cores, at least one. */
export function defaultThreadsPerModel(): number {
  return Math.max(1, Math.floor(availableParallelism() / 2));
}
