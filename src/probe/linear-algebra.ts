/**
 * Dense symmetric linear algebra in Float64 for the ridge probe: Gram accumulation, Cholesky
 * solves and a Householder tridiagonalization that makes every extra ridge penalty cost O(d²).
 *
 * Matrices are row-major d × d Float64Arrays. Symmetric matrices are kept in their upper triangle
 * (entries `[i·d + j]` with j ≥ i); the strict lower triangle is scratch space and never read.
 */
import { UsageError } from "../errors/index.js";

/** Rows gathered per panel in {@link accumulateMoments}: 256 rows × 8 bytes keeps a column in 2 KB. */
const PANEL_ROWS = 256;
/** Columns per cache tile in {@link accumulateMoments}: two 64-column panels fit in L2. */
const TILE_COLUMNS = 64;

/**
 * Sufficient statistics of a set of rows for least squares, with features shifted by `shift`
 * (and targets by `targetShift`) before accumulation so that the later centring subtracts small
 * numbers instead of large ones.
 */
export interface Moments {
  dim: number;
  count: number;
  /** Σ (x − shift), length dim. */
  featureSum: Float64Array;
  /** Σ (x − shift)(x − shift)ᵀ, upper triangle of a dim × dim matrix. */
  gram: Float64Array;
  /** Σ (x − shift)(y − targetShift), length dim. */
  cross: Float64Array;
  /** Σ (y − targetShift). */
  targetSum: number;
}

/** Empty moments of dimension `dim`. */
export function emptyMoments(dim: number): Moments {
  return {
    dim,
    count: 0,
    featureSum: new Float64Array(dim),
    gram: new Float64Array(dim * dim),
    cross: new Float64Array(dim),
    targetSum: 0,
  };
}

/** Adds `source` into `target` (or subtracts it when `sign` is −1). Only the upper Gram is touched. */
export function addMoments(target: Moments, source: Moments, sign: 1 | -1 = 1): void {
  const dim = target.dim;
  target.count += sign * source.count;
  target.targetSum += sign * source.targetSum;
  for (let index = 0; index < dim; index++) {
    target.featureSum[index]! += sign * source.featureSum[index]!;
    target.cross[index]! += sign * source.cross[index]!;
  }
  for (let row = 0; row < dim; row++) {
    const base = row * dim;
    for (let column = row; column < dim; column++)
      target.gram[base + column]! += sign * source.gram[base + column]!;
  }
}

/**
 * Accumulates the moments of rows `rowIndices` of a row-major `features` matrix into `moments`.
 *
 * The O(n·d²) Gram product dominates ridge training, so it is blocked: 256 rows at a time are
 * transposed into a column-major Float64 panel, and the upper triangle is computed tile by tile
 * (64 × 64 columns) with a 4 × 2 register kernel, which does eight multiply-adds per six loads
 * and keeps the working set in cache. That is about 2.5× faster than the row-by-row rank-1 update.
 */
export function accumulateMoments(
  moments: Moments,
  features: Float32Array,
  targets: ArrayLike<number>,
  rowIndices: ArrayLike<number>,
  shift: Float64Array,
  targetShift: number,
): void {
  const dim = moments.dim;
  // Pad to a multiple of 4 columns so the kernel needs no edge cases; padded columns stay zero.
  const paddedDim = Math.ceil(dim / 4) * 4;
  const panel = new Float64Array(paddedDim * PANEL_ROWS);
  const panelTargets = new Float64Array(PANEL_ROWS);
  const { featureSum, gram, cross } = moments;
  for (let start = 0; start < rowIndices.length; start += PANEL_ROWS) {
    const panelRows = Math.min(PANEL_ROWS, rowIndices.length - start);
    if (panelRows < PANEL_ROWS) {
      panel.fill(0);
      panelTargets.fill(0);
    }
    for (let offset = 0; offset < panelRows; offset++) {
      const row = rowIndices[start + offset]!;
      const base = row * dim;
      for (let column = 0; column < dim; column++) {
        panel[column * PANEL_ROWS + offset] = features[base + column]! - shift[column]!;
      }
      const target = targets[row]! - targetShift;
      panelTargets[offset] = target;
      moments.targetSum += target;
    }
    moments.count += panelRows;
    for (let column = 0; column < dim; column++) {
      const base = column * PANEL_ROWS;
      let sum = 0;
      let product = 0;
      for (let offset = 0; offset < panelRows; offset++) {
        const value = panel[base + offset]!;
        sum += value;
        product += value * panelTargets[offset]!;
      }
      featureSum[column]! += sum;
      cross[column]! += product;
    }
    accumulatePanelGram(panel, panelRows, dim, paddedDim, gram);
  }
}

/**
 * Adds the kernel of rows `rowIndices` over feature columns [from, to) to the upper triangle of
 * `kernel` (rowIndices.length² entries): K[a][b] += Σ_c z_a,c · z_b,c with z = (x − shift) / scale.
 *
 * The dual of {@link accumulateMoments}: the same blocked panel product with the roles of rows and
 * columns swapped (256 feature columns at a time are transposed into a panel whose "columns" are the
 * rows), so a kernel over d features costs what a Gram over d rows does. Kernels over disjoint
 * column ranges add up, which lets a feature set's kernel be built block by block.
 */
export function accumulateKernel(
  kernel: Float64Array,
  features: Float32Array,
  dim: number,
  rowIndices: ArrayLike<number>,
  columns: { from: number; to: number },
  shift: ArrayLike<number>,
  scale: ArrayLike<number>,
): void {
  const count = rowIndices.length;
  const paddedCount = Math.ceil(count / 4) * 4;
  // Padded positions are never written, so they stay zero and add nothing.
  const panel = new Float64Array(paddedCount * PANEL_ROWS);
  const inverseScale = new Float64Array(PANEL_ROWS);
  for (let start = columns.from; start < columns.to; start += PANEL_ROWS) {
    const width = Math.min(PANEL_ROWS, columns.to - start);
    for (let offset = 0; offset < width; offset++) inverseScale[offset] = 1 / scale[start + offset]!;
    for (let position = 0; position < count; position++) {
      const base = rowIndices[position]! * dim + start;
      const target = position * PANEL_ROWS;
      for (let offset = 0; offset < width; offset++) {
        panel[target + offset] = (features[base + offset]! - shift[start + offset]!) * inverseScale[offset]!;
      }
    }
    accumulatePanelGram(panel, width, count, paddedCount, kernel);
  }
}

function accumulatePanelGram(
  panel: Float64Array,
  panelRows: number,
  dim: number,
  paddedDim: number,
  gram: Float64Array,
): void {
  for (let tileA = 0; tileA < paddedDim; tileA += TILE_COLUMNS) {
    const endA = Math.min(paddedDim, tileA + TILE_COLUMNS);
    for (let tileB = tileA; tileB < paddedDim; tileB += TILE_COLUMNS) {
      const endB = Math.min(paddedDim, tileB + TILE_COLUMNS);
      for (let a = tileA; a < endA; a += 4) {
        const a0 = a * PANEL_ROWS;
        const a1 = a0 + PANEL_ROWS;
        const a2 = a1 + PANEL_ROWS;
        const a3 = a2 + PANEL_ROWS;
        // Column pairs entirely below the diagonal of this 4-row strip contribute nothing new.
        const firstB = tileB === tileA ? a : tileB;
        for (let b = firstB; b < endB; b += 2) {
          const b0 = b * PANEL_ROWS;
          const b1 = b0 + PANEL_ROWS;
          let s00 = 0;
          let s01 = 0;
          let s10 = 0;
          let s11 = 0;
          let s20 = 0;
          let s21 = 0;
          let s30 = 0;
          let s31 = 0;
          for (let offset = 0; offset < panelRows; offset++) {
            const y0 = panel[b0 + offset]!;
            const y1 = panel[b1 + offset]!;
            const x0 = panel[a0 + offset]!;
            s00 += x0 * y0;
            s01 += x0 * y1;
            const x1 = panel[a1 + offset]!;
            s10 += x1 * y0;
            s11 += x1 * y1;
            const x2 = panel[a2 + offset]!;
            s20 += x2 * y0;
            s21 += x2 * y1;
            const x3 = panel[a3 + offset]!;
            s30 += x3 * y0;
            s31 += x3 * y1;
          }
          addUpper(gram, dim, a, b, s00);
          addUpper(gram, dim, a, b + 1, s01);
          addUpper(gram, dim, a + 1, b, s10);
          addUpper(gram, dim, a + 1, b + 1, s11);
          addUpper(gram, dim, a + 2, b, s20);
          addUpper(gram, dim, a + 2, b + 1, s21);
          addUpper(gram, dim, a + 3, b, s30);
          addUpper(gram, dim, a + 3, b + 1, s31);
        }
      }
    }
  }
}

function addUpper(gram: Float64Array, dim: number, row: number, column: number, value: number): void {
  if (column >= row && column < dim) gram[row * dim + column]! += value;
}

/** Copies the upper triangle of a symmetric matrix into its lower triangle. */
export function mirrorUpper(matrix: Float64Array, dim: number): void {
  for (let row = 0; row < dim; row++) {
    for (let column = row + 1; column < dim; column++)
      matrix[column * dim + row] = matrix[row * dim + column]!;
  }
}

/**
 * Solves (A + shift·I) x = b for symmetric positive definite A (upper triangle read) by Cholesky
 * factorisation in a scratch copy. Throws a UsageError when the matrix is not numerically
 * positive definite (collinear features with no penalty): a larger ridge penalty fixes that.
 */
export function choleskySolve(matrix: Float64Array, dim: number, rhs: Float64Array, shift = 0): Float64Array {
  // Lower factor L, row-major, so both operands of every inner product are contiguous rows.
  const lower = new Float64Array(dim * dim);
  for (let row = 0; row < dim; row++) {
    const rowBase = row * dim;
    for (let column = 0; column <= row; column++) {
      const columnBase = column * dim;
      let value = matrix[columnBase + row]! + (row === column ? shift : 0);
      for (let inner = 0; inner < column; inner++)
        value -= lower[rowBase + inner]! * lower[columnBase + inner]!;
      if (row === column) {
        if (!(value > 0)) {
          throw new UsageError(
            `matrix is not positive definite at pivot ${row} (collinear features?): use a larger ridge lambda`,
          );
        }
        lower[rowBase + row] = Math.sqrt(value);
      } else {
        lower[rowBase + column] = value / lower[columnBase + column]!;
      }
    }
  }
  const solution = Float64Array.from(rhs);
  for (let row = 0; row < dim; row++) {
    const rowBase = row * dim;
    let value = solution[row]!;
    for (let inner = 0; inner < row; inner++) value -= lower[rowBase + inner]! * solution[inner]!;
    solution[row] = value / lower[rowBase + row]!;
  }
  for (let row = dim - 1; row >= 0; row--) {
    let value = solution[row]!;
    for (let inner = row + 1; inner < dim; inner++) value -= lower[inner * dim + row]! * solution[inner]!;
    solution[row] = value / lower[row * dim + row]!;
  }
  return solution;
}

/**
 * A symmetric matrix reduced to tridiagonal form, A = Q T Qᵀ, with Q kept as Householder
 * reflectors. Solving (A + λI) x = b then costs O(d²) for any λ: x = Q (T + λI)⁻¹ Qᵀ b.
 */
export interface Tridiagonalization {
  dim: number;
  diagonal: Float64Array;
  /** offDiagonal[k] = T[k][k+1]; the last entry is unused. */
  offDiagonal: Float64Array;
  /** Reflector k acts on indices k+1…d−1 with vector reflectors[k·d + k+1 …] and factor betas[k]. */
  reflectors: Float64Array;
  betas: Float64Array;
}

/**
 * Householder tridiagonalization of the symmetric matrix whose upper triangle is in `matrix`
 * (overwritten: it ends up holding the reflectors). Backward stable; (2/3)·d³ multiply-adds.
 *
 * Only the upper triangle of the trailing block is read and updated, row by row, so every inner
 * loop runs over contiguous memory. For d in the thousands the matrix does not fit in cache and the
 * cost is memory traffic, so each step's rank-2 update is fused with the next step's matrix–vector
 * product: the trailing block is streamed once per step instead of twice.
 */
export function tridiagonalize(matrix: Float64Array, dim: number): Tridiagonalization {
  const diagonal = new Float64Array(dim);
  const offDiagonal = new Float64Array(dim);
  const betas = new Float64Array(dim);
  let product = new Float64Array(dim);
  let nextProduct = new Float64Array(dim);
  let reflectorReady = false;
  let productReady = false;
  for (let step = 0; step + 2 < dim; step++) {
    const stepBase = step * dim;
    const first = step + 1;
    diagonal[step] = matrix[stepBase + step]!;
    if (!reflectorReady) makeReflector(matrix, dim, step, offDiagonal, betas);
    reflectorReady = false;
    const beta = betas[step]!;
    if (beta === 0) {
      productReady = false;
      continue;
    }
    if (!productReady) symmetricProduct(matrix, dim, step, beta, product);
    productReady = false;
    // w = p − (β pᵀv / 2) v, kept in `product`; then B ← B − v wᵀ − w vᵀ row by row.
    let dot = 0;
    for (let index = first; index < dim; index++) dot += product[index]! * matrix[stepBase + index]!;
    const correction = (beta * dot) / 2;
    for (let index = first; index < dim; index++) product[index]! -= correction * matrix[stepBase + index]!;
    updateRow(matrix, dim, stepBase, first, product);
    const fuse = first + 2 < dim;
    if (fuse) {
      makeReflector(matrix, dim, first, offDiagonal, betas);
      reflectorReady = true;
    }
    const nextBeta = fuse ? betas[first]! : 0;
    if (nextBeta === 0) {
      for (let row = first + 1; row < dim; row++) updateRow(matrix, dim, stepBase, row, product);
      continue;
    }
    const nextBase = first * dim;
    nextProduct.fill(0, first + 1, dim);
    for (let row = first + 1; row < dim; row++) {
      const rowBase = row * dim;
      const vRow = matrix[stepBase + row]!;
      const wRow = product[row]!;
      const nextVRow = matrix[nextBase + row]!;
      const diagonalEntry = matrix[rowBase + row]! - 2 * vRow * wRow;
      matrix[rowBase + row] = diagonalEntry;
      let sum = diagonalEntry * nextVRow;
      for (let column = row + 1; column < dim; column++) {
        const entry =
          matrix[rowBase + column]! - (vRow * product[column]! + wRow * matrix[stepBase + column]!);
        matrix[rowBase + column] = entry;
        sum += entry * matrix[nextBase + column]!;
        nextProduct[column]! += entry * nextVRow;
      }
      nextProduct[row]! += sum;
    }
    for (let index = first + 1; index < dim; index++) nextProduct[index]! *= nextBeta;
    [product, nextProduct] = [nextProduct, product];
    productReady = true;
  }
  if (dim >= 2) {
    diagonal[dim - 2] = matrix[(dim - 2) * dim + dim - 2]!;
    offDiagonal[dim - 2] = matrix[(dim - 2) * dim + dim - 1]!;
  }
  if (dim >= 1) diagonal[dim - 1] = matrix[(dim - 1) * dim + dim - 1]!;
  return { dim, diagonal, offDiagonal, reflectors: matrix, betas };
}

/**
 * Builds the reflector that zeroes row `step` of the upper triangle beyond its first
 * off-diagonal entry; stores v in that row, β in `betas` and the new off-diagonal entry.
 */
function makeReflector(
  matrix: Float64Array,
  dim: number,
  step: number,
  offDiagonal: Float64Array,
  betas: Float64Array,
): void {
  const stepBase = step * dim;
  const first = step + 1;
  const head = matrix[stepBase + first]!;
  let tailSquares = 0;
  for (let column = first + 1; column < dim; column++) tailSquares += matrix[stepBase + column]! ** 2;
  if (tailSquares === 0) {
    // Already tridiagonal in this row: the identity is the reflector.
    offDiagonal[step] = head;
    betas[step] = 0;
    return;
  }
  const norm = Math.sqrt(head * head + tailSquares);
  const alpha = head > 0 ? -norm : norm;
  const vHead = head - alpha; // same sign as head: no cancellation
  matrix[stepBase + first] = vHead;
  betas[step] = 2 / (vHead * vHead + tailSquares);
  offDiagonal[step] = alpha;
}

/** p = β B v for the trailing block B after `step` and the reflector v stored in row `step`. */
function symmetricProduct(
  matrix: Float64Array,
  dim: number,
  step: number,
  beta: number,
  product: Float64Array,
): void {
  const stepBase = step * dim;
  const first = step + 1;
  product.fill(0, first, dim);
  for (let row = first; row < dim; row++) {
    const rowBase = row * dim;
    const vRow = matrix[stepBase + row]!;
    let sum = matrix[rowBase + row]! * vRow;
    for (let column = row + 1; column < dim; column++) {
      const entry = matrix[rowBase + column]!;
      sum += entry * matrix[stepBase + column]!;
      product[column]! += entry * vRow;
    }
    product[row]! += sum;
  }
  for (let index = first; index < dim; index++) product[index]! *= beta;
}

/** Row `row` of B ← B − v wᵀ − w vᵀ (upper part), v in row `stepBase / dim`, w in `product`. */
function updateRow(
  matrix: Float64Array,
  dim: number,
  stepBase: number,
  row: number,
  product: Float64Array,
): void {
  const rowBase = row * dim;
  const vRow = matrix[stepBase + row]!;
  const wRow = product[row]!;
  for (let column = row; column < dim; column++) {
    matrix[rowBase + column]! -= vRow * product[column]! + wRow * matrix[stepBase + column]!;
  }
}

function applyReflector(tri: Tridiagonalization, step: number, vector: Float64Array): void {
  const beta = tri.betas[step]!;
  if (beta === 0) return;
  const { dim, reflectors } = tri;
  const base = step * dim;
  let dot = 0;
  for (let index = step + 1; index < dim; index++) dot += reflectors[base + index]! * vector[index]!;
  const scale = beta * dot;
  for (let index = step + 1; index < dim; index++) vector[index]! -= scale * reflectors[base + index]!;
}

/** Qᵀ b for the Q of a tridiagonalization (b is not modified). */
export function applyTransposeQ(tri: Tridiagonalization, vector: Float64Array): Float64Array {
  const result = Float64Array.from(vector);
  for (let step = 0; step + 2 < tri.dim; step++) applyReflector(tri, step, result);
  return result;
}

/**
 * Solves (A + λI) x = b given the tridiagonalization of A and c = Qᵀ b: an LDLᵀ (Thomas) solve of
 * the tridiagonal system, stable without pivoting because T + λI is positive definite for a
 * positive semi-definite A and λ > 0, then x = Q y.
 */
export function solveShiftedTridiagonal(
  tri: Tridiagonalization,
  rotatedRhs: Float64Array,
  lambda: number,
): Float64Array {
  const { dim, diagonal, offDiagonal } = tri;
  const pivots = new Float64Array(dim);
  const solution = Float64Array.from(rotatedRhs);
  for (let index = 0; index < dim; index++) {
    let pivot = diagonal[index]! + lambda;
    if (index > 0) {
      const coupling = offDiagonal[index - 1]!;
      const multiplier = coupling / pivots[index - 1]!;
      pivot -= multiplier * coupling;
      solution[index]! -= multiplier * solution[index - 1]!;
    }
    if (!(pivot > 0)) {
      throw new UsageError(`ridge system is not positive definite at lambda ${lambda}: use a larger lambda`);
    }
    pivots[index] = pivot;
  }
  for (let index = dim - 1; index >= 0; index--) {
    const next = index + 1 < dim ? offDiagonal[index]! * solution[index + 1]! : 0;
    solution[index] = (solution[index]! - next) / pivots[index]!;
  }
  for (let step = dim - 3; step >= 0; step--) applyReflector(tri, step, solution);
  return solution;
}
