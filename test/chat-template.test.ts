/**
 * A GGUF that carries a chat template gets the instruction prompt wrapped in it, as a user turn with
 * the assistant's turn opened — the prompt tokens (and so the router's features) come from that text.
 */
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { getLlama } from "node-llama-cpp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LlamaFfiTranslator } from "../src/translators/llama-ffi-translator.js";
import { LlamaTranslator } from "../src/translators/llama-translator.js";
import { defaultPromptTemplate, renderPrompt } from "../src/translators/prompt-template.js";
import { writeTinyLlamaGguf } from "./helpers/tiny-llama.js";

const CHAT_TEMPLATE =
  "{% for message in messages %}<{{ message['role'] }}>: {{ message['content'] }}\n{% endfor %}{% if add_generation_prompt %}<assistant>:{% endif %}";

let modelPath: string;
let translator: LlamaTranslator;

beforeAll(async () => {
  const dir = await mkdtemp(path.join(tmpdir(), "routelmt-chat-"));
  modelPath = path.join(dir, "chat.gguf");
  writeTinyLlamaGguf(modelPath, { seed: 77, chatTemplate: CHAT_TEMPLATE });
  translator = await LlamaTranslator.create({ modelPath, threads: 1, sequences: 1, maxTokens: 4 });
});

afterAll(async () => {
  await translator?.dispose();
});

describe("prompts for a model with a chat template", () => {
  const request = { text: "the cat sat", srcLang: "en", tgtLang: "de" };
  // The assistant's turn is opened the way the template renders an assistant message, up to where its content goes.
  const wrapped = `<user>: ${renderPrompt(defaultPromptTemplate, request)}\n<assistant>: `;

  it("wraps the instruction as a user turn and opens the assistant's turn", async () => {
    const llama = await getLlama({ gpu: false, build: "never" });
    const model = await llama.loadModel({ modelPath });
    try {
      const ids = translator.tokenizePrompt(request);
      // node-llama-cpp tokenizes the template's pieces one by one, so the ids may split differently
      // from tokenizing the whole string; the text they spell is what must match.
      expect(ids[0]).toBe(model.tokens.bos);
      expect(model.detokenize(ids.slice(1), true)).toBe(wrapped);
    } finally {
      await model.dispose();
    }
  });

  it("uses the same prompt tokens in the FFI engine", async () => {
    const ffi = await LlamaFfiTranslator.create({
      modelPath,
      threads: 1,
      sequences: 1,
      maxTokens: 4,
      layer: "final",
    });
    try {
      expect(ffi.tokenizePrompt(request)).toEqual(translator.tokenizePrompt(request));
    } finally {
      await ffi.dispose();
    }
  });

  it("decodes a kept request from its prefill exactly like a plain translation", async () => {
    const [plain] = await translator.translate([request]);
    const prefilled = await translator.prefill(request);
    expect(prefilled.promptTokens).toBe(translator.tokenizePrompt(request).length);
    const kept = await prefilled.continue();
    expect(kept.text).toBe(plain?.text);
    expect(kept.outputTokens).toBe(plain?.outputTokens);
  });
});
