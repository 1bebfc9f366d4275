/**
 * Correlation coefficients. Both return `NaN` when a coefficient is undefined (fewer than two
 * values, or an input with zero variance), as scipy does.
 */

function checkSameLength(x: ArrayLike<number>, y: ArrayLike<number>): void {
  if (x.length !== y.length) {
    throw new RangeError(`correlation needs arrays of equal length, got ${x.length} and ${y.length}`);
  }
}

function meanOf(values: ArrayLike<number>): number {
  let sum = 0;
  for (let index = 0; index < values.length; index++) sum += values[index]!;
  return sum / values.length;
}

/** Pearson's product-moment correlation of `x` and `y`, clamped to [-1, 1]. */
export function pearson(x: ArrayLike<number>, y: ArrayLike<number>): number {
  checkSameLength(x, y);
  const count = x.length;
  if (count < 2) return Number.NaN;
  const meanX = meanOf(x);
  const meanY = meanOf(y);
  let cross = 0;
  let squaresX = 0;
  let squaresY = 0;
  for (let index = 0; index < count; index++) {
    const deviationX = x[index]! - meanX;
    const deviationY = y[index]! - meanY;
    cross += deviationX * deviationY;
    squaresX += deviationX * deviationX;
    squaresY += deviationY * deviationY;
  }
  if (squaresX === 0 || squaresY === 0) return Number.NaN;
  const coefficient = cross / Math.sqrt(squaresX * squaresY);
  return Math.min(1, Math.max(-1, coefficient));
}

/**
 * 1-based ranks with ties given the average of the ranks they span, like
 * `scipy.stats.rankdata(values, method="average")`. `NaN` values are rejected because their rank
 * is not defined.
 */
export function averageRanks(values: ArrayLike<number>): Float64Array {
  const count = values.length;
  const order = new Int32Array(count);
  for (let index = 0; index < count; index++) {
    if (Number.isNaN(values[index]!)) throw new RangeError(`cannot rank NaN (at index ${index})`);
    order[index] = index;
  }
  order.sort((left, right) => values[left]! - values[right]! || left - right);
  const ranks = new Float64Array(count);
  let start = 0;
  while (start < count) {
    let end = start + 1;
    while (end < count && values[order[end]!] === values[order[start]!]) end++;
    // Positions start..end-1 hold one tied group; 1-based ranks start+1..end average to this.
    const tiedRank = (start + 1 + end) / 2;
    for (let position = start; position < end; position++) ranks[order[position]!] = tiedRank;
    start = end;
  }
  return ranks;
}

/**
 * Spearman's rank correlation: Pearson's correlation of the average ranks, which is what
 * `scipy.stats.spearmanr` computes (ties included).
 */
export function spearman(x: ArrayLike<number>, y: ArrayLike<number>): number {
  checkSameLength(x, y);
  if (x.length < 2) return Number.NaN;
  return pearson(averageRanks(x), averageRanks(y));
}
