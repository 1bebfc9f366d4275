/**
 * Settings of `routelmt serve`: one zod schema for every setting, fed from a JSON/YAML config file
 * and command-line flags (flags override the file). Config keys are the flag names without the
 * dashes (`large-timeout-ms: 5000`); unknown keys are errors. Every error names the key and where
 * it came from (`serve.yaml: budget: ...` or `--budget: ...`), never the value of an API key.
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { InputError, UsageError } from "../errors/index.js";
import { type FeatureEngine, featureEngines } from "../translators/open.js";
import { defaultThreadsPerModel } from "../util/default-threads.js";
import { API_KEY_PATTERN, ApiKeys, SERVER_API_KEY_VARIABLE } from "./auth.js";
import { type BudgetUnit, budgetUnits, type TokenPrices } from "./budget-units.js";

const positiveInteger = z.number().int("must be an integer").positive("must be positive");
const fraction = z.number().min(0, "must be in [0, 1]").max(1, "must be in [0, 1]");
const nonEmpty = z.string().trim().min(1, "must not be empty");
const API_KEY_MESSAGE = "must be one key without spaces or line breaks, or a list of such keys";
const apiKey = z.string().regex(API_KEY_PATTERN, API_KEY_MESSAGE);

/** Largest `texts` batch unless set (or `queue-size` is smaller). */
const DEFAULT_MAX_BATCH_SIZE = 64;
const price = z.number().min(0, "must be a price ≥ 0 (per 1000 tokens)");

const budgetStoreUrl = nonEmpty.refine(
  (value) => {
    try {
      const url = new URL(value);
      return (url.protocol === "redis:" || url.protocol === "rediss:") && url.hostname !== "";
    } catch {
      return false;
    }
  },
  { message: "must be a Redis URL: redis://HOST:PORT[/DB] (or rediss:// for TLS)" },
);

/** Every setting, by its config-file key (= flag name). Defaults are stated in `docs/http-api.md`. */
export const serverConfigSchema = z
  .strictObject({
    /** Small model spec (GGUF path, `hf:`, or `openai:<baseURL>#<model>`). Required. */
    small: nonEmpty,
    /** Large model spec. Required. */
    large: nonEmpty,
    /** ROUTER.json trained on the small model's features. Required. */
    router: nonEmpty,
    /** Fraction p of requests allowed on the large model. Required. */
    budget: fraction,
    /** What p is a share of: `requests`, `tokens` or `cost` (see `budget-units.ts`). Defaults to `requests`. */
    "budget-unit": z.enum(budgetUnits).default("requests"),
    /** Large model's price per 1000 input (prompt) tokens; required for `budget-unit: cost`. */
    "large-input-price": price.optional(),
    /** Large model's price per 1000 output tokens; required for `budget-unit: cost`. */
    "large-output-price": price.optional(),
    /** Small model's price per 1000 input tokens (the spend metric only). */
    "small-input-price": price.optional(),
    /** Small model's price per 1000 output tokens (the spend metric only). */
    "small-output-price": price.optional(),
    /** Starting estimate of the large model's output tokens per source character. Defaults to 0.3. */
    "output-tokens-per-char": z.number().positive("must be positive").default(0.3),
    /** Defaults to 8080; 0 picks a free port. */
    port: z.number().int("must be an integer").min(0).max(65535).default(8080),
    /** Defaults to 127.0.0.1 (loopback only). */
    host: nonEmpty.default("127.0.0.1"),
    /** File of API keys, one per line; with any key set, every request but /healthz, /readyz, /metrics needs one. */
    "api-key-file": nonEmpty.optional(),
    /** API keys written in the config itself: one, or a list. Accepted beside the file's and the environment's. */
    "api-key": z
      .union([apiKey, z.array(apiKey).min(1, API_KEY_MESSAGE)], { error: API_KEY_MESSAGE })
      .optional(),
    /**
     * `routelmt` (gain threshold), `guarded` (plus the quality/risk guards) or `guarded-qe` (decode the
     * small translation first, then rank by gain − λ · its confidence). Defaults to `routelmt`.
     */
    policy: z.enum(["routelmt", "guarded", "guarded-qe"]).default("routelmt"),
    /** Sliding window W (decisions) of the realized fraction and the hard cap. Defaults to 1000. */
    window: positiveInteger.default(1000),
    /** Redis holding one budget for every replica that names it; absent: each replica holds its own. */
    "budget-store": budgetStoreUrl.optional(),
    /** Keeps deployments sharing one Redis apart; every replica of one deployment uses the same. Defaults to `default`. */
    "budget-store-namespace": z
      .string()
      .regex(/^[A-Za-z0-9._-]{1,64}$/, "must be 1 to 64 letters, digits, dots, dashes or underscores")
      .default("default"),
    /** Longest a decision waits for the budget store before it is made locally. Defaults to 50 ms. */
    "budget-store-timeout-ms": positiveInteger.default(50),
    /** How long the store keeps a namespace after its last decision. Defaults to 7 days. */
    "budget-store-ttl-s": positiveInteger.default(7 * 24 * 3600),
    /** CPU threads of an in-process model. Defaults to half the cores. */
    threads: positiveInteger.optional(),
    /** Deadline of one large-model call, retries included. Defaults to 30 000 ms. */
    "large-timeout-ms": positiveInteger.default(30_000),
    /** Retries of a failed large call (rate limits, 5xx, network) within the deadline. Defaults to 2. */
    "large-retries": z.number().int("must be an integer").min(0).default(2),
    /** Retries of a failed remote small-engine call (rate limits, 5xx, network). Defaults to 2. */
    "small-retries": z.number().int("must be an integer").min(0).default(2),
    /** Per-attempt timeout of a remote small engine. Defaults to 60 000 ms. */
    "small-timeout-ms": positiveInteger.default(60_000),
    /** Largest text, in UTF-8 bytes. Defaults to 16 384. */
    "max-text-bytes": positiveInteger.default(16_384),
    /** Largest `texts` batch; at most `queue-size`, as a larger batch could never be admitted. Defaults to 64 or `queue-size`, the smaller. */
    "max-batch-size": positiveInteger.optional(),
    /** Longest time to receive a whole request, headers and body; past it 408 and the connection closes. Defaults to 30 000 ms. */
    "request-timeout-ms": positiveInteger.default(30_000),
    /** Largest request body, checked before parsing. Defaults to 2 MiB. */
    "body-limit-bytes": positiveInteger.default(2 * 1024 * 1024),
    /** Requests per engine in flight plus waiting; beyond it the server answers 429. Defaults to 256. */
    "queue-size": positiveInteger.default(256),
    /** Sequences (in-process) or HTTP requests in flight of the small engine. Defaults to 4. */
    "small-concurrency": positiveInteger.default(4),
    /** Requests in flight to the large engine. Defaults to 32. */
    "large-concurrency": positiveInteger.default(32),
    /** In-process engine of a local small model: `auto` (the FFI engine where it runs), `llama` or `ffi`. Defaults to `auto`. */
    "feature-engine": z.enum(featureEngines).default("auto"),
    /** Hidden size of a remote (`openai:`) small model; required for one. */
    "small-dim": positiveInteger.optional(),
    /** Maximum new tokens per translation. Defaults to 256. */
    "max-tokens": positiveInteger.default(256),
    /** `guarded`: drop candidates whose quality prediction is at or above this quantile of its training scores. Defaults to 0.9. */
    "guard-quality-quantile": fraction.default(0.9),
    /** `guarded`: drop candidates whose risk probability is at or above this. Defaults to 0.5. */
    "guard-risk": fraction.default(0.5),
    /** How long a readiness probe of a remote engine is reused. Defaults to 5000 ms. */
    "readiness-cache-ms": z.number().int("must be an integer").min(0).default(5000),
    /** Longest wait for in-flight requests on SIGTERM before exiting anyway. Defaults to 30 000 ms. */
    "shutdown-timeout-ms": positiveInteger.default(30_000),
    /** pino level. Defaults to `info`. */
    "log-level": z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  })
  .superRefine((config, context) => {
    const maxBatchSize = config["max-batch-size"];
    if (maxBatchSize !== undefined && maxBatchSize > config["queue-size"]) {
      // A batch takes one small-engine place per text, all or none: a 429 it could never get past.
      context.addIssue({
        code: "custom",
        path: ["max-batch-size"],
        message: `is ${maxBatchSize}, above queue-size ${config["queue-size"]}: a batch takes one queue place per text, so one that large could never be admitted`,
      });
    }
    for (const model of ["large", "small"] as const) {
      const input = config[`${model}-input-price`];
      const output = config[`${model}-output-price`];
      if ((input === undefined) !== (output === undefined)) {
        const missing = input === undefined ? `${model}-input-price` : `${model}-output-price`;
        context.addIssue({
          code: "custom",
          path: [missing],
          message: `is required with the ${model} model's other price`,
        });
      }
    }
    if (config["budget-unit"] !== "cost") return;
    if (config["large-input-price"] === undefined) {
      context.addIssue({
        code: "custom",
        path: ["large-input-price"],
        message: "is required when budget-unit is cost",
      });
    } else if (config["large-input-price"] === 0 && config["large-output-price"] === 0) {
      context.addIssue({
        code: "custom",
        path: ["large-input-price"],
        message: "the large model's prices are both 0: a budget in cost needs a price",
      });
    }
  });

/** Config as written (file keys), before defaults. */
export type ServerConfigInput = z.input<typeof serverConfigSchema>;
type ParsedConfig = z.output<typeof serverConfigSchema>;

/** Validated settings, as the server uses them. */
export interface ServerConfig {
  small: string;
  large: string;
  router: string;
  budget: number;
  budgetUnit: BudgetUnit;
  /** Prices per 1000 tokens, when given. */
  largePrices: TokenPrices | undefined;
  smallPrices: TokenPrices | undefined;
  outputTokensPerCharacter: number;
  port: number;
  host: string;
  apiKeyFile: string | undefined;
  /** Keys from the config (`api-key`) and the environment; the file's are read when the server starts. */
  apiKeys: ApiKeys;
  policy: "routelmt" | "guarded" | "guarded-qe";
  window: number;
  budgetStore: string | undefined;
  budgetStoreNamespace: string;
  budgetStoreTimeoutMs: number;
  budgetStoreTtlSeconds: number;
  threads: number;
  largeTimeoutMs: number;
  largeRetries: number;
  smallRetries: number;
  smallTimeoutMs: number;
  maxTextBytes: number;
  maxBatchSize: number;
  bodyLimitBytes: number;
  requestTimeoutMs: number;
  queueSize: number;
  smallConcurrency: number;
  largeConcurrency: number;
  featureEngine: FeatureEngine;
  smallDim: number | undefined;
  maxTokens: number;
  guardQualityQuantile: number;
  guardRisk: number;
  readinessCacheMs: number;
  shutdownTimeoutMs: number;
  logLevel: "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";
}

/** The config-file keys, i.e. the flag names. */
export const SERVER_CONFIG_KEYS = Object.keys(serverConfigSchema.shape) as (keyof ParsedConfig)[];

function pricesOf(input: number | undefined, output: number | undefined): TokenPrices | undefined {
  return input === undefined || output === undefined ? undefined : { input, output };
}

function toServerConfig(parsed: ParsedConfig, environmentKey: string | undefined): ServerConfig {
  const configKeys = parsed["api-key"] === undefined ? [] : [parsed["api-key"]].flat();
  return {
    small: parsed.small,
    large: parsed.large,
    router: parsed.router,
    budget: parsed.budget,
    budgetUnit: parsed["budget-unit"],
    largePrices: pricesOf(parsed["large-input-price"], parsed["large-output-price"]),
    smallPrices: pricesOf(parsed["small-input-price"], parsed["small-output-price"]),
    outputTokensPerCharacter: parsed["output-tokens-per-char"],
    port: parsed.port,
    host: parsed.host,
    apiKeyFile: parsed["api-key-file"],
    apiKeys: new ApiKeys(environmentKey === undefined ? configKeys : [...configKeys, environmentKey]),
    policy: parsed.policy,
    window: parsed.window,
    budgetStore: parsed["budget-store"],
    budgetStoreNamespace: parsed["budget-store-namespace"],
    budgetStoreTimeoutMs: parsed["budget-store-timeout-ms"],
    budgetStoreTtlSeconds: parsed["budget-store-ttl-s"],
    threads: parsed.threads ?? defaultThreadsPerModel(),
    largeTimeoutMs: parsed["large-timeout-ms"],
    largeRetries: parsed["large-retries"],
    smallRetries: parsed["small-retries"],
    smallTimeoutMs: parsed["small-timeout-ms"],
    maxTextBytes: parsed["max-text-bytes"],
    maxBatchSize: parsed["max-batch-size"] ?? Math.min(DEFAULT_MAX_BATCH_SIZE, parsed["queue-size"]),
    bodyLimitBytes: parsed["body-limit-bytes"],
    requestTimeoutMs: parsed["request-timeout-ms"],
    queueSize: parsed["queue-size"],
    smallConcurrency: parsed["small-concurrency"],
    largeConcurrency: parsed["large-concurrency"],
    featureEngine: parsed["feature-engine"],
    smallDim: parsed["small-dim"],
    maxTokens: parsed["max-tokens"],
    guardQualityQuantile: parsed["guard-quality-quantile"],
    guardRisk: parsed["guard-risk"],
    readinessCacheMs: parsed["readiness-cache-ms"],
    shutdownTimeoutMs: parsed["shutdown-timeout-ms"],
    logLevel: parsed["log-level"],
  };
}

/**
 * Reads a config file: `.json` as JSON, anything else as YAML. The top level must be a mapping.
 * Paths inside it (`router`, `api-key-file`, local model files) are resolved against the file's folder.
 * @throws InputError naming the file.
 */
export async function readConfigFile(file: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    throw new InputError(
      `cannot read config file (${(error as NodeJS.ErrnoException).code ?? "unreadable"})`,
      { file },
      { cause: error },
    );
  }
  const json = file.toLowerCase().endsWith(".json");
  let value: unknown;
  try {
    value = json ? JSON.parse(text) : parseYaml(text);
  } catch (error) {
    throw new InputError(
      `not valid ${json ? "JSON" : "YAML"}: ${parseErrorWithoutSource((error as Error).message)}`,
      { file },
      { cause: error },
    );
  }
  if (value === null || value === undefined) return {};
  if (typeof value !== "object" || Array.isArray(value)) {
    throw new InputError("the config must be a mapping of setting names to values", { file });
  }
  return resolveRelativePaths(value as Record<string, unknown>, path.dirname(file));
}

/**
 * A parser's message without the excerpt of the file it quotes (the yaml package appends the lines
 * around the error, V8 quotes the JSON text): the file may hold API keys, and errors are printed.
 */
export function parseErrorWithoutSource(message: string): string {
  const firstLine = message.split("\n")[0] ?? "";
  return firstLine
    .replace(/,\s*(?:\.\.\.)?".*"(?:\.\.\.)?\s+is not valid JSON$/, "")
    .replace(/^Unexpected token '.*?'/, "Unexpected token")
    .replace(/:$/, "");
}

/** Keys whose values are local paths, resolved against the config file's folder. */
const PATH_KEYS = ["router", "api-key-file"] as const;
const MODEL_KEYS = ["small", "large"] as const;

function resolveRelativePaths(values: Record<string, unknown>, folder: string): Record<string, unknown> {
  const resolved = { ...values };
  for (const key of PATH_KEYS) {
    const value = resolved[key];
    if (typeof value === "string" && value.trim() !== "") resolved[key] = path.resolve(folder, value);
  }
  for (const key of MODEL_KEYS) {
    const value = resolved[key];
    // Only plain GGUF paths are files; `hf:` and `openai:` specs are not.
    if (
      typeof value === "string" &&
      value.toLowerCase().endsWith(".gguf") &&
      !/^[a-z][a-z+]*:/i.test(value)
    ) {
      resolved[key] = path.resolve(folder, value);
    }
  }
  return resolved;
}

/** The known key a mistyped one probably meant: `apiKeyFile` or `api_key_file` → `api-key-file`. */
function knownKeyLike(key: string): string | undefined {
  const dashed = key
    .replace(/([a-z0-9])([A-Z])/g, "$1-$2")
    .replace(/_/g, "-")
    .toLowerCase();
  return SERVER_CONFIG_KEYS.find((known) => known === dashed);
}

/** The server's API key from the environment, if set (an empty value counts as unset). */
function environmentApiKey(environment: Readonly<Record<string, string | undefined>>): string | undefined {
  const value = environment[SERVER_API_KEY_VARIABLE];
  if (value === undefined || value === "") return undefined;
  if (!API_KEY_PATTERN.test(value)) {
    throw new UsageError(`${SERVER_API_KEY_VARIABLE}: must be one key without spaces or line breaks`);
  }
  return value;
}

/**
 * Validates settings from a config file (`fileValues`, keyed as in the file) overridden by flags
 * (`flagValues`, same keys; undefined values are ignored), plus the API key of the environment
 * (`ROUTELMT_SERVER_API_KEY`; pass `process.env`, or nothing to ignore the environment).
 * @throws InputError (located at the file) or UsageError (naming the flag or variable) for the first
 *   bad key. No message quotes an API key.
 */
export function resolveServerConfig(
  fileValues: Record<string, unknown>,
  flagValues: Record<string, unknown>,
  configFile?: string,
  environment: Readonly<Record<string, string | undefined>> = {},
): ServerConfig {
  const merged: Record<string, unknown> = { ...fileValues };
  const fromFlag = new Set<string>();
  for (const [key, value] of Object.entries(flagValues)) {
    if (value === undefined) continue;
    merged[key] = value;
    fromFlag.add(key);
  }
  const environmentKey = environmentApiKey(environment);
  const parsed = serverConfigSchema.safeParse(merged);
  if (parsed.success) return toServerConfig(parsed.data, environmentKey);
  const issue = parsed.error.issues[0]!;
  const key = issue.code === "unrecognized_keys" ? (issue.keys[0] ?? "") : String(issue.path[0] ?? "");
  const likely = issue.code === "unrecognized_keys" ? knownKeyLike(key) : undefined;
  const message =
    issue.code === "unrecognized_keys"
      ? likely
        ? `unknown setting (did you mean ${likely}?)`
        : `unknown setting (known: ${SERVER_CONFIG_KEYS.join(", ")})`
      : issue.code === "invalid_type" && merged[key] === undefined
        ? "is required (set it in the config file or with the flag)"
        : issue.message;
  if (fromFlag.has(key) || configFile === undefined) {
    throw new UsageError(`--${key}: ${message}`);
  }
  throw new InputError(`${key}: ${message}`, { file: configFile });
}
