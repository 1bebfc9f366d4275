/**
 * Marginal gain of the large model over the small one on one segment, oriented so that positive
 * always means "the large model is better": q_large − q_small for higher-is-better metrics,
 * q_small − q_large for error-like ones.
 */
export function orientedGain(qSmall: number, qLarge: number, higherIsBetter: boolean): number {
  return higherIsBetter ? qLarge - qSmall : qSmall - qLarge;
}
