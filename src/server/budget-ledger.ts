/**
 * The ledger of routing decisions that holds the budget's hard cap: this process's own
 * ({@link LocalBudgetLedger}) or one shared by every replica through Redis (`shared-budget-ledger.ts`).
 */
import { DecisionWindow } from "./decision-window.js";

/** One decision to record: whether it asks for the large model, and what it weighs in the budget's unit. */
export interface LedgerItem {
  wantsLarge: boolean;
  /** 1 for a budget in requests; tokens or cost otherwise. */
  weight: number;
}

/** What /readyz and /metrics say about the ledger. */
export interface LedgerState {
  /** `local`: this process's own window; `shared`: the store's global window. */
  scope: "local" | "shared";
  window: number;
  /** ⌊p·W⌋ (unweighted budgets). */
  cap: number;
  /** Large share over the window the scope names; null before the first decision. */
  realizedFraction: number | null;
  /** Decisions this process recorded. */
  decisions: number;
}

export interface BudgetLedger {
  /**
   * Records the items in order, in one step no other decision can interleave with: each is large
   * when it asks for it and the cap allows it. Never rejects and, for a shared ledger, resolves
   * within its time bound (falling back to a local window).
   */
  decide(items: readonly LedgerItem[]): Promise<boolean[]>;
  state(): LedgerState;
  /** This process's recent decisions, oldest first (1 = large), for audits of the cap. */
  log(): Uint8Array;
  close(): Promise<void>;
}

/** The cap over this process's own decisions (one replica, or no shared store). */
export class LocalBudgetLedger implements BudgetLedger {
  private readonly window: DecisionWindow;

  constructor(budget: number, window: number, weighted = false) {
    this.window = new DecisionWindow(budget, window, undefined, weighted);
  }

  /** Synchronous inside: no await between checking the cap and recording, so nothing interleaves. */
  async decide(items: readonly LedgerItem[]): Promise<boolean[]> {
    return items.map((item) => {
      const large = item.wantsLarge && this.window.allowsLarge(item.weight);
      this.window.record(large, item.weight);
      return large;
    });
  }

  state(): LedgerState {
    return {
      scope: "local",
      window: this.window.window,
      cap: this.window.cap,
      realizedFraction: this.window.realizedFraction(),
      decisions: this.window.count,
    };
  }

  log(): Uint8Array {
    return this.window.log();
  }

  async close(): Promise<void> {}
}
