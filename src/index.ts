/**
 * routelmt's public API. Each layer's `index.ts` is its public face; this file re-exports them in
 * pipeline order: metrics → translators/features → collect/dataset → probe → routing → eval.
 */
export * from "./collect/index.js";
export * from "./dataset/index.js";
export * from "./errors/index.js";
export * from "./eval/index.js";
export * from "./metrics/index.js";
export * from "./probe/index.js";
export * from "./routing/index.js";
export * from "./server/index.js";
export * from "./stats/index.js";
export * from "./translators/index.js";
export { VERSION } from "./version.js";
