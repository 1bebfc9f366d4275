import { describe, expect, it } from "vitest";
import { InputError } from "../errors/index.js";
import { UniqueIds } from "./unique-ids.js";

describe("UniqueIds", () => {
  it("accepts distinct ids and refuses a repeat naming both lines", () => {
    const ids = new UniqueIds("in.jsonl");
    ids.add("a", 1);
    ids.add("b", 3);
    ids.add("A", 4);
    const repeat = (() => {
      try {
        ids.add("b", 7);
      } catch (error) {
        return error;
      }
    })();
    expect(repeat).toBeInstanceOf(InputError);
    expect((repeat as InputError).message).toBe('in.jsonl:7: duplicate id "b" (first on line 3)');
  });
});
