import { UnsupportedError, UsageError } from "../../errors/index.js";
import { memoizeBounded } from "./bounded-memo.js";
import { tokenize13a } from "./tokenizer-13a.js";
import { tokenizeCharacters } from "./tokenizer-char.js";
import { tokenizeInternational } from "./tokenizer-intl.js";
import { tokenizeNone } from "./tokenizer-none.js";
import { tokenizeChinese } from "./tokenizer-zh.js";

/** The sacreBLEU tokenizers routelmt implements; the name is also what signatures print after `tok:`. */
export const TOKENIZER_NAMES = ["none", "zh", "13a", "intl", "char"] as const;

/** A tokenizer name from {@link TOKENIZER_NAMES}. */
export type TokenizerName = (typeof TOKENIZER_NAMES)[number];

/** sacreBLEU tokenizers that need external tools or models routelmt does not ship. */
const UNSUPPORTED_TOKENIZERS: ReadonlySet<string> = new Set([
  "ja-mecab",
  "ko-mecab",
  "spm",
  "flores101",
  "flores200",
]);

/** A tokenizer as BLEU uses it: a pure line-to-line function plus its signature name. */
export interface Tokenizer {
  readonly name: TokenizerName;
  /** Returns the line with tokens separated by single spaces. Memoised (bounded). */
  tokenize(line: string): string;
}

/** Same bound as sacreBLEU's `lru_cache(maxsize=2**16)`. */
const MEMO_ENTRIES = 2 ** 16;

const TOKENIZE_FUNCTIONS: Record<TokenizerName, (line: string) => string> = {
  none: tokenizeNone,
  zh: tokenizeChinese,
  "13a": tokenize13a,
  intl: tokenizeInternational,
  char: tokenizeCharacters,
};

const tokenizers = new Map<TokenizerName, Tokenizer>();

/** Whether `name` is a tokenizer routelmt implements. */
export function isTokenizerName(name: string): name is TokenizerName {
  return (TOKENIZER_NAMES as readonly string[]).includes(name);
}

/**
 * Returns the (shared, memoised) tokenizer called `name`.
 *
 * @throws UnsupportedError for sacreBLEU tokenizers that need MeCab or SentencePiece models.
 * @throws UsageError for any other unknown name.
 */
export function getTokenizer(name: string): Tokenizer {
  if (!isTokenizerName(name)) {
    if (UNSUPPORTED_TOKENIZERS.has(name)) {
      throw new UnsupportedError(
        `tokenizer '${name}' needs external models and is not available in routelmt`,
      );
    }
    throw new UsageError(`unknown tokenizer '${name}'; expected one of ${TOKENIZER_NAMES.join(", ")}`);
  }
  let tokenizer = tokenizers.get(name);
  if (!tokenizer) {
    // `none` is the identity: caching it would only hold on to memory
    const tokenize = name === "none" ? tokenizeNone : memoizeBounded(TOKENIZE_FUNCTIONS[name], MEMO_ENTRIES);
    tokenizer = { name, tokenize };
    tokenizers.set(name, tokenizer);
  }
  return tokenizer;
}
