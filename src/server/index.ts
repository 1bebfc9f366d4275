export { type BuildAppExtras, buildApp, type RoutelmtServerState } from "./app.js";
export { BearerAuthenticator, readApiKeys } from "./auth.js";
export {
  readConfigFile,
  resolveServerConfig,
  SERVER_CONFIG_KEYS,
  type ServerConfig,
  type ServerConfigInput,
  serverConfigSchema,
} from "./config.js";
export {
  AdmissionGate,
  DecisionWindow,
  hardCap,
  maxLargeInAnyWindow,
  maxOverspendOfLongRuns,
} from "./decision-window.js";
export {
  SERVER_ERROR_STATUS,
  ServerError,
  type ServerErrorCode,
  serverErrorBodySchema,
} from "./errors.js";
export {
  type FallbackReason,
  guardThresholds,
  HybridRouter,
  type HybridRouterOptions,
  type HybridRouterSnapshot,
  type HybridTranslation,
  type RoutingPolicy,
  type StageTimings,
} from "./hybrid-router.js";
export { ServerMetrics } from "./metrics.js";
export { closeWithDeadline, type ShutdownReport } from "./shutdown.js";
