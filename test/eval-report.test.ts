/**
 * The eval report as files: summary.json, curves.csv, the plot (SVG parsed as text, PNG checked by
 * its header), report.md, and report.html opened in headless Chromium when it is installed.
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { beforeAll, describe, expect, it } from "vitest";
import type { DatasetMeta, DatasetRecord } from "../src/dataset/types.js";
import { UnsupportedError } from "../src/errors/index.js";
import { type EvalPolicy, evalSegmentsFromDataset, rankingRealization } from "../src/eval/policies.js";
import {
  csvField,
  curvesCsv,
  escapeHtml,
  escapeMarkdown,
  findChartFonts,
  formatNumber,
  formatPercent,
  plainReading,
  routerReading,
  writeReport,
} from "../src/eval/report/index.js";
import type { GuardTradeoff, GuardTradeoffPoint, RouterFindings } from "../src/eval/router-findings.js";
import { type EvalSummary, runEval } from "../src/eval/run-eval.js";
import { createRandom, normal } from "../src/stats/random.js";

const CHROMIUM = "/usr/bin/chromium";
const HOSTILE = `<script>"x"&|`;

function meta(count: number): DatasetMeta {
  return {
    n: count,
    dim: null,
    label_metric: "chrf<b>",
    label_higher_is_better: true,
    metric_signatures: {},
    small: { spec: null, fingerprint: null, arch: null, layer: null },
    large: { spec: null },
    template: null,
    src_lang: "en",
    tgt_lang: "de",
    created: "2026-01-01T00:00:00.000Z",
    routelmt_version: "0.0.0",
    source: { kind: "import", input: "in.jsonl", fields: {}, skipped_null_label: 0 },
  };
}

/**
 * N segments with gain ~ N(1, 8); the "routelmt" score is gain plus noise of the given size, the
 * hostile-named baseline is pure noise, length is gain-free.
 */
function evaluation(routerNoise: number, seed: number): EvalSummary {
  const count = 300;
  const random = createRandom(seed);
  const records: DatasetRecord[] = [];
  for (let index = 0; index < count; index++) {
    const small = normal(random, 40, 10);
    const gain = normal(random, 1, 8);
    records.push({
      id: `s${index}`,
      src: "x",
      ref: null,
      src_lang: null,
      tgt_lang: null,
      small: null,
      large: null,
      scores: {},
      q_small: small,
      q_large: small + gain,
      gain,
      src_chars: 10 + Math.floor(random.nextFloat() * 100),
      prompt_tokens: null,
      entropy: null,
    });
  }
  const segments = evalSegmentsFromDataset(meta(count), records);
  const { ids } = segments.outcomes;
  const gains = records.map((record) => record.gain!);
  const policy = (name: string, family: EvalPolicy["family"], scores: number[]): EvalPolicy => ({
    name,
    family,
    description: `${name} description`,
    realizations: [rankingRealization(Float64Array.from(scores), ids)],
    cost: null,
  });
  const policies = [
    policy(
      "routelmt",
      "router",
      gains.map((gain) => gain + normal(random, 0, routerNoise)),
    ),
    policy(
      "length",
      "baseline",
      records.map((record) => record.src_chars),
    ),
    policy(
      `external:${HOSTILE}`,
      "baseline",
      gains.map(() => random.nextFloat()),
    ),
    policy("oracle-gain", "oracle", gains),
  ];
  return runEval(segments, policies, {
    severeDelta: 10,
    seed: 1,
    labelMetric: "chrf<b>",
    bootstrapResamples: 300,
  });
}

const execFileAsync = promisify(execFile);

/** Text of escaped markup (the five entities the SVG and HTML writers emit). */
function decodeEntities(text: string): string {
  return text
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&amp;/g, "&");
}

describe("eval report files", () => {
  let directory: string;
  let summary: EvalSummary;

  beforeAll(async () => {
    directory = await mkdtemp(path.join(tmpdir(), "routelmt-eval-report-"));
    summary = evaluation(2, 21);
    await writeReport(summary, directory);
  }, 60_000);

  it("writes summary.json in the shape other tooling reads", async () => {
    const written = JSON.parse(await readFile(path.join(directory, "summary.json"), "utf8"));
    for (const key of ["n", "label_metric", "small_only", "large_only", "budgets", "policies", "ci"]) {
      expect(written).toHaveProperty(key);
    }
    const router = written.policies.routelmt;
    for (const key of ["spearman", "auc", "apgr", "cpt", "curve"]) expect(router).toHaveProperty(key);
    expect(Object.keys(router.cpt).sort()).toEqual(["20", "50", "80"]);
    for (const key of [
      "budget",
      "quality",
      "realized",
      "mean_delta",
      "hit_rate",
      "severe_loss",
      "regressions",
    ]) {
      expect(router.curve[3]).toHaveProperty(key);
    }
    expect(Object.keys(written.ci).sort()).toEqual(["0.1", "0.2", "0.3", "0.5"]);
    for (const key of ["vs", "diff", "lo", "hi"]) expect(written.ci["0.3"]).toHaveProperty(key);
    expect(written).toEqual(JSON.parse(JSON.stringify(summary)));
  });

  it("draws one line per policy, labelled in the legend, plus both reference lines", async () => {
    const svg = await readFile(path.join(directory, "pareto.svg"), "utf8");
    const lineLabels = [
      ...svg.matchAll(/aria-label="([^"]*)" role="graphics-symbol" aria-roledescription="line mark"/g),
    ].map((match) => /Policy: (.*); Kind: [a-z]+$/.exec(decodeEntities(match[1]!))?.[1]);
    const expected = Object.keys(summary.policies);
    expect(lineLabels.sort()).toEqual([...expected].sort());
    const legendLabels = [
      ...svg.matchAll(/class="mark-text role-legend-label"[^>]*><text[^>]*>([^<]*)<\/text>/g),
    ].map((match) => decodeEntities(match[1]!));
    for (const name of expected) expect(legendLabels).toContain(name);
    expect(legendLabels).toEqual(expect.arrayContaining(["router", "baseline", "oracle"]));
    expect(svg).toContain(`small only ${formatNumber(summary.small_only)}`);
    expect(svg).toContain(`large only ${formatNumber(summary.large_only)}`);
    expect(svg).toContain("Budget p (share of segments sent to the large model)");
    expect(svg).toContain("Mean hybrid quality (chrf&lt;b&gt;)");
    // Data strings are escaped: no raw script element anywhere.
    expect(svg).not.toContain("<script");
  });

  it("renders a PNG at twice the SVG's size", async () => {
    const png = await readFile(path.join(directory, "pareto.png"));
    const svg = await readFile(path.join(directory, "pareto.svg"), "utf8");
    expect([...png.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    expect(png.toString("latin1", 12, 16)).toBe("IHDR");
    const [, width, height] = /<svg[^>]* width="(\d+)" height="(\d+)"/.exec(svg)!.map(Number);
    expect(png.readUInt32BE(16)).toBe(2 * width!);
    expect(png.readUInt32BE(20)).toBe(2 * height!);
    expect(width!).toBeGreaterThan(600);
    // Lines, points and real glyphs make a PNG of this size well above a blank canvas's few kilobytes.
    expect(png.length).toBeGreaterThan(40_000);
    expect(png.length).toBeLessThan(3_000_000);
  });

  it("writes curves.csv with one row per policy and budget", async () => {
    const lines = (await readFile(path.join(directory, "curves.csv"), "utf8")).trim().split("\n");
    expect(lines[0]!.startsWith("policy,family,budget,quality,realized,mean_delta")).toBe(true);
    expect(lines).toHaveLength(1 + 4 * 21);
    const hostileRow = lines.find((line) => line.startsWith('"external:'));
    expect(hostileRow?.startsWith(csvField(`external:${HOSTILE}`))).toBe(true);
    const zero = lines.find((line) => line.startsWith("routelmt,router,0,"))!.split(",");
    expect(Number(zero[3])).toBeCloseTo(summary.small_only, 9);
    expect(zero[5]).toBe(""); // MeanDelta of nothing routed
  });

  it("writes report.md with the budget tables and escaped names", async () => {
    const markdown = await readFile(path.join(directory, "report.md"), "utf8");
    for (const budget of ["10 %", "20 %", "30 %", "50 %"])
      expect(markdown).toContain(`### Budget p = ${budget}`);
    expect(markdown).toContain("| Policy | Quality | MeanDelta | HitRate | Severe loss | Realized |");
    expect(markdown).not.toContain("<script");
    expect(markdown).toContain("&lt;script&gt;");
    expect(markdown).toContain("&amp;\\|");
  });

  it("writes a self-contained, escaped report.html", async () => {
    const html = await readFile(path.join(directory, "report.html"), "utf8");
    expect(html).not.toContain("<script");
    expect(html).toContain("external:&lt;script&gt;&quot;x&quot;&amp;|");
    expect(html).not.toMatch(/\b(src|href)=["']?https?:/);
    expect(html).not.toMatch(/<link\b|@import|url\(/);
    expect(html).toContain("default-src 'none'");
    expect(html).toMatch(/<svg[^>]*class="marks"/);
  });

  it.skipIf(!existsSync(CHROMIUM))(
    "opens offline in headless Chromium with the plot and the tables (skipped without /usr/bin/chromium: apt-get install -y chromium)",
    async () => {
      const profile = await mkdtemp(path.join(tmpdir(), "routelmt-chromium-"));
      const { stdout } = await execFileAsync(
        CHROMIUM,
        [
          "--headless",
          "--no-sandbox",
          "--disable-gpu",
          "--disable-background-networking",
          "--disable-component-update",
          "--disable-sync",
          "--no-first-run",
          `--user-data-dir=${profile}`,
          "--dump-dom",
          pathToFileURL(path.join(directory, "report.html")).href,
        ],
        { timeout: 90_000, maxBuffer: 64 * 1024 * 1024 },
      );
      expect(stdout).toMatch(/<svg[^>]*class="marks"/);
      expect(stdout).toContain('aria-roledescription="line mark"');
      const table = /<table id="table-p-0\.3">([\s\S]*?)<\/table>/.exec(stdout)?.[1];
      expect(table).toBeDefined();
      const rows = [...table!.matchAll(/<tr class="(router|baseline|oracle)"><td>([^<]*)<\/td>/g)].map(
        (match) => decodeEntities(match[2]!),
      );
      expect(rows).toEqual(Object.keys(summary.policies));
      expect(stdout).toContain('<table id="ci-table">');
      expect(stdout).toContain("At a 30 % budget RouteLMT routes segments whose mean gain is");
      // The parser kept the hostile name as text: no script element made it into the DOM.
      expect(stdout).not.toContain("<script");
    },
    120_000,
  );
});

describe("plain-language reading", () => {
  it("says plainly when the router beats the best baseline", () => {
    const reading = plainReading(evaluation(1, 31)).join("\n");
    expect(reading).toMatch(
      /At a 30 % budget RouteLMT routes segments whose mean gain is \S+ vs \S+ for the best baseline \(/,
    );
    expect(reading).toMatch(/lies above 0, so on this data RouteLMT beats/);
    expect(reading).toContain(
      "RouteLMT beats the best baseline at every reported budget (10 %, 20 %, 30 %, 50 %).",
    );
    expect(reading).toMatch(/The gain oracle shows the headroom: at 30 % it routes segments with mean gain/);
    expect(reading).toMatch(
      /RouteLMT's MeanDelta minus each other ranking's, with its 95 % CI — length: 10 % \+\S+ \[\S+, \S+\], 20 % .*; external:.*: the interval lies above 0 against every one at every reported budget\./,
    );
  });

  it("says plainly when the router does not beat the baselines", () => {
    const summary = evaluation(1e6, 41);
    const reading = plainReading(summary).join("\n");
    expect(reading).toMatch(/RouteLMT does NOT beat the best baseline at any reported budget/);
    expect(reading).toMatch(/the interval does not lie above 0 against length at 10 %, /);
    const interval = summary.ci["0.3"]!;
    if (interval.lo <= 0 && interval.hi >= 0) {
      expect(reading).toContain(
        `includes 0, so on this data the router is not distinguishable from ${interval.vs}`,
      );
    }
  });
});

/** A guard's held-out trade-off at 10 % and 30 %: λ = 0 (RouteLMT) and one other point, `chosen` in use. */
function guardTradeoffAt(chosen: number, other: GuardTradeoffPoint): GuardTradeoff {
  return {
    chosen_lambda: chosen,
    tolerance: 0.05,
    risk_delta: 10,
    budgets: [0.1, 0.3],
    points: [{ lambda: 0, mean_delta: [10, 8], severe_loss: [0.04, 0.05] }, other],
    cross_validated: [],
  };
}

/** A summary with a guarded policy and the router's findings; `helps` makes λ = 8 cut severe losses. */
function withFindings(helps: boolean): EvalSummary {
  const summary = evaluation(1, 31);
  summary.policies.guarded = { ...summary.policies.routelmt! };
  const findings: RouterFindings = {
    blocks: ["mean:1", "last:final"],
    selection: {
      rule: "rule",
      candidates: 7,
      chosen: { blocks: ["mean:1", "last:final"], probe: "ridge", score: 12.5, score_se: 0.5 },
      default: { score: 11, score_se: 0.6 },
      versus_default: { diff: 1.5, se: 0.4 },
      estimate: { score: 11.8, lo: 10.9, hi: 12.6, versus_default: { diff: 0.6, lo: -0.2, hi: 1.4 } },
      budgets: [0.1, 0.3],
      seconds: 3,
    },
    learning_curve: {
      verdict: "rising",
      reading: "More labels would likely help: test.",
      points: [
        { share: 0.25, rows: 100, mean_delta: 9, lo: 8, hi: 10 },
        { share: 0.5, rows: 200, mean_delta: 10, lo: 9, hi: 11 },
        { share: 1, rows: 400, mean_delta: 12, lo: 11, hi: 13 },
      ],
    },
    guard: guardTradeoffAt(0, {
      lambda: 8,
      mean_delta: [9.8, 7.9],
      severe_loss: helps ? [0.02, 0.03] : [0.05, 0.03],
    }),
    guard_qe: null,
    guarded_by: "in-model",
  };
  summary.router = findings;
  return summary;
}

/** The same, with a post-hoc guard (guarded-qe) whose λ = 5 cuts severe losses at both budgets. */
function withConfidenceGuard(): EvalSummary {
  const summary = withFindings(false);
  summary.policies["guarded-qe"] = {
    ...summary.policies.routelmt!,
    curve: summary.policies.routelmt!.curve.map((entry) => ({
      ...entry,
      severe_loss: entry.severe_loss === null ? null : entry.severe_loss / 2,
    })),
  };
  summary.router!.guard_qe = guardTradeoffAt(5, {
    lambda: 5,
    mean_delta: [10.2, 7.9],
    severe_loss: [0.02, 0.03],
  });
  return summary;
}

describe("what the report says about the router", () => {
  it("names the feature view, the learning-curve verdict and the guard's effect", () => {
    const reading = routerReading(withFindings(false)).join("\n");
    expect(reading).toContain(
      "Feature view: the router reads mean:1 + last:final with a ridge probe, chosen in training among 7 candidates by nested cross-validation",
    );
    expect(reading).toContain("a paired difference of +1.50 ± 0.400");
    expect(reading).toContain(
      "That score is the best of 7 measured on the same folds, so it runs high; replaying the choice on bootstrap resamples of the training rows (bias-corrected cross-validation), choosing is worth 11.80 [10.90, 12.60], against the default +0.600 [−0.200, 1.40] — not distinguishable from the default.",
    );
    const beats = withFindings(false);
    beats.router!.selection!.estimate!.versus_default = { diff: 0.9, lo: 0.1, hi: 1.7 };
    expect(routerReading(beats).join("\n")).toContain("— the chosen view beats the default.");
    expect(reading).toContain(
      "More labels would likely help: test. Cross-validated mean MeanDelta by training size: 25 % of the labels (100 rows): 9.00 [8.00, 10.00]; 50 %",
    );
    expect(reading).toMatch(/λ = 0: in training no affordable λ cut .* so guarded ranks exactly as RouteLMT/);
    expect(reading).toContain("On this data no λ of the grid cuts severe losses at every reported budget");
    expect(plainReading(withFindings(false)).join("\n")).toContain("Feature view:");
    expect(reading).not.toContain("words block");
    const words = withFindings(false);
    words.router!.blocks = ["mean:0", "words"];
    expect(routerReading(words).join("\n")).toContain(
      "The words block is the source text as a hashed bag of words (computed from the text, not read from the model)",
    );
    words.router!.blocks = ["length"];
    expect(routerReading(words).join("\n")).toContain(
      "The length block is the source's length in words and characters",
    );
  });

  it("says so when some λ would have cut severe losses on this data", () => {
    expect(routerReading(withFindings(true)).join("\n")).toContain(
      "On this data 1 λ of the grid (from 8.00) cut severe losses at every reported budget within that MeanDelta tolerance",
    );
  });

  it("reports the post-hoc guard's λ, its severe losses against RouteLMT's, and its own trade-off", async () => {
    const summary = withConfidenceGuard();
    const reading = routerReading(summary).join("\n");
    expect(reading).toContain("Post-hoc guard: guarded-qe decodes the small model's translation first");
    expect(reading).toContain("λ = 5.00, chosen in training");
    const routelmtAt30 = summary.policies.routelmt!.curve.find(
      (entry) => Math.abs(entry.budget - 0.3) < 1e-9,
    )!;
    expect(reading).toContain(
      `30 %: ${formatPercent(routelmtAt30.severe_loss! / 2)} vs ${formatPercent(routelmtAt30.severe_loss)}`,
    );
    expect(reading).toContain("On this data 1 λ of the grid (from 5.00) cut severe losses");
    expect(routerReading(withFindings(false)).join("\n")).not.toContain("Post-hoc guard");
    // A λ that guards at some budgets only is reported as such, not as a guard without skill.
    const partly = withConfidenceGuard();
    partly.router!.guard_qe!.points[1] = { lambda: 5, mean_delta: [10.2, 7.9], severe_loss: [0.02, 0.06] };
    expect(routerReading(partly).join("\n")).toContain(
      "no λ of the grid cuts severe losses at every reported budget within that MeanDelta tolerance (see the trade-off plot); the λ in use cuts them within it at 10 % of 10 %, 30 %.",
    );
    const folder = await mkdtemp(path.join(tmpdir(), "routelmt-qe-guard-report-"));
    const files = await writeReport(summary, folder);
    expect(await readFile(files.guardQeSvg!, "utf8")).toContain("Post-hoc guard (guarded-qe) trade-off");
    expect(await readFile(files.html, "utf8")).toContain("Post-hoc guard trade-off (guarded-qe)");
    expect(await readFile(files.markdown, "utf8")).toContain("(guard-qe.png)");
  }, 60_000);

  it("says when the guarded policy ranks by the post-hoc guard, and not the in-model guard's figures", () => {
    const summary = withConfidenceGuard();
    summary.router!.guarded_by = "post-hoc";
    // The guarded policy's curve is the post-hoc ranking's: the in-model paragraph must not quote it.
    summary.policies.guarded = { ...summary.policies["guarded-qe"]! };
    const reading = routerReading(summary).join("\n");
    expect(reading).toContain(
      "Guard: the in-model guard (predicted gain − λ · predicted P(gain < −10.00), nothing decoded first) found no affordable λ",
    );
    expect(reading).toContain("guarded ranks as guarded-qe, below.");
    expect(reading).toContain("Post-hoc guard (the one the guarded policy ranks by): guarded-qe decodes");
    expect(reading).not.toMatch(/so guarded ranks exactly as RouteLMT/);
    expect(routerReading(withConfidenceGuard()).join("\n")).not.toContain(
      "the one the guarded policy ranks by",
    );
  });

  it("reads a post-hoc guard on the re-estimated gain against RouteLMT, not against its own λ = 0", async () => {
    const summary = withConfidenceGuard();
    const withSevere = (name: string, rate: number) => {
      const policy = summary.policies[name]!;
      summary.policies[name] = {
        ...policy,
        curve: policy.curve.map((entry) => ({ ...entry, severe_loss: rate })),
      };
    };
    withSevere("routelmt", 0.06);
    withSevere("guarded-qe", 0.03);
    summary.router!.guard_qe = {
      ...guardTradeoffAt(0, { lambda: 5, mean_delta: [9, 7], severe_loss: [0.05, 0.06] }),
      signal: "large-likelihood",
      restack_inputs: ["gain", "small-confidence", "large-likelihood", "length-ratio"],
    };
    const reading = routerReading(summary).join("\n");
    expect(reading).toContain(
      "ranks by the gain re-estimated after the decode (a ridge regression, fitted in training on out-of-fold predictions, of the gain on gain, small-confidence, large-likelihood, length-ratio",
    );
    expect(reading).toContain("λ = 0: no λ term on the re-estimate cut");
    expect(reading).not.toContain("so guarded-qe ranks exactly as RouteLMT");
    // guarded-qe halves RouteLMT's severe losses at the same MeanDelta: a cut at every budget...
    expect(reading).toContain(
      "On this data it cuts RouteLMT's severe losses within that MeanDelta tolerance at every reported budget.",
    );
    // ...and none where it routes as many.
    withSevere("guarded-qe", 0.06);
    expect(routerReading(summary).join("\n")).toContain(
      "On this data it cuts RouteLMT's severe losses within that MeanDelta tolerance at none of 10 %, 30 %.",
    );
    const folder = await mkdtemp(path.join(tmpdir(), "routelmt-restack-report-"));
    const files = await writeReport(summary, folder);
    const svg = await readFile(files.guardQeSvg!, "utf8");
    expect(svg).toContain(
      "Ranking by the re-estimated gain − λ · the large model's mean token log-probability",
    );
    expect(svg).toContain("Diamond: RouteLMT.");
    expect(await readFile(files.html, "utf8")).toContain(
      "its square, λ = 0, is the re-estimate, not RouteLMT",
    );
  }, 60_000);

  it("draws the guard's trade-off and the learning curve into the report", async () => {
    const folder = await mkdtemp(path.join(tmpdir(), "routelmt-guard-report-"));
    const files = await writeReport(withFindings(true), folder);
    const svg = await readFile(files.guardSvg!, "utf8");
    expect(svg).toContain("Guard trade-off");
    expect((await readFile(files.guardPng!)).subarray(1, 4).toString()).toBe("PNG");
    const html = await readFile(files.html, "utf8");
    expect(html).toContain('<section id="router">');
    expect(html).toContain('<table id="learning-curve">');
    expect(html).toContain("Guard trade-off");
    expect(await readFile(files.markdown, "utf8")).toContain(
      "![Severe losses vs MeanDelta over λ](guard.png)",
    );
  }, 60_000);
});

describe("formatting and fonts", () => {
  it("formats numbers for people", () => {
    expect(formatNumber(41.2749)).toBe("41.27");
    expect(formatNumber(123.45)).toBe("123.5");
    expect(formatNumber(0.81234)).toBe("0.812");
    expect(formatNumber(-0.015349)).toBe("−0.0153");
    expect(formatNumber(1e-15)).toBe("0");
    expect(formatNumber(null)).toBe("–");
    expect(formatPercent(0.3)).toBe("30.0 %");
    expect(escapeHtml(`<a href="x">'&'</a>`)).toBe("&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
    expect(escapeMarkdown("head's <b>|a_b*</b> [x](y)\n#2")).toBe(
      "head's &lt;b&gt;\\|a\\_b\\*&lt;/b&gt; \\[x\\](y) #2",
    );
  });

  it("fails with the package to install when no font is found", async () => {
    const empty = await mkdtemp(path.join(tmpdir(), "routelmt-no-fonts-"));
    expect(() => findChartFonts([empty])).toThrow(UnsupportedError);
    expect(() => findChartFonts([empty])).toThrow(/fonts-dejavu-core/);
  });

  it("quotes CSV fields that need it", () => {
    expect(curvesCsv(evaluation(2, 51)).split("\n")[0]).toContain("streaming_cap_blocked");
    expect(csvField('a,"b"')).toBe('"a,""b"""');
    expect(csvField(null)).toBe("");
  });
});
