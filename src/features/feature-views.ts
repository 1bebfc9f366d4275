/**
 * Feature views: which hidden states of the small model the router reads, all from the one prompt
 * prefill. A view is a pooling over the prompt's tokens and a layer:
 *
 * - layer `N` (0 ≤ N < layer count) is the residual stream entering layer N (0 = the token embeddings,
 *   after any scaling the architecture applies before its first layer); `final` is the output of the
 *   final norm (what llama.cpp returns as a token's embedding);
 * - pooling `last` takes the state at the last prompt token, `mean` the mean over every prompt token
 *   (the BOS and chat-template tokens included), `norms` statistics of the per-token state norms over
 *   the same tokens (the smallest and largest few, mean and spread: {@link NORM_STATISTICS_DIM}
 *   values whatever the layer's width). At layer 0 a norm is the token embedding's: a token the model
 *   rarely or never saw in training keeps an embedding far from the trained ones (under-trained
 *   tokens are known by their norms), so `norms:0` tells whether the prompt holds words the small
 *   model barely learned, which a mean over the prompt dilutes.
 *
 * A selection is a comma list kept in order (it is the concatenation order of the feature vector).
 * Each entry is `pooling:layer` (`last:final`, `mean:8`, …) or one of the older forms that mean `last`:
 * `final` → `last:final`, `8` → `last:8`. `all` (alone) stands for every view of the model: `last:0` …
 * `last:L−1`, `last:final`, then the same layers with `mean:` and with `norms:` — for exploring which
 * one predicts gain; it expands once the model's layer count is known. `auto` (alone) is the default
 * of `collect`: `last:final`, `mean:0`, `mean:⌊L/2⌋` and `norms:0` where the engine reads views of
 * the model's architecture, `last:final` alone where it does not (see {@link autoFeatureViews}).
 * @module
 */
import { UsageError } from "../errors/index.js";
import { NORM_STATISTICS_DIM } from "./pooling.js";
import { SOURCE_BLOCK_NAMES, sourceBlockNamed } from "./source-blocks.js";

/** Every pooling, in the order `all` lists them. */
export const FEATURE_POOLINGS = ["last", "mean", "norms"] as const;
/** How a view pools over the prompt's tokens. */
export type FeaturePooling = (typeof FEATURE_POOLINGS)[number];
/** A layer index (the residual stream entering that layer) or `final` (the final-norm output). */
export type FeatureLayer = number | "final";

/** One view of a selection. */
export interface FeatureView {
  /** Canonical name, `pooling:layer` (e.g. `last:final`, `mean:8`). */
  readonly name: string;
  readonly pooling: FeaturePooling;
  readonly layer: FeatureLayer;
}

/** Where one view lies in the concatenated feature vector. */
export interface FeatureViewSpan extends FeatureView {
  /** Values of this view. */
  readonly dim: number;
  /** Index of its first value in the feature vector. */
  readonly offset: number;
}

/** The shorthand for every view of a model. */
export const ALL_FEATURE_VIEWS = "all";

/** The selection read when none is given: the paper's state. */
export const DEFAULT_FEATURE_VIEWS = "last:final";

/** The shorthand for the views `collect` reads by default; see {@link autoFeatureViews}. */
export const AUTO_FEATURE_VIEWS = "auto";

/** The canonical name of a view. */
export function featureViewName(pooling: FeaturePooling, layer: FeatureLayer): string {
  return `${pooling}:${layer}`;
}

function invalidEntry(entry: string, selection: string): UsageError {
  if (sourceBlockNamed(entry)) {
    return new UsageError(
      `"${entry}" in ${JSON.stringify(selection)} is not read from the model: train computes the source-text blocks (${SOURCE_BLOCK_NAMES.join(", ")}) from each record's source (train --source-blocks on, the default)`,
    );
  }
  return new UsageError(
    `invalid feature view ${JSON.stringify(entry)} in ${JSON.stringify(selection)}: ` +
      'use last:LAYER, mean:LAYER or norms:LAYER with LAYER a layer index or "final" (a bare index or "final" means last:), or "all"',
  );
}

function parseLayer(text: string): FeatureLayer | undefined {
  if (text === "final") return "final";
  if (/^\d+$/.test(text)) return Number(text);
  return undefined;
}

/**
 * One view, `pooling:layer` or an old bare layer (`final`, `8`, meaning `last:`), already trimmed and
 * lower-cased, in its canonical form; undefined when it is neither (callers word the error).
 */
export function parseFeatureView(entry: string): FeatureView | undefined {
  const [first, second, ...rest] = entry.split(":");
  if (rest.length > 0 || first === undefined) return undefined;
  let pooling: FeaturePooling = "last";
  let layerText = first;
  if (second !== undefined) {
    if (!(FEATURE_POOLINGS as readonly string[]).includes(first)) return undefined;
    pooling = first as FeaturePooling;
    layerText = second;
  }
  const layer = parseLayer(layerText);
  if (layer === undefined) return undefined;
  return { name: featureViewName(pooling, layer), pooling, layer };
}

function parseEntry(entry: string, selection: string): FeatureView {
  const view = parseFeatureView(entry);
  if (view === undefined) throw invalidEntry(entry, selection);
  return view;
}

function splitSelection(selection: string): string[] {
  return selection.split(",").map((entry) => entry.trim().toLowerCase());
}

/**
 * Parses a selection without expanding `all`: the views in order, or `"all"`.
 * @throws UsageError for an empty or malformed entry, a duplicate (after normalisation, so `final`
 *   and `last:final` are the same view), or `all` next to other entries.
 */
function parseSelection(
  selection: string,
): FeatureView[] | typeof ALL_FEATURE_VIEWS | typeof AUTO_FEATURE_VIEWS {
  const entries = splitSelection(selection);
  for (const shorthand of [ALL_FEATURE_VIEWS, AUTO_FEATURE_VIEWS] as const) {
    if (!entries.includes(shorthand)) continue;
    if (entries.length > 1) {
      throw new UsageError(
        `"${shorthand}" stands for a set of views and cannot be combined with others in ${selection}`,
      );
    }
    return shorthand;
  }
  const views: FeatureView[] = [];
  for (const entry of entries) {
    const view = parseEntry(entry, selection);
    if (views.some((seen) => seen.name === view.name)) {
      throw new UsageError(`feature view ${view.name} appears twice in ${JSON.stringify(selection)}`);
    }
    views.push(view);
  }
  return views;
}

/**
 * The canonical text of a selection: views as `pooling:layer`, comma-separated, in the given order;
 * `all` and `auto` stay as they are (they expand only against a model, see {@link featureViewsOf}).
 * E.g. ` 8, 016 ,FINAL` → `last:8,last:16,last:final`.
 * @throws UsageError as {@link featureViewsOf} does for malformed selections.
 */
export function normaliseFeatureViews(selection: string): string {
  const parsed = parseSelection(selection);
  return typeof parsed === "string" ? parsed : parsed.map((view) => view.name).join(",");
}

/**
 * The former name of {@link normaliseFeatureViews}, from when a selection could only list layers.
 * @deprecated use normaliseFeatureViews.
 */
export const normaliseLayerSelection = normaliseFeatureViews;

/** Every view of a model with `layerCount` layers, in the order `all` stands for. */
export function allFeatureViews(layerCount: number): FeatureView[] {
  const layers: FeatureLayer[] = [...Array.from({ length: layerCount }, (_, index) => index), "final"];
  return FEATURE_POOLINGS.flatMap((pooling) =>
    layers.map((layer) => ({ name: featureViewName(pooling, layer), pooling, layer })),
  );
}

/**
 * The views `auto` stands for on a model with `layerCount` layers whose views the engine can read:
 * the last prompt token's final state (the paper's feature), the mean of the token embeddings (a bag
 * of the prompt's words: what a small model never learned is often a set of words), the mean of
 * the middle layer's input (the prompt as the model has read it halfway) and the statistics of the
 * token embeddings' norms (whether the prompt holds tokens the model barely learned). All ride on the
 * prefill that runs anyway (+3 % together on a 32k-vocabulary model; see BENCHMARKS.md), and `train` chooses
 * among the blocks by cross-validation, so a block that does not pay is not used.
 * Where views cannot be read, `auto` is `last:final` alone (see {@link resolveAutoSelection}).
 */
export function autoFeatureViews(layerCount: number): FeatureView[] {
  const layers = [...new Set([0, Math.floor(layerCount / 2)])];
  return [
    { name: DEFAULT_FEATURE_VIEWS, pooling: "last", layer: "final" },
    ...layers.map((layer) => ({ name: featureViewName("mean", layer), pooling: "mean" as const, layer })),
    { name: featureViewName("norms", 0), pooling: "norms", layer: 0 },
  ];
}

/** Whether a selection is the `auto` shorthand (in any case or spacing). */
export function isAutoSelection(selection: string): boolean {
  return splitSelection(selection).join(",") === AUTO_FEATURE_VIEWS;
}

/**
 * `auto` becomes `last:final` where the engine cannot read other views (node-llama-cpp's engine, a
 * remote model's embeddings, an architecture whose graph was not checked); any other selection is
 * returned as it is.
 */
export function resolveAutoSelection(selection: string, readsViews: boolean): string {
  return isAutoSelection(selection) && !readsViews ? DEFAULT_FEATURE_VIEWS : selection;
}

/**
 * The views of a selection for a model with `layerCount` layers, `all` and `auto` expanded.
 * @param describeModel names the model in the out-of-range message (e.g. its file name).
 * @throws UsageError for a malformed selection or a layer index outside 0…layerCount−1.
 */
export function featureViewsOf(
  selection: string,
  layerCount: number,
  describeModel = "the model",
): FeatureView[] {
  const parsed = parseSelection(selection);
  if (parsed === ALL_FEATURE_VIEWS) return allFeatureViews(layerCount);
  if (parsed === AUTO_FEATURE_VIEWS) return autoFeatureViews(layerCount);
  for (const view of parsed) {
    if (view.layer !== "final" && view.layer >= layerCount) {
      throw new UsageError(
        `layer ${view.layer} is out of range: ${describeModel} has ${layerCount} layers (indices 0…${layerCount - 1}, or "final")`,
      );
    }
  }
  return parsed;
}

/** Canonical text of a list of views (what a feature identity records). */
export function featureViewsText(views: readonly FeatureView[]): string {
  return views.map((view) => view.name).join(",");
}

/**
 * Whether two selections name the same views in the same order, whatever their spelling: a router or
 * dataset written when selections were layer lists (`final`, `8,final`) matches the views it meant
 * (`last:final`, `last:8,last:final`). Selections that do not parse are compared as text.
 */
export function sameFeatureViews(left: string, right: string): boolean {
  const canonical = (selection: string): string => {
    try {
      return normaliseFeatureViews(selection);
    } catch {
      return selection;
    }
  };
  return canonical(left) === canonical(right);
}

/** Whether a selection is exactly `last:final` (in any spelling): the one view every engine can read. */
export function isLastFinalOnly(selection: string): boolean {
  return normaliseFeatureViews(selection) === DEFAULT_FEATURE_VIEWS;
}

/**
 * How many values a view yields from states `stateWidth` wide: the width itself for `last` and
 * `mean`, {@link NORM_STATISTICS_DIM} for `norms`.
 */
export function pooledWidth(view: Pick<FeatureView, "pooling">, stateWidth: number): number {
  return view.pooling === "norms" ? NORM_STATISTICS_DIM : stateWidth;
}

/**
 * The spans of `views` in the concatenated vector, given each view's width.
 * @param dimOf the number of values a view yields (layer states and final states may differ).
 */
export function featureViewSpans(
  views: readonly FeatureView[],
  dimOf: (view: FeatureView) => number,
): FeatureViewSpan[] {
  let offset = 0;
  return views.map((view) => {
    const dim = dimOf(view);
    const span = { ...view, dim, offset };
    offset += dim;
    return span;
  });
}
