/**
 * Validation of request bodies. Every failure is a 400 naming the field (dot path: `texts.2`,
 * `messages.0.content`), so clients can fix the exact value.
 */
import { z } from "zod";
import { isKnownLanguage } from "../translators/languages.js";
import type { TranslationRequest } from "../translators/types.js";
import { invalidField, ServerError } from "./errors.js";

/** Limits and defaults requests are checked against. */
export interface RequestLimits {
  maxTextBytes: number;
  maxBatchSize: number;
  /** The router's language pair, used when a request names none. */
  defaultSourceLang: string | null;
  defaultTargetLang: string | null;
}

/** A lone UTF-16 surrogate: JSON can spell one (`"\ud800"`), but no UTF-8 text contains it. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** The value at a zod issue's path inside `value`, undefined where the path leads nowhere. */
function valueAt(value: unknown, path: readonly PropertyKey[]): unknown {
  let current = value;
  for (const key of path) {
    if (typeof current !== "object" || current === null) return undefined;
    current = (current as Record<PropertyKey, unknown>)[key];
  }
  return current;
}

/** Throws the first zod issue as a 400 naming its field. */
function parseOrThrow<T>(schema: z.ZodType<T>, value: unknown): T {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  const field = issue.path.map(String).join(".");
  if (field === "") throw new ServerError("RLMT_ERR_INVALID_REQUEST", `body: ${issue.message}`);
  const missing = issue.code === "invalid_type" && valueAt(value, issue.path) === undefined;
  throw invalidField(field, missing ? "is required" : issue.message);
}

/** Nothing to translate: only whitespace, control characters (NUL, escapes) or invisible format characters. */
const NOTHING_TO_TRANSLATE = /^[\s\p{Z}\p{Cc}\p{Cf}]*$/u;

/** Checks one text: a string with visible content, well-formed Unicode, within the byte limit. */
export function checkText(text: string, field: string, maxTextBytes: number): string {
  if (NOTHING_TO_TRANSLATE.test(text)) {
    throw invalidField(
      field,
      "must hold some text: it is empty, or only whitespace, control or invisible characters",
    );
  }
  if (LONE_SURROGATE.test(text)) {
    throw new ServerError(
      "RLMT_ERR_INVALID_UTF8",
      `${field}: contains a lone surrogate (not valid UTF-8 text)`,
      {
        field,
      },
    );
  }
  const bytes = Buffer.byteLength(text, "utf8");
  if (bytes > maxTextBytes) {
    throw invalidField(field, `is ${bytes} bytes of UTF-8, over the limit of ${maxTextBytes}`);
  }
  return text;
}

/** A language code from the request, else the router's default; must be a known language. */
export function resolveLanguage(
  given: string | undefined | null,
  fallback: string | null,
  field: string,
): string {
  const code = given ?? fallback;
  if (code === null || code === undefined) {
    throw invalidField(field, "is required (the router records no default language pair)");
  }
  if (!isKnownLanguage(code)) {
    throw invalidField(
      field,
      `unknown language code ${JSON.stringify(code)} (use ISO 639-1/639-3 or BCP-47, e.g. "de")`,
    );
  }
  return code;
}

const aString = z.string({ error: "must be a string" });
const languageCode = z.string({ error: 'must be a string: a language code such as "de"' });

const aBoolean = z.boolean({ error: "must be true or false" });

const translateBodySchema = z.object({
  text: aString.optional(),
  texts: z.array(aString, { error: "must be a list of strings" }).optional(),
  source_lang: languageCode.optional(),
  target_lang: languageCode.optional(),
  stream: aBoolean.nullish(),
});

/** A parsed `/v1/translate` body: one text or a batch. */
export interface TranslateInput {
  batch: boolean;
  requests: TranslationRequest[];
  /** Answer as NDJSON events (text deltas of one text, or each text of a batch as it is done). */
  stream: boolean;
}

function requireObject(body: unknown): void {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new ServerError("RLMT_ERR_INVALID_REQUEST", "body: must be a JSON object");
  }
}

export function parseTranslateBody(body: unknown, limits: RequestLimits): TranslateInput {
  requireObject(body);
  const parsed = parseOrThrow(translateBodySchema, body);
  if (parsed.text !== undefined && parsed.texts !== undefined) {
    throw invalidField("texts", 'give either "text" or "texts", not both');
  }
  if (parsed.text === undefined && parsed.texts === undefined) throw invalidField("text", "is required");
  const srcLang = resolveLanguage(parsed.source_lang, limits.defaultSourceLang, "source_lang");
  const tgtLang = resolveLanguage(parsed.target_lang, limits.defaultTargetLang, "target_lang");
  if (parsed.text !== undefined) {
    return {
      batch: false,
      requests: [{ text: checkText(parsed.text, "text", limits.maxTextBytes), srcLang, tgtLang }],
      stream: parsed.stream === true,
    };
  }
  const texts = parsed.texts!;
  if (texts.length === 0) throw invalidField("texts", "must hold at least one text");
  if (texts.length > limits.maxBatchSize) {
    throw invalidField(
      "texts",
      `holds ${texts.length} texts, over the batch limit of ${limits.maxBatchSize}`,
    );
  }
  return {
    batch: true,
    requests: texts.map((text, index) => ({
      text: checkText(text, `texts.${index}`, limits.maxTextBytes),
      srcLang,
      tgtLang,
    })),
    stream: parsed.stream === true,
  };
}

const contentPartSchema = z.object(
  { type: aString, text: aString.optional() },
  { error: 'must be a content part: {"type": "text", "text": "…"}' },
);
const chatBodySchema = z.object({
  model: aString,
  messages: z
    .array(
      z.object(
        {
          role: aString,
          content: z
            .union([z.string(), z.array(contentPartSchema)], {
              error: "must be a string or a list of content parts",
            })
            .nullish(),
        },
        { error: 'must be a message: {"role": "user", "content": "…"}' },
      ),
      { error: "must be a list of messages" },
    )
    .min(1, "must hold at least one message"),
  stream: aBoolean.nullish(),
  stream_options: z.object({ include_usage: aBoolean.nullish() }, { error: "must be an object" }).nullish(),
  metadata: z.record(z.string(), aString, { error: "must be an object of strings" }).nullish(),
});

/** A parsed `/v1/chat/completions` body. */
export interface ChatInput {
  request: TranslationRequest;
  /** Where the text came from, e.g. `messages.2.content`. */
  field: string;
  stream: boolean;
  includeUsage: boolean;
}

/** The model name clients ask for. */
export const SERVED_MODEL = "routelmt";

export function parseChatBody(
  body: unknown,
  headers: { sourceLang: string | undefined; targetLang: string | undefined },
  limits: RequestLimits,
): ChatInput {
  requireObject(body);
  const parsed = parseOrThrow(chatBodySchema, body);
  if (parsed.model !== SERVED_MODEL) {
    throw new ServerError(
      "RLMT_ERR_NOT_FOUND",
      `model: unknown model ${JSON.stringify(parsed.model)} (this server serves "${SERVED_MODEL}")`,
      {
        field: "model",
      },
    );
  }
  let index = parsed.messages.length - 1;
  while (index >= 0 && parsed.messages[index]!.role !== "user") index--;
  if (index < 0) throw invalidField("messages", "holds no user message");
  const content = parsed.messages[index]!.content;
  const field = `messages.${index}.content`;
  let text: string;
  if (typeof content === "string") text = content;
  else if (Array.isArray(content)) {
    // Multi-part content: the text parts, in order (images and audio cannot be translated).
    text = content
      .filter((part) => part.type === "text" && typeof part.text === "string")
      .map((part) => part.text)
      .join("\n");
  } else throw invalidField(field, "is required");
  const srcLang = resolveLanguage(
    parsed.metadata?.source_lang ?? headers.sourceLang,
    limits.defaultSourceLang,
    parsed.metadata?.source_lang !== undefined ? "metadata.source_lang" : "x-routelmt-source-lang",
  );
  const tgtLang = resolveLanguage(
    parsed.metadata?.target_lang ?? headers.targetLang,
    limits.defaultTargetLang,
    parsed.metadata?.target_lang !== undefined ? "metadata.target_lang" : "x-routelmt-target-lang",
  );
  return {
    request: { text: checkText(text, field, limits.maxTextBytes), srcLang, tgtLang },
    field,
    stream: parsed.stream === true,
    includeUsage: parsed.stream_options?.include_usage === true,
  };
}
