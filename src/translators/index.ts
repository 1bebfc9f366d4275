/** Translators: one small interface (`Translator`, `ProbedTranslator`), several engines, and what they share. */
export { ggufFingerprint, readGgufHeader } from "./gguf-fingerprint.js";
export { isKnownLanguage, languageName } from "./languages.js";
export { LlamaFfiTranslator } from "./llama-ffi-translator.js";
export { LlamaTranslator, type LlamaTranslatorOptions } from "./llama-translator.js";
export {
  localModelFingerprint,
  type ModelSpec,
  modelCacheDirectory,
  type OpenAIApi,
  parseModelSpec,
  resolveGgufPath,
} from "./model-spec.js";
export {
  apiKeyFromEnvironment,
  type OpenTranslatorOptions,
  openProbedTranslator,
  openTranslator,
} from "./open.js";
export { type OpenAICompatibleOptions, OpenAICompatibleTranslator } from "./openai-compatible.js";
export { OpenAIProbedTranslator, type OpenAIProbedTranslatorOptions } from "./openai-embeddings.js";
export {
  defaultPromptTemplate,
  loadPromptTemplate,
  type PromptTemplate,
  parsePromptTemplate,
  renderPrompt,
} from "./prompt-template.js";
export type * from "./types.js";
