import { describe, expect, it } from "vitest";
import { UsageError } from "../errors/index.js";
import { parseModelSpec, resolveGgufPath } from "./model-spec.js";

describe("parseModelSpec", () => {
  it("parses the three kinds", () => {
    expect(parseModelSpec("models/small.gguf")).toMatchObject({ kind: "gguf" });
    expect(parseModelSpec("hf:Qwen/Qwen3-0.6B-GGUF/Qwen3-0.6B-Q8_0.gguf")).toEqual({
      kind: "hf",
      spec: "hf:Qwen/Qwen3-0.6B-GGUF/Qwen3-0.6B-Q8_0.gguf",
      uri: "hf:Qwen/Qwen3-0.6B-GGUF/Qwen3-0.6B-Q8_0.gguf",
    });
    expect(parseModelSpec("openai:http://127.0.0.1:8000/v1/#org/model#v2")).toEqual({
      kind: "openai",
      spec: "openai:http://127.0.0.1:8000/v1/#org/model#v2",
      baseURL: "http://127.0.0.1:8000/v1/#org/model",
      model: "v2",
      api: undefined,
    });
  });

  it("reads the endpoint a remote spec asks for", () => {
    expect(parseModelSpec("openai+completions:http://127.0.0.1:8080/v1#tinymt-large.gguf")).toEqual({
      kind: "openai",
      spec: "openai+completions:http://127.0.0.1:8080/v1#tinymt-large.gguf",
      baseURL: "http://127.0.0.1:8080/v1",
      model: "tinymt-large.gguf",
      api: "completions",
    });
    expect(parseModelSpec("openai+chat:http://h/v1#m")).toMatchObject({
      api: "chat",
      baseURL: "http://h/v1",
    });
    expect(() => parseModelSpec("openai+embeddings:http://h/v1#m")).toThrow(
      /unknown endpoint "openai\+embeddings": use openai:, openai\+chat: or openai\+completions:/,
    );
    expect(() => parseModelSpec("openai+completions:http://h/v1")).toThrow(
      /expected openai\+completions:<baseURL>#<model>/,
    );
  });

  it("explains malformed specs", () => {
    expect(() => parseModelSpec("openai:http://x/v1")).toThrow(/openai:<baseURL>#<model>/);
    expect(() => parseModelSpec("openai:ftp://x#m")).toThrow(/http\(s\)/);
    expect(() => parseModelSpec("hf:user/file.gguf")).toThrow(/hf:<user>\/<repo>\/<file>\.gguf/);
    expect(() => parseModelSpec("model.bin")).toThrow(UsageError);
    expect(() => parseModelSpec(" ")).toThrow(/empty/);
  });

  it("reports a missing local file", async () => {
    await expect(resolveGgufPath(parseModelSpec("/nonexistent/m.gguf") as never)).rejects.toThrow(
      /model file not found/,
    );
  });
});
