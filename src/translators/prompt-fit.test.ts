import { describe, expect, it } from "vitest";
import { EngineCallError, InputError, RoutelmtError } from "../errors/index.js";
import { errorAtOrigin, findTooLongPrompts, promptTokenCounterOf, translateEach } from "./prompt-fit.js";
import type { DecodeOptions, Translation, TranslationRequest, Translator } from "./types.js";

/** A local translator whose prompt is one token per character of the text plus 4. */
function localTranslator(contextSize: number): Translator {
  const counter = {
    contextSize,
    tokenizePrompt: (request: TranslationRequest) => new Array<number>(request.text.length + 4).fill(1),
  };
  return {
    engine: "fake",
    modelId: `ctx-${contextSize}`,
    ...counter,
    translate: async () => [],
    dispose: async () => {},
  };
}

const remote: Translator = {
  engine: "openai",
  modelId: "remote",
  translate: async () => [],
  dispose: async () => {},
};

function request(index: number, length: number): TranslationRequest {
  return { id: `r${index}`, text: "x".repeat(length), srcLang: "en", tgtLang: "de" };
}

const locate = (index: number) => ({ file: "in.jsonl", line: index + 2, id: `r${index}` });

describe("findTooLongPrompts", () => {
  it("checks each model against its own context less the new tokens, and lists every request", () => {
    const maxTokens = 10;
    const lengths = [60, 300, 600];
    const { tooLong, unchecked } = findTooLongPrompts(
      [
        { name: "small", translator: localTranslator(256) },
        { name: "large", translator: localTranslator(512) },
        { name: "remote", translator: remote },
      ],
      lengths.map((length, index) => request(index, length)),
      maxTokens,
      locate,
    );
    expect(unchecked).toEqual(["remote"]);
    const overflow = (model: string, contextSize: number, length: number) => ({
      model,
      promptTokens: length + 4,
      maxPromptTokens: contextSize - maxTokens,
      contextSize,
    });
    // 64 tokens fit both; 304 fit only the 512 context; 604 fit neither.
    expect(tooLong).toEqual([
      { index: 1, overflows: [overflow("small", 256, 300)] },
      { index: 2, overflows: [overflow("small", 256, 600), overflow("large", 512, 600)] },
    ]);
  });

  it("accepts a prompt that fills the context exactly", () => {
    const { tooLong } = findTooLongPrompts(
      [{ name: "m", translator: localTranslator(64) }],
      [request(0, 50)],
      10,
      locate,
    );
    expect(tooLong).toEqual([]);
  });

  it("reserves a model's extra tokens: a large model scoring the small answer needs one more", () => {
    // Context 64, 10 new tokens: 54 prompt tokens fit a plain decode, 53 with one extra token.
    const models = (extraTokens: number) => [{ name: "large", translator: localTranslator(64), extraTokens }];
    expect(findTooLongPrompts(models(0), [request(0, 50)], 10, locate).tooLong).toEqual([]);
    expect(findTooLongPrompts(models(1), [request(0, 49)], 10, locate).tooLong).toEqual([]);
    expect(findTooLongPrompts(models(1), [request(0, 50)], 10, locate).tooLong).toEqual([
      { index: 0, overflows: [{ model: "large", promptTokens: 54, maxPromptTokens: 53, contextSize: 64 }] },
    ]);
  });

  it("names the line of a prompt that cannot be tokenized", () => {
    const failing: Translator = {
      ...remote,
      ...{
        contextSize: 64,
        tokenizePrompt: () => {
          throw new InputError("prompt token 9 is outside the vocabulary");
        },
      },
    };
    expect(promptTokenCounterOf(failing)).toBeDefined();
    expect(() =>
      findTooLongPrompts([{ name: "m", translator: failing }], [request(0, 5)], 4, locate),
    ).toThrow('in.jsonl:2: id "r0": prompt token 9 is outside the vocabulary');
  });
});

describe("errorAtOrigin", () => {
  const origin = { file: "in.jsonl", line: 7, id: "x" };

  it("makes a request the server refused bad input at its line", () => {
    for (const status of [400, 413, 422]) {
      const located = errorAtOrigin(
        new EngineCallError("openai:http://h/v1#m", `HTTP ${status}: too long`, { status }),
        origin,
      );
      expect(located).toBeInstanceOf(InputError);
      expect(located.message).toBe(`in.jsonl:7: id "x": openai:http://h/v1#m: HTTP ${status}: too long`);
    }
  });

  it("keeps the code of other failures and says where the run stopped", () => {
    const located = errorAtOrigin(new EngineCallError("e", "HTTP 503", { status: 503 }), origin);
    expect(located).not.toBeInstanceOf(InputError);
    expect(located).toBeInstanceOf(RoutelmtError);
    expect((located as RoutelmtError).code).toBe("RLMT_ERR_ENGINE");
    expect(located.message).toBe('in.jsonl:7: id "x": e: HTTP 503');
    const located401 = errorAtOrigin(new EngineCallError("e", "HTTP 401", { status: 401 }), origin);
    expect(located401).not.toBeInstanceOf(InputError);
  });

  it("leaves errors that already name a file, and foreign errors, as they are", () => {
    const named = new InputError("bad", { file: "other.jsonl", line: 1 });
    expect(errorAtOrigin(named, origin)).toBe(named);
    const foreign = new TypeError("boom");
    expect(errorAtOrigin(foreign, origin)).toBe(foreign);
  });
});

describe("translateEach", () => {
  it("returns translations in request order, one call per request", async () => {
    const calls: string[][] = [];
    const translator: Translator = {
      ...remote,
      translate: async (batch: TranslationRequest[]) => {
        calls.push(batch.map((item) => item.id ?? ""));
        await new Promise((resolve) => setTimeout(resolve, 10 - batch[0]!.text.length));
        return batch.map((item) => ({
          text: item.text.toUpperCase(),
          model: "m",
          promptTokens: 1,
          outputTokens: 1,
          ms: 0,
        }));
      },
    };
    const translations = await translateEach(translator, [request(0, 3), request(1, 1)], 5, locate);
    expect(translations.map((translation) => translation.text)).toEqual(["XXX", "X"]);
    expect(calls).toEqual([["r0"], ["r1"]]);
  });

  it("throws the first failure at its line after aborting and waiting for the others", async () => {
    let stillRunning = 0;
    const translator: Translator = {
      ...remote,
      translate: async (batch: TranslationRequest[], options?: DecodeOptions): Promise<Translation[]> => {
        const [item] = batch;
        if (item?.id === "r1")
          throw new EngineCallError("e", "HTTP 400: context length exceeded", { status: 400 });
        stillRunning++;
        await new Promise<void>((resolve) => options?.signal?.addEventListener("abort", () => resolve()));
        stillRunning--;
        throw options?.signal?.reason;
      },
    };
    const failure = await translateEach(
      translator,
      [request(0, 1), request(1, 1), request(2, 1)],
      5,
      locate,
    ).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(InputError);
    expect((failure as InputError).message).toBe('in.jsonl:3: id "r1": e: HTTP 400: context length exceeded');
    expect(stillRunning).toBe(0);
  });
});
