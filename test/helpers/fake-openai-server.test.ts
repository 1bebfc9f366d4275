import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type FakeOpenAIServer, fakeTranslate, startFakeOpenAIServer } from "./fake-openai-server.js";

// The fake is checked with the official client, so tests built on it exercise a faithful wire format.
let server: FakeOpenAIServer;
let client: OpenAI;
beforeAll(async () => {
  server = await startFakeOpenAIServer({ models: ["large", "small"], embeddingDim: 4 });
  client = new OpenAI({ baseURL: server.url, apiKey: "test", maxRetries: 0 });
});
afterAll(async () => {
  await server.close();
});

describe("fake OpenAI server", () => {
  it("translates the last paragraph of the prompt", () => {
    expect(fakeTranslate("Translate into de.\n\nHello there", "x")).toBe("[x] Hello there");
  });

  it("serves chat completions, plain and streamed", async () => {
    const messages = [{ role: "user" as const, content: "Translate.\n\nguten Tag" }];
    const plain = await client.chat.completions.create({ model: "large", messages });
    expect(plain.choices[0]?.message.content).toBe("[large] guten Tag");
    expect(plain.usage?.completion_tokens).toBe(3);

    const stream = await client.chat.completions.create({
      model: "large",
      messages,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = "";
    let finish: string | null | undefined;
    let completionTokens: number | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? "";
      finish = chunk.choices[0]?.finish_reason ?? finish;
      completionTokens = chunk.usage?.completion_tokens ?? completionTokens;
    }
    expect(text).toBe("[large] guten Tag");
    expect(finish).toBe("stop");
    expect(completionTokens).toBe(3);
  });

  it("serves completions, embeddings and models", async () => {
    const completion = await client.completions.create({ model: "small", prompt: "a\n\nb c", max_tokens: 2 });
    expect(completion.choices[0]).toMatchObject({ text: "[large] b", finish_reason: "length" });

    const embeddings = await client.embeddings.create({
      model: "small",
      input: ["x", "y"],
      encoding_format: "float",
    });
    expect(embeddings.data.map((d) => d.embedding.length)).toEqual([4, 4]);
    expect(embeddings.data[0]?.embedding).not.toEqual(embeddings.data[1]?.embedding);

    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).toEqual(["large", "small"]);
  });

  it("follows its script and records requests", async () => {
    server.setBehaviour([
      { kind: "fail", status: 500 },
      { kind: "json", body: { choices: [] }, status: 200 },
    ]);
    const body = { model: "large", messages: [{ role: "user", content: "hi" }] };
    const first = await fetch(`${server.url}/chat/completions`, {
      method: "POST",
      body: JSON.stringify(body),
    });
    const second = await fetch(`${server.url}/chat/completions`, {
      method: "POST",
      body: JSON.stringify(body),
    });
    const third = await fetch(`${server.url}/chat/completions`, {
      method: "POST",
      body: JSON.stringify(body),
    });
    expect([first.status, second.status, third.status]).toEqual([500, 200, 200]);
    expect(await third.json()).toEqual({ choices: [] });
    expect(server.requests.map((r) => [r.index, r.path])).toEqual([
      [0, "/v1/chat/completions"],
      [1, "/v1/chat/completions"],
      [2, "/v1/chat/completions"],
    ]);
    expect(server.requests[0]?.body).toEqual(body);
  });
});
