/** Comparisons of feature vectors and logits between engines and reference implementations. */

/** Cosine similarity of two equally long vectors (NaN when either is all zeros). */
export function cosine(left: ArrayLike<number>, right: ArrayLike<number>): number {
  let dot = 0;
  let normLeft = 0;
  let normRight = 0;
  for (let index = 0; index < left.length; index++) {
    const x = left[index] as number;
    const y = right[index] as number;
    dot += x * y;
    normLeft += x * x;
    normRight += y * y;
  }
  return dot / Math.sqrt(normLeft * normRight);
}

/** The largest absolute element-wise difference of two equally long vectors (0 for empty ones). */
export function maxAbsDifference(left: ArrayLike<number>, right: ArrayLike<number>): number {
  let worst = 0;
  for (let index = 0; index < left.length; index++) {
    worst = Math.max(worst, Math.abs((left[index] as number) - (right[index] as number)));
  }
  return worst;
}
