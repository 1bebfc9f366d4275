export {
  allocateBatch,
  carriedRoutedCount,
  checkBudget,
  maskFromOrder,
  routedCount,
  routingOrder,
} from "./batch-allocation.js";
export {
  BudgetCap,
  effectiveWindow,
  hardCap,
  maxLargeInAnyWindow,
  maxOverspendOfLongRuns,
} from "./budget-cap.js";
export {
  BudgetController,
  type BudgetControllerOptions,
  type BudgetControllerSnapshot,
  type RouteDecision,
  type RouteReason,
} from "./budget-controller.js";
export {
  allocateBatchGuarded,
  allocateGuarded,
  firedGuard,
  type GuardedAllocation,
  type GuardName,
  type GuardSignals,
  type GuardThresholds,
} from "./guard.js";
