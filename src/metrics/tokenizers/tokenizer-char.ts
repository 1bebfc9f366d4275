/**
 * sacreBLEU's `char` tokenizer: every Unicode code point becomes a token (whitespace characters
 * vanish later, when the line is split into tokens).
 */
export function tokenizeCharacters(line: string): string {
  return Array.from(line).join(" ");
}
