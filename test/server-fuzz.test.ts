/**
 * A seeded fuzzer of the HTTP API: a few hundred hostile requests over real sockets to a server on
 * 127.0.0.1 whose small model is a generated tiny GGUF decoding in-process (so hostile texts reach
 * a real tokenizer and prefill) and whose large model is a fake OpenAI server. Every request must
 * get an answer below 500, every error must be in the documented format, and the server must still
 * serve, with both engines healthy, afterwards.
 *
 * The seed is fixed so failures reproduce; ROUTELMT_FUZZ_SEED=<n> tries another stream, and a
 * failure names its seed and the requests that broke.
 */
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildApp } from "../src/server/app.js";
import { resolveServerConfig } from "../src/server/config.js";
import { serverErrorBodySchema } from "../src/server/errors.js";
import { createRandom, type Random, randomInt } from "../src/stats/random.js";
import { type FakeOpenAIServer, startFakeOpenAIServer } from "./helpers/fake-openai-server.js";
import { type RawResponse, rawRequest } from "./helpers/raw-http.js";
import { postJson, runConcurrently, sampleText, tinyGgufWithRouter } from "./server-fixtures.js";

const DEFAULT_SEED = 20_260_610;
const seed = Number(process.env.ROUTELMT_FUZZ_SEED ?? DEFAULT_SEED);
const CASES = 320;
const CONCURRENCY = 8;
const BODY_LIMIT = 64 * 1024;
const MAX_TEXT_BYTES = 2048;
const REQUEST_TIMEOUT_MS = 1000;

/** One hostile request: what is written on the socket (a number pauses that many ms). */
interface FuzzCase {
  kind: string;
  chunks: (string | number)[];
  /** HEAD answers carry no body to check. */
  head?: boolean;
}

/** A generator of one family of hostile requests. */
type Generator = (random: Random) => FuzzCase;

function pick<T>(random: Random, items: readonly T[]): T {
  return items[randomInt(random, items.length)]!;
}

/** UTF-8 bytes of `text` as a latin1 string: what `rawRequest` writes byte for byte. */
function bytes(text: string): string {
  return Buffer.from(text, "utf8").toString("latin1");
}

/** A request with `Connection: close`; `body` is already bytes (latin1), its length is announced unless given. */
function raw(
  method: string,
  target: string,
  headers: Record<string, string>,
  body = "",
  contentLength: number | null = body.length,
): string {
  const lines = [`${method} ${target} HTTP/1.1`, "Host: 127.0.0.1", "Connection: close"];
  for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);
  if (contentLength !== null && (body !== "" || method === "POST"))
    lines.push(`Content-Length: ${contentLength}`);
  return `${lines.join("\r\n")}\r\n\r\n${body}`;
}

const JSON_TYPE = { "content-type": "application/json" };
const ROUTES = ["/v1/translate", "/v1/chat/completions", "/v1/models", "/healthz", "/readyz", "/metrics"];

function postRoute(random: Random): string {
  return pick(random, ["/v1/translate", "/v1/translate", "/v1/chat/completions"]);
}

/** Text pieces that break naive Unicode handling. */
const UNICODE_PIECES = [
  "\u0000",
  "\ufeff",
  "\u202e", // right-to-left override
  "\u200f\u05e9\u05dc\u05d5\u05dd", // RTL mark, Hebrew
  "\u0645\u0631\u062d\u0628\u0627", // Arabic
  "e\u0301\u0302\u0303\u0304\u0305\u0306\u0307", // stacked combining marks
  "\ud83d\udc68\u200d\ud83d\udc69\u200d\ud83d\udc67", // family emoji, ZWJ sequence
  "\ud83c\uddfa\ud83c\uddf8", // flag
  "\uffff\ufffe", // noncharacters
  "\u200b\u200c\u200d", // zero-width
  "\u{10ffff}",
  "\u001b[31m", // terminal escape
  "\r\n\t",
  "Ω≈ç√∫",
  "日本語のテキスト",
  "{text}",
  "%s%n%x",
  "'; DROP TABLE x; --",
  "Hello",
];

function unicodeText(random: Random, maxPieces: number): string {
  return Array.from({ length: 1 + randomInt(random, maxPieces) }, () => pick(random, UNICODE_PIECES)).join(
    pick(random, ["", " ", "\u0301"]),
  );
}

/** A JSON value of a random type, for fields that expect something else. */
function anyJsonValue(random: Random): unknown {
  return pick<() => unknown>(random, [
    () => null,
    () => true,
    () => randomInt(random, 1000) - 500,
    () => 1e308 * 10,
    () => "",
    () => " ",
    () => unicodeText(random, 4),
    () => [],
    () => [1, "two", null],
    () => ({}),
    () => ({ text: "nested" }),
    () => "x".repeat(MAX_TEXT_BYTES + 1),
  ])();
}

const generators: Record<string, Generator> = {
  valid: (random) => {
    const route = postRoute(random);
    const body =
      route === "/v1/translate"
        ? random.nextFloat() < 0.3
          ? { texts: [0, 1, 2].map((offset) => sampleText(randomInt(random, 50) + offset)) }
          : { text: sampleText(randomInt(random, 50)) }
        : {
            model: "routelmt",
            messages: [{ role: "user", content: sampleText(randomInt(random, 50)) }],
            stream: random.nextFloat() < 0.5,
          };
    return { kind: "valid", chunks: [raw("POST", route, JSON_TYPE, bytes(JSON.stringify(body)))] };
  },

  malformedJson: (random) => {
    const valid = JSON.stringify({ text: "hello", source_lang: "en" });
    const body = pick(random, [
      valid.slice(0, randomInt(random, valid.length)),
      `${valid},`,
      '{"text": "a",}',
      "{'text': 'single quotes'}",
      '{"text": NaN}',
      '{"text": "x" /* comment */}',
      "[[[[",
      "null",
      "42",
      '"just a string"',
      "",
      " \n ",
      '{"text": "\\u12"}',
      '{"text": "\\x41"}',
      '{"__proto__": {"polluted": true}, "text": "hi"}',
      '{"constructor": {"prototype": {"polluted": true}}, "text": "hi"}',
      '{"text": "dup", "text": 5}',
    ]);
    return { kind: "malformedJson", chunks: [raw("POST", postRoute(random), JSON_TYPE, bytes(body))] };
  },

  deeplyNested: (random) => {
    const depth = pick(random, [100, 1000, 10_000, 30_000]);
    const open = pick(random, ["[", '{"a":']);
    const close = open === "[" ? "]" : "}";
    const inner = `${open.repeat(depth)}1${close.repeat(depth)}`;
    const field = pick(random, ["text", "texts", "messages", "metadata", "source_lang"]);
    const body = `{"${field}": ${inner}}`;
    return { kind: "deeplyNested", chunks: [raw("POST", postRoute(random), JSON_TYPE, bytes(body))] };
  },

  wrongTypes: (random) => {
    const route = postRoute(random);
    const body: Record<string, unknown> =
      route === "/v1/translate"
        ? { text: sampleText(1) }
        : { model: "routelmt", messages: [{ role: "user", content: "hi" }] };
    const fields =
      route === "/v1/translate"
        ? ["text", "texts", "source_lang", "target_lang"]
        : [
            "model",
            "messages",
            "stream",
            "stream_options",
            "metadata",
            "messages.0.content",
            "messages.0.role",
          ];
    for (let count = 1 + randomInt(random, 2); count > 0; count--) {
      const field = pick(random, fields);
      if (field.startsWith("messages.0.")) {
        (body.messages as Record<string, unknown>[])[0]![field.slice("messages.0.".length)] =
          anyJsonValue(random);
      } else body[field] = anyJsonValue(random);
    }
    return { kind: "wrongTypes", chunks: [raw("POST", route, JSON_TYPE, bytes(JSON.stringify(body)))] };
  },

  hugeBody: (random) => {
    const size = BODY_LIMIT + 1 + randomInt(random, BODY_LIMIT);
    const body = `{"text": "${"y".repeat(size)}"}`;
    const announced = pick(random, [body.length, 10 ** 12]);
    return { kind: "hugeBody", chunks: [raw("POST", postRoute(random), JSON_TYPE, body, announced)] };
  },

  slowBody: (random) => {
    const body = JSON.stringify({ text: sampleText(randomInt(random, 50)) });
    const cut = 1 + randomInt(random, body.length - 1);
    // Either stalls past the request timeout (408) or dribbles in well within it (200).
    return random.nextFloat() < 0.6
      ? {
          kind: "slowBody:stalled",
          chunks: [raw("POST", postRoute(random), JSON_TYPE, body.slice(0, cut), body.length)],
        }
      : {
          kind: "slowBody:dribbled",
          chunks: [
            raw("POST", "/v1/translate", JSON_TYPE, "", body.length),
            100,
            body.slice(0, cut),
            100,
            body.slice(cut),
          ],
        };
  },

  encodedPath: (random) => {
    const route = pick(random, ROUTES);
    const encoded = [...route]
      .map((character) =>
        character !== "/" && random.nextFloat() < 0.4
          ? `%${character.charCodeAt(0).toString(16).padStart(2, "0")}`
          : character,
      )
      .join("");
    const target = pick(random, [
      encoded,
      `/${encoded}`,
      `${encoded}/`,
      `${encoded}?a=1&b=%zz`,
      `${encoded}#fragment`,
      encoded.replace(/\//g, "%2F"),
      encoded.toUpperCase(),
      `/v1/./${route.slice(4)}`,
      `/x/../${route.slice(1)}`,
      `${encoded}%00`,
      `/%C0%AF${route}`,
      `/%zz${route}`,
      `/${"a".repeat(8000)}`,
      "*",
      `http://127.0.0.1${route}`,
    ]);
    const method = route.startsWith("/v1/") && route !== "/v1/models" ? "POST" : "GET";
    const body = method === "POST" ? bytes(JSON.stringify({ text: "hi" })) : "";
    return { kind: "encodedPath", chunks: [raw(method, target, JSON_TYPE, body)] };
  },

  contentType: (random) => {
    const type = pick(random, [
      null,
      "text/plain",
      "application/x-www-form-urlencoded",
      "multipart/form-data; boundary=x",
      "application/json; charset=latin1",
      "application/json; charset=utf-16",
      "application/json; charset=",
      'application/json; charset="utf-8"',
      "application/json;charset=UTF8",
      "APPLICATION/JSON",
      "application/json; foo=bar",
      "application/json ; charset=utf-8",
      "application/jsonx",
      "application/json, text/plain",
      "*/*",
      "\u00ff\u00fe",
    ]);
    const headers: Record<string, string> = type === null ? {} : { "content-type": type };
    if (random.nextFloat() < 0.2) headers["content-encoding"] = pick(random, ["gzip", "br", "identity", ""]);
    return {
      kind: "contentType",
      chunks: [raw("POST", "/v1/translate", headers, bytes(JSON.stringify({ text: "content type" })))],
    };
  },

  method: (random) => {
    const method = pick(random, [
      "GET",
      "HEAD",
      "PUT",
      "DELETE",
      "PATCH",
      "OPTIONS",
      "TRACE",
      "PROPFIND",
      "CONNECT",
      "post",
      "P0ST",
      "GE T",
      "\u0000",
      "X".repeat(300),
    ]);
    const target = method === "CONNECT" ? "127.0.0.1:1" : pick(random, ROUTES);
    return { kind: "method", chunks: [raw(method, target, JSON_TYPE, "")], head: method === "HEAD" };
  },

  unicode: (random) => {
    const text = unicodeText(random, 12);
    const route = postRoute(random);
    const body =
      route === "/v1/translate"
        ? JSON.stringify(random.nextFloat() < 0.3 ? { texts: [text, unicodeText(random, 3)] } : { text })
        : JSON.stringify({ model: "routelmt", messages: [{ role: "user", content: text }] });
    let encoded = bytes(body);
    const mutation = randomInt(random, 6);
    // Lone surrogates only JSON can spell; invalid UTF-8 only raw bytes can.
    if (mutation === 0) encoded = encoded.replace('"text":"', '"text":"\\ud800');
    if (mutation === 1) encoded = encoded.replace('"text":"', '"text":"\\udc00x');
    if (mutation === 2) encoded = encoded.replace('"text":"', '"text":"\xc0\x80\xff');
    if (mutation === 3) encoded = encoded.replace('"text":"', '"text":"\xed\xa0\x80');
    if (mutation === 4) encoded = `\xef\xbb\xbf${encoded}`;
    return { kind: "unicode", chunks: [raw("POST", route, JSON_TYPE, encoded)] };
  },

  headers: (random) => {
    const variant = randomInt(random, 6);
    const body = bytes(JSON.stringify({ text: "headers" }));
    if (variant === 0) {
      // Over Node's 16 KiB of headers in one value.
      return {
        kind: "headers:oversized",
        chunks: [
          raw(
            "POST",
            "/v1/translate",
            { ...JSON_TYPE, "x-filler": "a".repeat(16_384 + randomInt(random, 50_000)) },
            body,
          ),
        ],
      };
    }
    if (variant === 1) {
      const many: Record<string, string> = { ...JSON_TYPE };
      for (let index = 0; index < 3000; index++) many[`x-h${index}`] = "v";
      return { kind: "headers:many", chunks: [raw("POST", "/v1/translate", many, body)] };
    }
    if (variant === 2) {
      return {
        kind: "headers:invalid",
        chunks: [
          raw("POST", "/v1/translate", { ...JSON_TYPE, "bad header": "x", "x-ctl": "a\u0001b" }, body),
        ],
      };
    }
    if (variant === 4) {
      // HTTP/1.1 without Host, which Node itself would answer with an empty body.
      const request = raw("POST", postRoute(random), JSON_TYPE, body).replace("Host: 127.0.0.1\r\n", "");
      return { kind: "headers:no-host", chunks: [request] };
    }
    if (variant === 3) {
      // Content-Length and Transfer-Encoding together: a smuggling attempt the parser must refuse.
      return {
        kind: "headers:smuggling",
        chunks: [
          raw("POST", "/v1/translate", { ...JSON_TYPE, "transfer-encoding": "chunked" }, `0\r\n\r\n${body}`),
        ],
      };
    }
    return {
      kind: "headers:languages",
      chunks: [
        raw(
          "POST",
          "/v1/chat/completions",
          {
            ...JSON_TYPE,
            "x-routelmt-source-lang": pick(random, ["xx", "", "de\u0000", "zh-Hant", "a".repeat(500)]),
            "x-routelmt-target-lang": "en",
          },
          bytes(JSON.stringify({ model: "routelmt", messages: [{ role: "user", content: "Hallo" }] })),
        ),
      ],
    };
  },

  chunked: (random) => {
    const body = bytes(JSON.stringify({ text: sampleText(3) }));
    const framing = pick(random, [
      `${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`,
      `zz\r\n${body}\r\n0\r\n\r\n`,
      `${body.length.toString(16)};${"e".repeat(20_000)}\r\n${body}\r\n0\r\n\r\n`,
      `ffffffffffffffff\r\n${body}\r\n0\r\n\r\n`,
      `${(body.length + 5).toString(16)}\r\n${body}\r\n0\r\n\r\n`,
    ]);
    const head = [
      "POST /v1/translate HTTP/1.1",
      "Host: x",
      "Connection: close",
      "Content-Type: application/json",
      "Transfer-Encoding: chunked",
    ];
    return { kind: "chunked", chunks: [`${head.join("\r\n")}\r\n\r\n${framing}`] };
  },
};

/** What is wrong with one answer, or null. */
function problemWith(fuzz: FuzzCase, answer: RawResponse): string | null {
  if (answer.status === 0) return "no answer (connection closed or timed out without a status line)";
  if (answer.status >= 500) return `status ${answer.status}: ${answer.body.slice(0, 200)}`;
  if (fuzz.head) return null;
  if (answer.status >= 400) {
    let body: unknown;
    try {
      body = JSON.parse(answer.body);
    } catch {
      return `status ${answer.status} with a body that is not JSON: ${answer.body.slice(0, 200)}`;
    }
    const checked = serverErrorBodySchema.safeParse(body);
    return checked.success
      ? null
      : `status ${answer.status} with an undocumented error body: ${answer.body.slice(0, 200)}`;
  }
  const type = answer.headers["content-type"] ?? "";
  if (type.startsWith("text/event-stream"))
    return answer.body.includes("data: [DONE]") ? null : "SSE answer without [DONE]";
  if (type.startsWith("text/plain")) return null; // /metrics
  try {
    JSON.parse(answer.body);
    return null;
  } catch {
    return `status ${answer.status} with a body that is not JSON: ${answer.body.slice(0, 200)}`;
  }
}

let work: string;
let large: FakeOpenAIServer;
let app: FastifyInstance;
let origin: string;

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), "routelmt-fuzz-"));
  large = await startFakeOpenAIServer({ label: "large", models: ["large"] });
  const fixture = await tinyGgufWithRouter(work, 12);
  app = await buildApp(
    resolveServerConfig(
      {},
      {
        small: fixture.modelPath,
        large: `openai:${large.url}#large`,
        router: fixture.routerFile,
        budget: 0.3,
        window: 50,
        threads: 1,
        "small-concurrency": 2,
        "max-tokens": 4,
        "max-text-bytes": MAX_TEXT_BYTES,
        "body-limit-bytes": BODY_LIMIT,
        "request-timeout-ms": REQUEST_TIMEOUT_MS,
        "log-level": "silent",
      },
    ),
  );
  origin = await app.listen({ port: 0, host: "127.0.0.1" });
});

afterAll(async () => {
  await app?.close();
  await large?.close();
});

describe("routelmt serve: fuzzing the HTTP API", () => {
  it(`answers ${CASES} hostile requests below 500, in the documented error format, and keeps serving (seed ${seed})`, async () => {
    const random = createRandom(seed);
    const families = Object.keys(generators);
    const cases = Array.from({ length: CASES }, (_, index) => {
      // Every family at least once, then at random.
      const family = index < families.length ? families[index]! : pick(random, families);
      return generators[family]!(random);
    });
    const answers = await runConcurrently(cases.length, CONCURRENCY, (index) =>
      rawRequest(origin, cases[index]!.chunks, { timeoutMs: REQUEST_TIMEOUT_MS + 4000, keepOpen: true }),
    );
    const breakdown = new Map<string, number>();
    const failures: string[] = [];
    answers.forEach((answer, index) => {
      const fuzz = cases[index]!;
      const key = `${fuzz.kind.split(":")[0]} ${answer.status}`;
      breakdown.set(key, (breakdown.get(key) ?? 0) + 1);
      const problem = problemWith(fuzz, answer);
      if (problem !== null) {
        const sent = fuzz.chunks
          .map((chunk) => (typeof chunk === "number" ? `<${chunk} ms>` : chunk))
          .join("");
        failures.push(`#${index} ${fuzz.kind}: ${problem}\n  sent: ${JSON.stringify(sent.slice(0, 300))}`);
      }
    });
    const summary = [...breakdown]
      .sort()
      .map(([key, count]) => `${key}: ${count}`)
      .join(", ");
    expect(
      failures,
      `fuzz seed ${seed} (rerun with ROUTELMT_FUZZ_SEED=${seed}); answers: ${summary}`,
    ).toEqual([]);
    // Many answers must be real translations, or the fuzzer would only be testing the front door.
    expect(answers.filter((answer) => answer.status === 200).length).toBeGreaterThan(CASES / 10);

    // Still serving, both engines healthy: hostile input did not flip readiness.
    const after = await postJson(`${origin}/v1/translate`, { text: sampleText(7) });
    expect(after.status).toBe(200);
    const ready = await fetch(`${origin}/readyz`);
    expect(ready.status).toBe(200);
    expect(app.routelmt.hybrid.inFlight).toBe(0);
    expect(app.routelmt.hybrid.smallGate.depth).toBe(0);
    // Bodies with "__proto__" and "constructor" keys polluted nothing.
    expect(Object.prototype).not.toHaveProperty("polluted");
  });
});
