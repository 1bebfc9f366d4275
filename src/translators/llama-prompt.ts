/**
 * What the in-process GGUF translators share: the process-wide node-llama-cpp binding and the exact
 * prompt token ids a request is evaluated as. Both engines (`LlamaTranslator` on node-llama-cpp's
 * contexts, `LlamaFfiTranslator` on libllama through koffi) tokenize through node-llama-cpp, so the
 * same request gives the same token ids — and so the same features — whichever engine reads them.
 * @module
 */
import {
  getLlama,
  JinjaTemplateChatWrapper,
  type Llama,
  LlamaLogLevel,
  type LlamaModel,
  type LlamaText,
  type Token,
} from "node-llama-cpp";
import { EngineCallError, InputError } from "../errors/index.js";
import { type PromptTemplate, renderPrompt } from "./prompt-template.js";
import type { TranslationRequest } from "./types.js";

/** Chat messages wrapped in the model's own template, up to where the assistant's answer starts. */
export function renderChatPrompt(chatTemplate: string, userMessage: string): LlamaText {
  const wrapper = new JinjaTemplateChatWrapper({ template: chatTemplate });
  const { contextText } = wrapper.generateContextState({
    chatHistory: [
      { type: "user", text: userMessage },
      { type: "model", response: [] },
    ],
  });
  return contextText;
}

let sharedLlama: Promise<Llama> | undefined;
/**
 * One llama.cpp binding per process: CPU only, never builds from source, logs errors only.
 * @param engineName names the engine in the EngineCallError thrown when the binding cannot load.
 */
export function llamaInstance(engineName: string): Promise<Llama> {
  sharedLlama ??= getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error }).catch(
    (error: unknown) => {
      sharedLlama = undefined;
      throw new EngineCallError(
        engineName,
        `cannot load the llama.cpp binding: ${(error as Error).message}`,
        {
          isRetryable: false,
          cause: error,
        },
      );
    },
  );
  return sharedLlama;
}

/** What of a loaded model the prompt tokenizer needs (read once per model). */
export interface PromptTokenizerModel {
  /** The model (a vocabulary-only load is enough). */
  model: LlamaModel;
  /** The GGUF's chat template, or undefined when it has none (then the prompt is used raw). */
  chatTemplate: string | undefined;
  /** Vocabulary size from the GGUF, or 0 when unknown (then ids are not range-checked). */
  vocabularySize: number;
  /** Model name used in error messages. */
  modelId: string;
}

/** Reads the chat template and vocabulary size of a loaded model from its GGUF metadata. */
export function promptTokenizerModel(model: LlamaModel, modelId: string): PromptTokenizerModel {
  const tokenizerMetadata = model.fileInfo.metadata.tokenizer as
    | { ggml?: { tokens?: readonly unknown[] }; chat_template?: string }
    | undefined;
  return {
    model,
    chatTemplate: tokenizerMetadata?.chat_template || undefined,
    vocabularySize: tokenizerMetadata?.ggml?.tokens?.length ?? 0,
    modelId,
  };
}

/**
 * The exact token ids a request's prompt is evaluated as: the rendered template wrapped as a user
 * message in the model's chat template when the GGUF has one, else `[BOS if the model adds it] +
 * tokenize(prompt)`.
 * @throws InputError for empty text or a token outside the vocabulary; UsageError (from
 *   `renderPrompt`) for an unknown language code.
 */
export function promptTokenIds(
  tokenizer: PromptTokenizerModel,
  template: PromptTemplate,
  request: TranslationRequest,
): Token[] {
  if (typeof request.text !== "string" || request.text.trim() === "") {
    throw new InputError(
      `empty text to translate${request.id !== undefined ? ` (request ${request.id})` : ""}`,
    );
  }
  const { model, chatTemplate, vocabularySize, modelId } = tokenizer;
  const prompt = renderPrompt(template, request);
  const tokens =
    chatTemplate !== undefined
      ? renderChatPrompt(chatTemplate, prompt).tokenize(model.tokenizer)
      : model.tokenize(prompt);
  const bos = model.tokens.bos;
  if (model.tokens.shouldPrependBosToken && bos !== null && tokens[0] !== bos) tokens.unshift(bos);
  for (const token of tokens) {
    if (!Number.isInteger(token) || token < 0 || (vocabularySize > 0 && token >= vocabularySize)) {
      throw new InputError(`prompt token ${token} is outside the vocabulary of ${modelId}`);
    }
  }
  return tokens;
}

/**
 * The token ids of a request's prompt followed by `translation` as the model's answer, and where the
 * answer starts. The answer is tokenized where a decode would have produced it: after a raw prompt
 * the two are tokenized as one text joined by a space (unless the prompt ends in whitespace), so a
 * tokenizer that merges a leading space into the first word does so here too; after a chat template's
 * assistant header the answer's tokens follow the header's. Where joint tokenization merges across
 * the boundary, the answer starts at the first token that differs from the prompt's. An empty
 * translation (blank after trimming) is no tokens: the prompt alone, the answer starting at its end.
 * @throws InputError as `promptTokenIds`.
 */
export function continuationTokenIds(
  tokenizer: PromptTokenizerModel,
  template: PromptTemplate,
  request: TranslationRequest,
  translation: string,
): { tokens: Token[]; answerStart: number } {
  const prompt = promptTokenIds(tokenizer, template, request);
  if (translation.trim() === "") return { tokens: prompt, answerStart: prompt.length };
  const { model, chatTemplate } = tokenizer;
  let tokens: Token[];
  if (chatTemplate !== undefined) tokens = [...prompt, ...model.tokenize(translation)];
  else {
    const text = renderPrompt(template, request);
    tokens = model.tokenize(/\s$/.test(text) ? text + translation : `${text} ${translation}`);
    const bos = model.tokens.bos;
    if (model.tokens.shouldPrependBosToken && bos !== null && tokens[0] !== bos) tokens.unshift(bos);
  }
  let answerStart = 0;
  while (answerStart < prompt.length && prompt[answerStart] === tokens[answerStart]) answerStart++;
  return { tokens, answerStart };
}
