export { type BuildAppExtras, buildApp, type RoutelmtServerState } from "./app.js";
export { BearerAuthenticator, readApiKeys } from "./auth.js";
export { type BudgetLedger, type LedgerItem, type LedgerState, LocalBudgetLedger } from "./budget-ledger.js";
export {
  type BudgetUnit,
  BudgetWeigher,
  budgetUnits,
  OutputLengthEstimate,
  type RequestWeigher,
  type TokenPrices,
} from "./budget-units.js";
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
export {
  type AuditEntry,
  type SharedBudgetEvent,
  SharedBudgetLedger,
  type SharedBudgetLedgerOptions,
  type StoreStatus,
} from "./shared-budget-ledger.js";
export { closeWithDeadline, type ShutdownReport } from "./shutdown.js";
