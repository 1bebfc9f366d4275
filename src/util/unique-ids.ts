import { InputError } from "../errors/index.js";

/**
 * The ids of one file's lines, each allowed once: an id names one segment, and outputs, datasets
 * and score files are joined on it.
 */
export class UniqueIds {
  private readonly firstLines = new Map<string, number>();

  /** @param file named in the error. */
  constructor(private readonly file: string) {}

  /** @throws InputError naming the file, this line and the line the id was first on. */
  add(id: string, line: number): void {
    const first = this.firstLines.get(id);
    if (first !== undefined) {
      throw new InputError(`duplicate id ${JSON.stringify(id)} (first on line ${first})`, {
        file: this.file,
        line,
      });
    }
    this.firstLines.set(id, line);
  }
}
