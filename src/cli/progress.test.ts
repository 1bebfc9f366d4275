import { describe, expect, it } from "vitest";
import { chunkedProgress, formatDuration, ProgressReporter } from "./progress.js";

function capture(isTty: boolean) {
  const lines: string[] = [];
  return { io: { stdout: () => {}, stderr: (text: string) => lines.push(text), isTty }, lines };
}

describe("ProgressReporter", () => {
  it("prints rate and ETA for this run, counting resumed work in the total only", () => {
    let clock = 0;
    const { io, lines } = capture(false);
    const progress = new ProgressReporter(io, {
      label: "collect",
      total: 100,
      initial: 40,
      plainIntervalSeconds: 5,
      now: () => clock,
    });
    clock = 2000;
    progress.advance(10);
    expect(lines).toEqual([]);
    clock = 5000;
    progress.advance(10);
    // 20 fresh segments in 5 s = 4/s; 40 left → 10 s.
    expect(lines).toEqual(["collect 60/100 60% 4.00 seg/s ETA 10s\n"]);
    progress.finish();
    expect(lines[1]).toBe("collect 60/100 done in 5s\n");
  });

  it("redraws a bar on a terminal", () => {
    let clock = 0;
    const { io, lines } = capture(true);
    const progress = new ProgressReporter(io, { label: "x", total: 4, now: () => clock });
    clock = 1000;
    progress.advance(2);
    expect(lines[0]).toMatch(/^\r\[#{12}-{12}\] x 2\/4 50% 2\.00 seg\/s ETA 1s/);
  });
});

describe("chunkedProgress", () => {
  it("counts against the job's own total and reports a resume once", () => {
    const { io, lines } = capture(false);
    const resumes: [number, number][] = [];
    // The job has 20 items (say 23 input lines, 3 skipped); an earlier run did 8.
    const progress = chunkedProgress(io, "collect", (alreadyDone, total) =>
      resumes.push([alreadyDone, total]),
    );
    progress.onProgress(12, 20, 4);
    progress.onProgress(16, 20, 4);
    progress.onProgress(20, 20, 4);
    progress.finish();
    expect(resumes).toEqual([[8, 20]]);
    expect(lines.at(-1)).toMatch(/^collect 20\/20 done in /);
  });

  it("prints nothing when the job had nothing left to do", () => {
    const { io, lines } = capture(false);
    chunkedProgress(io, "collect").finish();
    expect(lines).toEqual([]);
  });
});

describe("formatDuration", () => {
  it("formats seconds, minutes and hours", () => {
    expect(formatDuration(5.4)).toBe("5s");
    expect(formatDuration(245)).toBe("4m05s");
    expect(formatDuration(3720)).toBe("1h02m");
    expect(formatDuration(Number.NaN)).toBe("?");
  });
});
