import { describe, expect, it } from "vitest";
import { unseenPairs } from "./evaluate-dataset.js";

const segment = (src_lang: string | null, tgt_lang: string | null) => ({ src_lang, tgt_lang });

describe("unseenPairs", () => {
  it("counts segments of pairs the router never saw, ignoring case", () => {
    expect(
      unseenPairs({ language_pairs: [["en", "de"]] }, [segment("en", "de"), segment("EN", "DE")]),
    ).toBeNull();
    expect(
      unseenPairs({ language_pairs: [["en", "de"]] }, [
        segment("en", "de"),
        segment("en", "fr"),
        segment("de", "en"),
      ]),
    ).toBe(
      "2 of 3 segments are of language pairs the router was not trained on (en→fr, de→en; trained on en→de): its scores there are extrapolation",
    );
  });

  it("judges nothing when the router recorded no pair or a pair without languages, or a segment has none", () => {
    expect(unseenPairs({ language_pairs: [] }, [segment("en", "fr")])).toBeNull();
    expect(unseenPairs({ language_pairs: [[null, null]] }, [segment("en", "fr")])).toBeNull();
    expect(unseenPairs({ language_pairs: [["en", "de"]] }, [segment(null, null)])).toBeNull();
  });
});
