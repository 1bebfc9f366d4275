/**
 * Which architectures' llama.cpp graphs the FFI engine reads feature views from, and the guard that
 * refuses the others before any model is loaded. Kept apart from the engine so the owning thread can
 * check a selection without loading the native bindings.
 * @internal
 * @module
 */
import { UnsupportedError } from "../errors/index.js";
import type { FeatureView } from "./feature-views.js";

/**
 * The tensor holding the input of layer 0, for every architecture whose graph was checked to name
 * `l_out-i` (the residual stream after layer i, every row kept below the last layer) and `result_norm`
 * (the final norm of the output rows) — read in the bundled llama.cpp source, `src/models/<arch>.cpp`.
 * `llama` also covers Mistral-7B and most fine-tunes (converted as `llama`); `mistral3` is Mistral Small
 * 3.1 and Ministral 3. Views of other architectures are refused before any C call: their graphs may
 * name tensors differently, and llama.cpp aborts the process on some misuse.
 */
export const VIEW_ARCHITECTURES: ReadonlyMap<string, { layerZeroInput: string }> = new Map([
  ["llama", { layerZeroInput: "embd" }],
  ["mistral3", { layerZeroInput: "embd" }],
  ["qwen2", { layerZeroInput: "embd" }],
  ["qwen3", { layerZeroInput: "embd" }],
  ["qwen3moe", { layerZeroInput: "embd" }],
  ["phi3", { layerZeroInput: "embd" }],
  ["gemma2", { layerZeroInput: "inp_scaled" }],
  ["gemma3", { layerZeroInput: "inp_scaled" }],
]);

/**
 * Checks that a model can give these views, before anything is loaded: every view needs an
 * architecture of {@link VIEW_ARCHITECTURES}, except `last:final`, which every decoder gives (read
 * through llama.cpp's embeddings output where the graph is not one of those).
 * @throws UnsupportedError naming the architecture and the views it can give.
 */
export function assertViewsSupported(
  views: readonly FeatureView[],
  architecture: string,
  modelId: string,
): void {
  if (VIEW_ARCHITECTURES.has(architecture)) return;
  const unsupported = views.filter((view) => view.name !== "last:final");
  if (unsupported.length === 0) return;
  throw new UnsupportedError(
    `feature view${unsupported.length > 1 ? "s" : ""} ${unsupported.map((view) => view.name).join(", ")} ` +
      `cannot be read from ${modelId}: architecture "${architecture}" is not one whose llama.cpp graph was checked ` +
      `(${[...VIEW_ARCHITECTURES.keys()].join(", ")}); last:final works for every architecture`,
  );
}
