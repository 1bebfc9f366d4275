/**
 * routelmt's public API. Each layer's `index.ts` is its public face; this file re-exports them.
 */
export * from "./errors/index.js";
export * from "./metrics/index.js";
export { VERSION } from "./version.js";
