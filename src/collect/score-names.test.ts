import { describe, expect, it } from "vitest";
import { UsageError } from "../errors/index.js";
import { refuseDuplicateScoreNames } from "./score-names.js";

describe("refuseDuplicateScoreNames", () => {
  it("lets distinct names through", () => {
    expect(() =>
      refuseDuplicateScoreNames(
        [
          { name: "chrf", source: "--metric chrf" },
          { name: "bleu", source: "--extra-metric bleu" },
          { name: "CHRF", source: "--extra-metric http:http://h/score#CHRF" },
        ],
        "rename one",
      ),
    ).not.toThrow();
  });

  it("names the first two sources of a repeated name, on one line", () => {
    const refuse = () =>
      refuseDuplicateScoreNames(
        [
          { name: "chrf", source: "--metric chrf" },
          { name: "bleu", source: "--extra-metric bleu" },
          { name: "chrf", source: "--extra-metric http:http://h/score#chrf" },
          { name: "chrf", source: "--extra-metric chrf" },
        ],
        "rename one",
      );
    expect(refuse).toThrow(UsageError);
    expect(refuse).toThrow(
      '--metric chrf and --extra-metric http:http://h/score#chrf are both named "chrf": scores are kept by name, so one would replace the other; rename one',
    );
  });
});
