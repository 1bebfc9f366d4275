import { describe, expect, it } from "vitest";
import { TrimmedTextStream } from "./trimmed-text-stream.js";

function stream() {
  const sent: [string, string][] = [];
  return { sent, text: new TrimmedTextStream<string>((delta, source) => sent.push([delta, source])) };
}

describe("TrimmedTextStream", () => {
  it("streams exactly the trimmed text: leading whitespace dropped, trailing whitespace held back", () => {
    const { sent, text } = stream();
    const sink = text.sinkFor("small");
    const deltas = [" ", "\n Der", " Hund", " ", " läuft", ".", "\n", " "];
    for (const delta of deltas) sink(delta);
    const final = deltas.join("").trim();
    text.finish(final, "small");
    expect(sent.map(([delta]) => delta)).toEqual(["Der", " Hund", "  läuft", "."]);
    expect(sent.map(([delta]) => delta).join("")).toBe(final);
    expect(sent.every(([, source]) => source === "small")).toBe(true);
  });

  it("is not started by whitespace alone, so another engine may still take over", () => {
    const { sent, text } = stream();
    const failing = text.sinkFor("large");
    failing("  ");
    failing("\n");
    expect(text.started).toBe(false);
    const fallback = text.sinkFor("small");
    fallback(" Guten");
    expect(text.started).toBe(true);
    fallback(" Tag ");
    text.finish("Guten Tag", "small");
    expect(sent).toEqual([
      ["Guten", "small"],
      [" Tag", "small"],
    ]);
  });

  it("sends the whole text at the end when the engine streamed nothing, and nothing twice", () => {
    const { sent, text } = stream();
    text.sinkFor("small");
    text.finish("Hallo Welt", "small");
    text.finish("Hallo Welt", "small");
    expect(sent).toEqual([["Hallo Welt", "small"]]);

    const partial = stream();
    const sink = partial.text.sinkFor("large");
    sink("Hallo");
    partial.text.finish("Hallo Welt", "large");
    expect(partial.sent.map(([delta]) => delta)).toEqual(["Hallo", " Welt"]);
  });

  it("treats every whitespace String.prototype.trim removes alike", () => {
    const { sent, text } = stream();
    const sink = text.sinkFor("small");
    const deltas = ["\u00a0\u3000a", "\u2028", "b\ufeff", "\t"];
    for (const delta of deltas) sink(delta);
    text.finish(deltas.join("").trim(), "small");
    expect(sent.map(([delta]) => delta).join("")).toBe(deltas.join("").trim());
  });
});
