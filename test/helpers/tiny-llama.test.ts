import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { readGguf } from "./gguf-reader.js";
import { argmax, matVec, type ReferenceForwardResult, referenceForward } from "./reference-llama.js";
import { referenceTokenize } from "./reference-spm-tokenizer.js";
import {
  BENCH_LLAMA_OPTIONS,
  buildVocabulary,
  byteTokenId,
  fillNormal,
  llamaParameterCount,
  minimumVocabularySize,
  mulberry32,
  TINY_LLAMA_DEFAULTS,
  type TinyArchitecture,
  TOKEN_TYPE,
  type Vocabulary,
  writeTinyLlamaGguf,
} from "./tiny-llama.js";

const directory = mkdtempSync(path.join(os.tmpdir(), "routelmt-tiny-llama-"));
afterAll(() => rmSync(directory, { recursive: true, force: true }));

describe("buildVocabulary", () => {
  const vocabulary = buildVocabulary(512);

  it("starts with the special and byte tokens llama.cpp's SPM vocab expects", () => {
    expect(vocabulary.tokens.slice(0, 4)).toEqual(["<unk>", "<s>", "</s>", "<0x00>"]);
    expect(vocabulary.tokens[byteTokenId(0x0a)]).toBe("<0x0A>");
    expect(vocabulary.tokens[byteTokenId(0xff)]).toBe("<0xFF>");
    expect(vocabulary.tokenTypes.slice(0, 4)).toEqual([
      TOKEN_TYPE.unknown,
      TOKEN_TYPE.control,
      TOKEN_TYPE.control,
      TOKEN_TYPE.byte,
    ]);
    expect(vocabulary.tokenTypes.slice(259).every((type) => type === TOKEN_TYPE.normal)).toBe(true);
  });

  it("has unique pieces, BPE-style scores and every word with and without the boundary mark", () => {
    expect(vocabulary.tokens).toHaveLength(512);
    expect(new Set(vocabulary.tokens).size).toBe(512);
    expect(vocabulary.scores.slice(0, 259).every((score) => score === 0)).toBe(true);
    expect(vocabulary.scores[259]).toBe(-0);
    expect(vocabulary.scores[511]).toBe(-252);
    for (const piece of ["the", "▁the", "▁world", "Hello", "English", "▁German", "▁", "a", ","]) {
      expect(vocabulary.tokens).toContain(piece);
    }
  });

  it("keeps every prefix of its English pieces so the merge loop can reach them", () => {
    const english = vocabulary.tokens.slice(259, minimumVocabularySize());
    const pieces = new Set(vocabulary.tokens);
    for (const piece of english) {
      const characters = [...piece];
      if (characters.length > 1) expect(pieces.has(characters.slice(0, -1).join("")), piece).toBe(true);
    }
  });

  it("fills large vocabularies with synthetic letter pieces and refuses too small ones", () => {
    const large = buildVocabulary(32000);
    expect(large.tokens).toHaveLength(32000);
    expect(new Set(large.tokens).size).toBe(32000);
    expect(large.tokens).toContain("▁qz");
    expect(() => buildVocabulary(300)).toThrow(RangeError);
  });
});

describe("referenceTokenize", () => {
  // Specials + bytes, then a, b, c, ab, bc with chosen scores.
  const handVocabulary = (abScore: number, bcScore: number): Vocabulary => {
    const base = buildVocabulary(minimumVocabularySize());
    const tokens = [...base.tokens.slice(0, 259), "a", "b", "c", "ab", "bc", "▁a"];
    return {
      tokens,
      scores: [...base.scores.slice(0, 259), -1, -1, -1, abScore, bcScore, -5],
      tokenTypes: [...base.tokenTypes.slice(0, 259), 1, 1, 1, 1, 1, 1],
    };
  };
  const pieces = (vocabulary: Vocabulary, text: string) =>
    referenceTokenize(vocabulary, text).map((id) => vocabulary.tokens[id]);

  it("merges the highest-scoring pair first", () => {
    expect(pieces(handVocabulary(-3, -2), "abc")).toEqual(["a", "bc"]);
    expect(pieces(handVocabulary(-2, -3), "abc")).toEqual(["ab", "c"]);
  });

  it("breaks score ties by the leftmost pair", () => {
    expect(pieces(handVocabulary(-2, -2), "abc")).toEqual(["ab", "c"]);
  });

  it("turns spaces into ▁, adds a space prefix only when asked, and falls back to bytes", () => {
    const vocabulary = handVocabulary(-2, -3);
    expect(pieces(vocabulary, "c a")).toEqual(["c", "▁a"]);
    expect(pieces(vocabulary, "a")).toEqual(["a"]);
    expect(
      referenceTokenize(vocabulary, "a", { addSpacePrefix: true }).map((id) => vocabulary.tokens[id]),
    ).toEqual(["▁a"]);
    expect(pieces(vocabulary, "dé")).toEqual(["<0x64>", "<0xC3>", "<0xA9>"]);
    expect(referenceTokenize(vocabulary, "")).toEqual([]);
  });
});

describe("random weights", () => {
  it("mulberry32 is deterministic and uniform in [0, 1)", () => {
    const first = mulberry32(42);
    const second = mulberry32(42);
    const values = Array.from({ length: 10000 }, first);
    expect(Array.from({ length: 10000 }, second)).toEqual(values);
    expect(Math.min(...values)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...values)).toBeLessThan(1);
    expect(values.reduce((sum, value) => sum + value, 0) / values.length).toBeCloseTo(0.5, 1);
    expect(mulberry32(43)()).not.toBe(mulberry32(42)());
  });

  it("fillNormal draws the requested mean and standard deviation", () => {
    const values = new Float32Array(100_001); // odd: the last value uses only the cosine branch
    fillNormal(values, mulberry32(7), 3, 0.5);
    const mean = values.reduce((sum, value) => sum + value, 0) / values.length;
    const variance = values.reduce((sum, value) => sum + (value - mean) ** 2, 0) / values.length;
    expect(mean).toBeCloseTo(3, 2);
    expect(Math.sqrt(variance)).toBeCloseTo(0.5, 2);
    expect(values[values.length - 1]).not.toBe(0);
  });
});

describe("writeTinyLlamaGguf", () => {
  it("writes the same bytes for the same options and different ones for another seed", () => {
    const first = writeTinyLlamaGguf(path.join(directory, "a.gguf"));
    const again = writeTinyLlamaGguf(path.join(directory, "b.gguf"));
    const other = writeTinyLlamaGguf(path.join(directory, "c.gguf"), { seed: 5 });
    expect(readFileSync(first.path).equals(readFileSync(again.path))).toBe(true);
    expect(readFileSync(first.path).equals(readFileSync(other.path))).toBe(false);
    expect(first.bytes).toBe(readFileSync(first.path).length);
    expect(first.bytes).toBeLessThan(1_000_000);
  });

  it("stores the shape and the llama metadata llama.cpp needs", () => {
    const written = writeTinyLlamaGguf(path.join(directory, "shape.gguf"));
    // 2·512·64 + 2·(2·64 + 2·64² + 2·64·32 + 3·64·128) + 64, counted by hand.
    expect(written.parameterCount).toBe(139_584);
    expect(llamaParameterCount(TINY_LLAMA_DEFAULTS)).toBe(139_584);
    const parsed = readGguf(written.path);
    expect(
      Object.fromEntries([...parsed.metadata].filter(([key]) => !key.startsWith("tokenizer.ggml.t"))),
    ).toEqual({
      "general.architecture": "llama",
      "general.name": "routelmt-tiny-llama",
      "general.alignment": 32,
      "general.file_type": 0,
      "llama.vocab_size": 512,
      "llama.context_length": 256,
      "llama.embedding_length": 64,
      "llama.block_count": 2,
      "llama.feed_forward_length": 128,
      "llama.attention.head_count": 4,
      "llama.attention.head_count_kv": 2,
      "llama.rope.dimension_count": 16,
      "llama.attention.layer_norm_rms_epsilon": Math.fround(1e-5),
      "llama.rope.freq_base": 10000,
      "tokenizer.ggml.model": "llama",
      "tokenizer.ggml.scores": written.vocabulary.scores,
      "tokenizer.ggml.unknown_token_id": 0,
      "tokenizer.ggml.bos_token_id": 1,
      "tokenizer.ggml.eos_token_id": 2,
      "tokenizer.ggml.add_bos_token": true,
      "tokenizer.ggml.add_eos_token": false,
      "tokenizer.ggml.add_space_prefix": false,
    });
    expect(parsed.metadata.get("tokenizer.ggml.tokens")).toEqual(written.vocabulary.tokens);
    expect(parsed.metadata.get("tokenizer.ggml.token_type")).toEqual(written.vocabulary.tokenTypes);
    expect([...parsed.tensors.keys()].slice(0, 4)).toEqual([
      "token_embd.weight",
      "blk.0.attn_norm.weight",
      "blk.0.attn_q.weight",
      "blk.0.attn_k.weight",
    ]);
    expect(parsed.tensors.get("blk.1.ffn_gate.weight")?.dimensions).toEqual([64, 128]);
    expect(parsed.tensors.get("output.weight")?.dimensions).toEqual([64, 512]);
  });

  it("draws weights at the documented scales and silences byte and control rows of the output", () => {
    const parsed = readGguf(writeTinyLlamaGguf(path.join(directory, "scales.gguf")).path);
    const std = (values: Float32Array, mean = 0) =>
      Math.sqrt(values.reduce((sum, value) => sum + (value - mean) ** 2, 0) / values.length);
    expect(std(parsed.tensors.get("token_embd.weight")!.data)).toBeCloseTo(1, 1);
    expect(std(parsed.tensors.get("blk.0.ffn_up.weight")!.data)).toBeCloseTo(1 / 8, 2);
    expect(std(parsed.tensors.get("blk.0.ffn_down.weight")!.data)).toBeCloseTo(1 / Math.sqrt(128), 2);
    expect(std(parsed.tensors.get("output_norm.weight")!.data, 1)).toBeCloseTo(0.1, 1);
    const output = parsed.tensors.get("output.weight")!.data;
    const row = (id: number) => output.subarray(id * 64, (id + 1) * 64);
    for (const id of [0, 1, byteTokenId(0), byteTokenId(0xff)])
      expect(row(id).every((value) => value === 0)).toBe(true);
    expect(row(2).some((value) => value !== 0)).toBe(true); // </s> can end generation
    expect(row(300).some((value) => value !== 0)).toBe(true);
  });

  it("writes each architecture's own tensors and metadata keys", () => {
    const tensorsOf = (architecture: TinyArchitecture) => {
      const parsed = readGguf(
        writeTinyLlamaGguf(path.join(directory, `${architecture}.gguf`), { architecture }).path,
      );
      expect(parsed.metadata.get("general.architecture")).toBe(architecture);
      expect(parsed.metadata.get(`${architecture}.block_count`)).toBe(2);
      return parsed;
    };
    const names = (architecture: TinyArchitecture) => [...tensorsOf(architecture).tensors.keys()];
    const layerZero = (architecture: TinyArchitecture) =>
      names(architecture)
        .filter((name) => name.startsWith("blk.0."))
        .map((name) => name.slice(6));
    expect(layerZero("mistral3")).toEqual(layerZero("llama"));
    expect(layerZero("qwen2")).toEqual([
      ...layerZero("llama").slice(0, 4),
      "attn_q.bias",
      "attn_k.bias",
      "attn_v.bias",
      ...layerZero("llama").slice(4),
    ]);
    expect(layerZero("qwen3")).toContain("attn_q_norm.weight");
    expect(layerZero("phi3")).toEqual([
      "attn_norm.weight",
      "attn_qkv.weight",
      "attn_output.weight",
      "ffn_norm.weight",
      "ffn_up.weight",
      "ffn_down.weight",
    ]);
    const phi3 = tensorsOf("phi3");
    // Q (64) + K and V (32 each) fused; gate and up fused (2 × 128).
    expect(phi3.tensors.get("blk.0.attn_qkv.weight")?.dimensions).toEqual([64, 128]);
    expect(phi3.tensors.get("blk.0.ffn_up.weight")?.dimensions).toEqual([64, 256]);
    for (const gemma of ["gemma2", "gemma3"] as const) {
      expect(layerZero(gemma)).toContain("post_attention_norm.weight");
      expect(layerZero(gemma)).toContain("post_ffw_norm.weight");
      expect(tensorsOf(gemma).metadata.get(`${gemma}.attention.sliding_window`)).toBe(16);
    }
    const moe = tensorsOf("qwen3moe");
    expect(moe.metadata.get("qwen3moe.expert_count")).toBe(4);
    expect(moe.metadata.get("qwen3moe.expert_used_count")).toBe(2);
    // Four experts of half the FFN width each, and a router from the residual stream to them.
    expect(moe.tensors.get("blk.0.ffn_gate_exps.weight")?.dimensions).toEqual([64, 64, 4]);
    expect(moe.tensors.get("blk.0.ffn_down_exps.weight")?.dimensions).toEqual([64, 64, 4]);
    expect(moe.tensors.get("blk.0.ffn_gate_inp.weight")?.dimensions).toEqual([64, 4]);
    expect(layerZero("qwen3moe")).not.toContain("ffn_gate.weight");
    expect(names("gemma2")).not.toContain("output.weight");
    expect(names("gemma3")).toContain("output.weight");
    expect(layerZero("gemma3")).toContain("attn_k_norm.weight");
  });

  it("refuses shapes llama.cpp cannot run", () => {
    const target = path.join(directory, "bad.gguf");
    expect(() => writeTinyLlamaGguf(target, { nHead: 5 })).toThrow(/multiple of nHead/);
    expect(() => writeTinyLlamaGguf(target, { nHeadKv: 3 })).toThrow(/multiple of nHeadKv/);
    expect(() => writeTinyLlamaGguf(target, { nEmbd: 36, nHead: 4, nHeadKv: 4 })).toThrow(/even/);
    expect(() => writeTinyLlamaGguf(target, { nLayer: 0 })).toThrow(/nLayer/);
  });

  it("sizes the benchmark model near 70 M parameters with F16 matrices", () => {
    expect(llamaParameterCount(BENCH_LLAMA_OPTIONS)).toBe(69_476_864);
    expect(BENCH_LLAMA_OPTIONS.matrixType).toBe("F16");
    expect(BENCH_LLAMA_OPTIONS.vocab).toBe(32000);
  });
});

describe("referenceForward on the generated model", () => {
  const parsed = readGguf(writeTinyLlamaGguf(path.join(directory, "forward.gguf")).path);
  const ids = [1, 300, 301, 302];
  const result: ReferenceForwardResult = referenceForward(parsed, ids);

  it("starts the residual stream at the last token's embedding row", () => {
    expect(result.layerInputs).toHaveLength(2);
    expect(result.layerInputs[0]).toEqual(
      parsed.tensors.get("token_embd.weight")!.data.subarray(302 * 64, 303 * 64),
    );
    expect(result.layerInputs[1]).not.toEqual(result.layerInputs[0]);
  });

  it("derives the logits from the final hidden state with the output matrix", () => {
    const logits = matVec(parsed.tensors.get("output.weight")!.data, 64, 512, result.hiddenFinal);
    for (let i = 0; i < 512; i += 37) expect(result.logitsLast[i]).toBeCloseTo(logits[i]!, 4);
    expect(result.logitsLast[byteTokenId(65)]).toBe(0);
    expect(result.logitsLast[argmax(result.logitsLast)]).toBeGreaterThan(1);
  });

  it("depends on the order of earlier tokens (rope) and refuses bad ids", () => {
    const swapped = referenceForward(parsed, [1, 301, 300, 302]);
    expect(swapped.hiddenFinal).not.toEqual(result.hiddenFinal);
    expect(() => referenceForward(parsed, [])).toThrow(RangeError);
    expect(() => referenceForward(parsed, [512])).toThrow(RangeError);
  });
});
