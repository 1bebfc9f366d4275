/** sacreBLEU's `none` tokenizer: the line is used as is and later split on whitespace only. */
export function tokenizeNone(line: string): string {
  return line;
}
