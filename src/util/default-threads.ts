import { availableParallelism } from "node:os";

/**
 * Threads per in-process model when two models run side by side: half the cores, at least one. The
 * CLI and the server both default to it, so it lives below both.
 */
export function defaultThreadsPerModel(): number {
  return Math.max(1, Math.floor(availableParallelism() / 2));
}
