/**
 * What one request weighs in the budget. The budget p is a share of:
 *
 * - `requests`: the requests (every request weighs 1);
 * - `tokens`: the tokens the large model would process if it served every request — prompt plus
 *   output — so p = Σ over routed requests of (in + out) / Σ over all requests of (in + out);
 * - `cost`: what the large model would bill if it served every request, with its prices per 1k
 *   input and output tokens — p = Σ routed (in·price_in + out·price_out) / Σ all of the same. At
 *   p = 0.2 the large model's bill is at most a fifth of what sending it everything would cost. The
 *   small model's own cost is no part of the budget: every request pays its prefill anyway.
 *
 * The decision comes before any output exists, so `in` is the prompt's token count from the small
 * model's prefill (the only count at hand; a large model with another tokenizer counts a little
 * differently) and `out` is predicted: the request's source characters times the large model's
 * output tokens per source character, a running estimate over its recent answers (exponentially
 * weighted over about 1000 of them), starting from `output-tokens-per-char`.
 * @module
 */
import type { Prefilled, TranslationRequest } from "../translators/types.js";

export const budgetUnits = ["requests", "tokens", "cost"] as const;
export type BudgetUnit = (typeof budgetUnits)[number];

/** Prices per 1000 tokens, in any currency (the budget is a share, so the currency cancels). */
export interface TokenPrices {
  input: number;
  output: number;
}

/** How the hybrid router weighs requests and learns from answers; absent for a budget in requests. */
export interface RequestWeigher {
  /** The request's weight in the budget's unit, from its prefill. Positive. */
  weigh(prefilled: Prefilled, request: TranslationRequest): number;
  /** An answer: the large model's teach the output-length estimate; every answer counts as spend. */
  observe(
    request: TranslationRequest,
    model: "small" | "large",
    promptTokens: number | null,
    outputTokens: number | null,
  ): void;
}

/** Answers the estimate has seen, as an exponential window: about this many recent ones count. */
const ESTIMATE_MEMORY = 1000;
/** The prior counts as this many source characters of evidence (a few dozen requests). */
const PRIOR_CHARACTERS = 2000;

/** The large model's output tokens per source character, learned from its answers. */
export class OutputLengthEstimate {
  private outputTokens: number;
  private characters: number;

  /** @param tokensPerCharacter the starting ratio (`output-tokens-per-char`). */
  constructor(tokensPerCharacter: number) {
    this.outputTokens = tokensPerCharacter * PRIOR_CHARACTERS;
    this.characters = PRIOR_CHARACTERS;
  }

  get tokensPerCharacter(): number {
    return this.outputTokens / this.characters;
  }

  predict(text: string): number {
    return this.tokensPerCharacter * [...text].length;
  }

  observe(text: string, outputTokens: number): void {
    const keep = 1 - 1 / ESTIMATE_MEMORY;
    this.outputTokens = keep * this.outputTokens + outputTokens;
    this.characters = keep * this.characters + [...text].length;
  }
}

export interface BudgetWeigherOptions {
  unit: "tokens" | "cost";
  /** Required for `cost`. */
  largePrices?: TokenPrices;
  /** For the spend metric only. */
  smallPrices?: TokenPrices;
  /** Starting output tokens per source character. */
  outputTokensPerCharacter: number;
  /** Called with each answer's spend (its reported tokens at its model's prices), when prices are known. */
  onSpend?: (model: "small" | "large", amount: number) => void;
}

/** Weighs requests in tokens or cost (see the module comment). */
export class BudgetWeigher implements RequestWeigher {
  readonly unit: "tokens" | "cost";
  readonly estimate: OutputLengthEstimate;
  private readonly options: BudgetWeigherOptions;

  constructor(options: BudgetWeigherOptions) {
    this.unit = options.unit;
    this.options = options;
    this.estimate = new OutputLengthEstimate(options.outputTokensPerCharacter);
  }

  weigh(prefilled: Prefilled, request: TranslationRequest): number {
    const output = this.estimate.predict(request.text);
    // A remote engine that reports no count: the source's characters at the output's rate.
    const input = prefilled.promptTokens ?? output;
    if (this.unit === "tokens") return Math.max(input + output, 1);
    const prices = this.options.largePrices!;
    const cost = (input * prices.input + output * prices.output) / 1000;
    return cost > 0 ? cost : Number.MIN_VALUE;
  }

  observe(
    request: TranslationRequest,
    model: "small" | "large",
    promptTokens: number | null,
    outputTokens: number | null,
  ): void {
    if (model === "large" && outputTokens !== null) this.estimate.observe(request.text, outputTokens);
    const prices = model === "large" ? this.options.largePrices : this.options.smallPrices;
    if (prices !== undefined && this.options.onSpend !== undefined) {
      this.options.onSpend(
        model,
        ((promptTokens ?? 0) * prices.input + (outputTokens ?? 0) * prices.output) / 1000,
      );
    }
  }
}
