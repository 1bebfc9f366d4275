/**
 * The generated model pair the end-to-end CLI tests run on: two random-weight tiny llamas (the large
 * one wider) with a one-line prompt template, sentences over a small vocabulary both can tokenize,
 * and the `routelmt collect` arguments that drive them on one thread.
 */
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { writeTinyLlamaGguf } from "./tiny-llama.js";

/** The prompt template of the fixture pair. */
export const FIXTURE_TEMPLATE = "{src}: {text}\n{tgt}:";

const FIXTURE_WORDS = [
  "the",
  "cat",
  "dog",
  "sat",
  "on",
  "a",
  "red",
  "mat",
  "big",
  "house",
  "man",
  "with",
  "hello",
  "world",
];

/** How {@link fixtureSentence} picks its words. */
export interface SentenceShape {
  /** Sentence `index` has 3 + (index mod lengthCycle) words. */
  lengthCycle: number;
  /** Word k of sentence `index` is word (index·stride + 3k + shift) of the vocabulary, cyclically. */
  stride: number;
  /** Defaults to 0; another shift gives a different sentence of the same length (a reference). */
  shift?: number;
}

/** A deterministic sentence over the fixture vocabulary. */
export function fixtureSentence(index: number, shape: SentenceShape): string {
  const { lengthCycle, stride, shift = 0 } = shape;
  return Array.from(
    { length: 3 + (index % lengthCycle) },
    (_, k) => FIXTURE_WORDS[(index * stride + k * 3 + shift) % FIXTURE_WORDS.length],
  ).join(" ");
}

/** Paths of a written fixture pair. */
export interface FixturePair {
  small: string;
  large: string;
  template: string;
}

/**
 * Writes `small.gguf`, `large.gguf` (hidden size 96 against 64) and `template.txt` into `directory`.
 * @param seeds weight seeds; defaults to 11 and 22.
 */
export async function writeFixturePair(
  directory: string,
  seeds: { small: number; large: number } = { small: 11, large: 22 },
): Promise<FixturePair> {
  const small = path.join(directory, "small.gguf");
  const large = path.join(directory, "large.gguf");
  writeTinyLlamaGguf(small, { seed: seeds.small });
  writeTinyLlamaGguf(large, { seed: seeds.large, nEmbd: 96, nHead: 6, nHeadKv: 3 });
  const template = path.join(directory, "template.txt");
  await writeFile(template, FIXTURE_TEMPLATE);
  return { small, large, template };
}

/** What `routelmt collect` reads and writes. */
export interface CollectPaths {
  small: string;
  large: string;
  template: string;
  input: string;
  out: string;
}

/** `routelmt collect` arguments: the pair on one thread each, English to German, then `extra`. */
export function collectArguments(paths: CollectPaths, extra: readonly string[] = []): string[] {
  return [
    "collect",
    ...["--small", paths.small, "--large", paths.large, "--template", paths.template],
    ...["--in", paths.input, "--out", paths.out],
    ...["--src-lang", "en", "--tgt-lang", "de", "--threads", "1"],
    ...extra,
  ];
}
