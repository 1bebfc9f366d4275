/**
 * Named feature blocks: which hidden states of the small model a dataset's feature rows hold, and
 * where each lies in the row. A row of `features.f32` is the concatenation of its blocks in order.
 *
 * A block is one view of the prompt prefill, `pooling:layer`: `last:final` (the state after the
 * output norm at the last prompt token, the paper's feature), `last:8` (the residual stream entering
 * layer 8 at the last prompt token), `mean:8` (the same, averaged over the prompt's tokens), `norms:0`
 * (statistics of the per-token norms of the token embeddings: 10 values whatever the width). Datasets
 * written before blocks existed record only their layer selection; they read as one block named
 * after it (`final` → `last:final`, `8,16,final` → one block `last:8,last:16,last:final` of the
 * whole width, since the widths of its parts were not recorded).
 */
import { InputError, UsageError } from "../errors/index.js";
import { type FeaturePooling, type FeatureViewSpan, parseFeatureView } from "../features/feature-views.js";
import {
  SOURCE_BLOCK_NAMES,
  sourceBlockNamed,
  sourceBlocksNamed,
  writeSourceBlocks,
} from "../features/source-blocks.js";

/** How a block pools the prompt's token states (`last` token, `mean` or `norms` over the prompt). */
export type { FeaturePooling } from "../features/feature-views.js";

/** One block of a feature row. */
export interface FeatureBlock {
  /**
   * Canonical name, `pooling:layer` (e.g. `last:final`, `mean:8`), or `words` / `length` for the
   * blocks computed from the source text. A block read from an old multi-layer dataset joins its
   * parts with commas (`last:8,last:16,last:final`).
   */
  name: string;
  /** How the model's states are pooled; `text` for a block computed from the source text. */
  pooling: FeaturePooling | "text";
  /**
   * A layer index or `final`; for an old multi-layer block, its layer list (`8,16,final`); `source`
   * for a source-text block, which reads the text rather than the model.
   */
  layer: number | string;
  /** Values in the block. */
  dim: number;
  /** Index of its first value in the row. */
  offset: number;
}

/** What an engine reports about one view of its feature vector (`FeatureIdentity.views`). */
export type { FeatureViewSpan } from "../features/feature-views.js";

/** The block a router reads when nothing else is known: the paper's state. */
export const DEFAULT_FEATURE_BLOCK = "last:final";

interface ParsedView {
  name: string;
  pooling: FeaturePooling | "text";
  layer: number | "final" | "source";
}

/**
 * Parses one view, `pooling:layer` or an old bare layer (`final`, `8`, meaning `last:`), into its
 * canonical form. Case and surrounding spaces do not matter; `016` is layer 16.
 * @throws UsageError for anything else.
 */
function parseView(text: string): ParsedView {
  const entry = text.trim().toLowerCase();
  if (sourceBlockNamed(entry)) return { name: entry, pooling: "text", layer: "source" };
  const view = parseFeatureView(entry);
  if (view === undefined) throw invalidView(text);
  return view;
}

function invalidView(text: string): UsageError {
  return new UsageError(
    `invalid feature block ${JSON.stringify(text)}: use last:LAYER, mean:LAYER or norms:LAYER, LAYER a layer index or "final", or a source-text block (${SOURCE_BLOCK_NAMES.join(", ")})`,
  );
}

/** The canonical name of one view (`final` → `last:final`, ` MEAN:08 ` → `mean:8`). */
export function canonicalViewName(text: string): string {
  return parseView(text).name;
}

/** The canonical views of a comma-separated selection, in order (`8, final` → `last:8`, `last:final`). */
export function canonicalViewNames(selection: string): string[] {
  return selection.split(",").map(canonicalViewName);
}

/** The views a block stands for: one, or several for an old multi-layer block. */
export function blockParts(block: Pick<FeatureBlock, "name">): string[] {
  return block.name.split(",");
}

/**
 * The single block of a dataset written before blocks were recorded, named after its layer
 * selection (`null`, from datasets that did not say, means `final`).
 */
export function legacyFeatureBlocks(layer: string | null, dim: number): FeatureBlock[] {
  const views = (layer ?? "final").split(",").map(parseView);
  const first = views[0]!;
  return [
    {
      name: views.map((view) => view.name).join(","),
      // A multi-part block describes itself by its first part's pooling and its layer list.
      pooling: first.pooling,
      layer: views.length === 1 ? first.layer : views.map((view) => view.layer).join(","),
      dim,
      offset: 0,
    },
  ];
}

/**
 * The blocks of a feature vector an engine describes: its views when it reports them, else one
 * block named after its layer selection.
 */
export function featureBlocksOf(identity: {
  layer: string;
  dim: number;
  views?: readonly FeatureViewSpan[];
}): FeatureBlock[] {
  if (!identity.views || identity.views.length === 0)
    return legacyFeatureBlocks(identity.layer, identity.dim);
  const blocks = identity.views.map((view) => {
    const parsed = parseView(view.name);
    return {
      name: parsed.name,
      pooling: parsed.pooling,
      layer: parsed.layer,
      dim: view.dim,
      offset: view.offset,
    };
  });
  checkFeatureBlocks(blocks, identity.dim);
  return blocks;
}

/**
 * Checks that blocks tile a row of `dim` values exactly, in order, with distinct names.
 * @throws InputError naming the first problem (`where` locates it).
 */
export function checkFeatureBlocks(
  blocks: readonly FeatureBlock[],
  dim: number,
  where: { file?: string } = {},
): void {
  if (blocks.length === 0) throw new InputError("feature_blocks is empty", where);
  let offset = 0;
  const seen = new Set<string>();
  for (const block of blocks) {
    for (const part of blockParts(block)) {
      if (canonicalViewName(part) !== part) {
        throw new InputError(`feature block ${JSON.stringify(block.name)} is not in canonical form`, where);
      }
      if (seen.has(part)) throw new InputError(`feature block ${part} appears twice`, where);
      seen.add(part);
    }
    if (!(Number.isInteger(block.dim) && block.dim > 0)) {
      throw new InputError(`feature block ${block.name} has dim ${block.dim}`, where);
    }
    if (block.offset !== offset) {
      throw new InputError(
        `feature block ${block.name} starts at ${block.offset}, expected ${offset} (blocks must tile the row in order)`,
        where,
      );
    }
    offset += block.dim;
  }
  if (offset !== dim) {
    throw new InputError(`feature blocks cover ${offset} values but the feature dim is ${dim}`, where);
  }
}

/**
 * The blocks named by `wanted`, in that order. A name may also be served by an old multi-layer
 * block when the wanted names, taken in order, are exactly its parts: a router trained on
 * `last:8`, `last:final` reads a dataset whose single block is `last:8,last:final`.
 * @throws UsageError naming what is missing and what there is.
 */
export function resolveFeatureBlocks(
  available: readonly FeatureBlock[],
  wanted: readonly string[],
  what = "the features",
): FeatureBlock[] {
  const names = wanted.flatMap((name) => name.split(",")).map(canonicalViewName);
  const resolved: FeatureBlock[] = [];
  let position = 0;
  while (position < names.length) {
    const match = available.find((block) => {
      const parts = blockParts(block);
      return parts.every((part, index) => names[position + index] === part);
    });
    if (!match) {
      throw new UsageError(
        `${what} have no feature block ${names[position]} (in this order: ${names.join(", ")}); they hold ${available.map((block) => block.name).join(" | ")}`,
      );
    }
    resolved.push(match);
    position += blockParts(match).length;
  }
  return resolved;
}

/** The selection text an engine accepts for these blocks: their names, comma-joined, in order. */
export function featureSelectionText(blocks: readonly (FeatureBlock | string)[]): string {
  return blocks.map((block) => (typeof block === "string" ? block : block.name)).join(",");
}

/**
 * The columns of `blocks` from row-major `features` (`rows` × `dim`), concatenated in the given
 * order. Blocks that are the whole row in order give back the same array, without a copy.
 */
export function sliceFeatureBlocks(
  features: Float32Array,
  rows: number,
  dim: number,
  blocks: readonly FeatureBlock[],
): { features: Float32Array; rows: number; dim: number } {
  const width = blocks.reduce((sum, block) => sum + block.dim, 0);
  let contiguousFromStart = true;
  let next = 0;
  for (const block of blocks) {
    if (block.offset !== next) contiguousFromStart = false;
    next = block.offset + block.dim;
  }
  if (contiguousFromStart && width === dim) return { features, rows, dim };
  const sliced = new Float32Array(rows * width);
  for (let row = 0; row < rows; row++) {
    let target = row * width;
    for (const block of blocks) {
      const start = row * dim + block.offset;
      sliced.set(features.subarray(start, start + block.dim), target);
      target += block.dim;
    }
  }
  return { features: sliced, rows, dim: width };
}

/**
 * Whether a block is computed from the source text (`words`, `length`) rather than read from the
 * model; case and surrounding spaces do not matter.
 */
export function isSourceBlock(block: Pick<FeatureBlock, "name"> | string): boolean {
  return sourceBlockNamed(typeof block === "string" ? block : block.name) !== undefined;
}

/**
 * The source-text blocks among `names`, in row order (see `SOURCE_BLOCK_NAMES`), placed one after
 * the other from `offset`.
 */
export function sourceBlocksAt(names: readonly string[], offset: number): FeatureBlock[] {
  let next = offset;
  return sourceBlocksNamed(names).map((block) => {
    const placed = {
      name: block.name,
      pooling: "text" as const,
      layer: "source",
      dim: block.dim,
      offset: next,
    };
    next += block.dim;
    return placed;
  });
}

/**
 * Rows of `features` (`rows` × `dim`, in `blocks`) with the named source-text blocks of each row's
 * source appended (all of them by default): the shape `train` searches and a router with such
 * blocks reads. The model's blocks keep their offsets; the source blocks follow, in row order.
 * @throws UsageError when the texts do not match the rows or the blocks already hold one of them.
 */
export function appendSourceBlocks(
  matrix: { features: Float32Array; rows: number; dim: number; blocks: readonly FeatureBlock[] },
  sources: readonly string[],
  names: readonly string[] = SOURCE_BLOCK_NAMES,
): { features: Float32Array; rows: number; dim: number; blocks: FeatureBlock[] } {
  const { features, rows, dim, blocks } = matrix;
  if (sources.length !== rows)
    throw new UsageError(`${sources.length} source texts for ${rows} feature rows`);
  const held = blocks.find(isSourceBlock);
  if (held) throw new UsageError(`the features already hold ${held.name}`);
  const added = sourceBlocksAt(names, dim);
  const writers = sourceBlocksNamed(names);
  const width = dim + added.reduce((sum, block) => sum + block.dim, 0);
  const out = new Float32Array(rows * width);
  for (let row = 0; row < rows; row++) {
    out.set(features.subarray(row * dim, (row + 1) * dim), row * width);
    writeSourceBlocks(sources[row]!, writers, out.subarray(row * width + dim, (row + 1) * width));
  }
  return { features: out, rows, dim: width, blocks: [...blocks, ...added] };
}
