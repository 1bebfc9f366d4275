import type { Command } from "commander";
import { readConfigFile, resolveServerConfig } from "../../server/config.js";
import { buildApp, closeWithDeadline } from "../../server/index.js";
import type { CliIo } from "../io.js";
import { finiteNumber, positiveInteger } from "../options.js";

/** Non-negative integer flag (ports, retries, cache times). */
function nonNegativeInteger(flag: string): (value: string) => number {
  return (value) => (value.trim() === "0" ? 0 : positiveInteger(flag)(value));
}

/** Flags of `serve`, each the same as a config-file key (no commander defaults: unset flags leave the file's value). */
const FLAGS: { key: string; flag: string; help: string; parse?: (value: string) => number }[] = [
  {
    key: "small",
    flag: "--small <spec>",
    help: "small model: path.gguf, hf:<user>/<repo>/<file>.gguf or openai:<baseURL>#<model>",
  },
  { key: "large", flag: "--large <spec>", help: "large model spec" },
  { key: "router", flag: "--router <file>", help: "ROUTER.json trained on the small model's features" },
  {
    key: "budget",
    flag: "--budget <p>",
    help: "fraction allowed on the large model, in [0, 1]: of the requests, or of their tokens or cost with --budget-unit",
    parse: finiteNumber("--budget"),
  },
  {
    key: "budget-unit",
    flag: "--budget-unit <unit>",
    help: "what the budget is a share of: requests, tokens (the large model's, prompt plus output) or cost (its bill at the large-*-price prices) (default requests)",
  },
  {
    key: "large-input-price",
    flag: "--large-input-price <x>",
    help: "large model's price per 1000 input tokens (required for --budget-unit cost)",
    parse: finiteNumber("--large-input-price"),
  },
  {
    key: "large-output-price",
    flag: "--large-output-price <x>",
    help: "large model's price per 1000 output tokens (required for --budget-unit cost)",
    parse: finiteNumber("--large-output-price"),
  },
  {
    key: "small-input-price",
    flag: "--small-input-price <x>",
    help: "small model's price per 1000 input tokens (spend metric only)",
    parse: finiteNumber("--small-input-price"),
  },
  {
    key: "small-output-price",
    flag: "--small-output-price <x>",
    help: "small model's price per 1000 output tokens (spend metric only)",
    parse: finiteNumber("--small-output-price"),
  },
  {
    key: "output-tokens-per-char",
    flag: "--output-tokens-per-char <x>",
    help: "starting estimate of the large model's output tokens per source character, learned from its answers (default 0.3)",
    parse: finiteNumber("--output-tokens-per-char"),
  },
  {
    key: "port",
    flag: "--port <n>",
    help: "port to listen on; 0 picks a free one (default 8080)",
    parse: nonNegativeInteger("--port"),
  },
  { key: "host", flag: "--host <address>", help: "address to listen on (default 127.0.0.1)" },
  {
    key: "api-key-file",
    flag: "--api-key-file <file>",
    help: "API keys, one per line: every route but /healthz, /readyz and /metrics then needs Authorization: Bearer <key> (also: api-key in the config, ROUTELMT_SERVER_API_KEY)",
  },
  {
    key: "policy",
    flag: "--policy <name>",
    help: "routelmt (gain threshold), guarded (the router's guard: its risk-adjusted gain, or as guarded-qe when train chose the post-hoc guard) or guarded-qe (decode the small translation first, rank by gain − λ · its confidence) (default routelmt)",
  },
  {
    key: "window",
    flag: "--window <n>",
    help: "decisions in the budget's sliding window and hard cap (default 1000)",
    parse: positiveInteger("--window"),
  },
  {
    key: "budget-store",
    flag: "--budget-store <url>",
    help: "redis://HOST:PORT[/DB]: one budget (window and hard cap) for every replica naming this store (default: each replica its own)",
  },
  {
    key: "budget-store-namespace",
    flag: "--budget-store-namespace <name>",
    help: "keeps deployments sharing one Redis apart; the same on every replica of one (default default)",
  },
  {
    key: "budget-store-timeout-ms",
    flag: "--budget-store-timeout-ms <n>",
    help: "longest a decision waits for the budget store before it is made locally (default 50)",
    parse: positiveInteger("--budget-store-timeout-ms"),
  },
  {
    key: "budget-store-ttl-s",
    flag: "--budget-store-ttl-s <n>",
    help: "how long the store keeps a namespace after its last decision (default 604800, 7 days)",
    parse: positiveInteger("--budget-store-ttl-s"),
  },
  {
    key: "threads",
    flag: "--threads <n>",
    help: "CPU threads per in-process model (default: half the cores)",
    parse: positiveInteger("--threads"),
  },
  {
    key: "large-timeout-ms",
    flag: "--large-timeout-ms <n>",
    help: "deadline of a large call, retries included (default 30000)",
    parse: positiveInteger("--large-timeout-ms"),
  },
  {
    key: "large-retries",
    flag: "--large-retries <n>",
    help: "retries of a failed large call (default 2)",
    parse: nonNegativeInteger("--large-retries"),
  },
  {
    key: "small-retries",
    flag: "--small-retries <n>",
    help: "retries of a failed remote small-engine call (default 2)",
    parse: nonNegativeInteger("--small-retries"),
  },
  {
    key: "small-timeout-ms",
    flag: "--small-timeout-ms <n>",
    help: "per-attempt timeout of a remote small engine (default 60000)",
    parse: positiveInteger("--small-timeout-ms"),
  },
  {
    key: "max-text-bytes",
    flag: "--max-text-bytes <n>",
    help: "largest text in UTF-8 bytes (default 16384)",
    parse: positiveInteger("--max-text-bytes"),
  },
  {
    key: "max-batch-size",
    flag: "--max-batch-size <n>",
    help: "largest texts batch, at most --queue-size (default 64, or --queue-size if smaller)",
    parse: positiveInteger("--max-batch-size"),
  },
  {
    key: "body-limit-bytes",
    flag: "--body-limit-bytes <n>",
    help: "largest request body (default 2097152)",
    parse: positiveInteger("--body-limit-bytes"),
  },
  {
    key: "request-timeout-ms",
    flag: "--request-timeout-ms <n>",
    help: "longest time to receive a whole request, headers and body, before a 408 (default 30000)",
    parse: positiveInteger("--request-timeout-ms"),
  },
  {
    key: "queue-size",
    flag: "--queue-size <n>",
    help: "requests per engine in flight plus waiting before 429 (default 256)",
    parse: positiveInteger("--queue-size"),
  },
  {
    key: "small-concurrency",
    flag: "--small-concurrency <n>",
    help: "small engine sequences / requests in flight (default 4)",
    parse: positiveInteger("--small-concurrency"),
  },
  {
    key: "large-concurrency",
    flag: "--large-concurrency <n>",
    help: "large engine requests in flight (default 32)",
    parse: positiveInteger("--large-concurrency"),
  },
  {
    key: "feature-engine",
    flag: "--feature-engine <engine>",
    help: "in-process engine of a local small model: auto (ffi where it runs), llama or ffi (default auto)",
  },
  {
    key: "small-dim",
    flag: "--small-dim <n>",
    help: "hidden size of a remote (openai:) small model",
    parse: positiveInteger("--small-dim"),
  },
  {
    key: "max-tokens",
    flag: "--max-tokens <n>",
    help: "maximum new tokens per translation (default 256)",
    parse: positiveInteger("--max-tokens"),
  },
  {
    key: "guard-quality-quantile",
    flag: "--guard-quality-quantile <q>",
    help: "guarded: quality-head training quantile that keeps a request small (default 0.9)",
    parse: finiteNumber("--guard-quality-quantile"),
  },
  {
    key: "guard-risk",
    flag: "--guard-risk <p>",
    help: "guarded: risk probability that keeps a request small (default 0.5)",
    parse: finiteNumber("--guard-risk"),
  },
  {
    key: "readiness-cache-ms",
    flag: "--readiness-cache-ms <n>",
    help: "how long a remote engine probe is reused (default 5000)",
    parse: nonNegativeInteger("--readiness-cache-ms"),
  },
  {
    key: "shutdown-timeout-ms",
    flag: "--shutdown-timeout-ms <n>",
    help: "longest wait for in-flight requests on SIGTERM; past it they are aborted (503) and the process exits (default 30000)",
    parse: positiveInteger("--shutdown-timeout-ms"),
  },
  {
    key: "log-level",
    flag: "--log-level <level>",
    help: "fatal, error, warn, info, debug, trace or silent (default info)",
  },
];

function camelCase(key: string): string {
  return key.replace(/-([a-z])/g, (_, letter: string) => letter.toUpperCase());
}

/** Resolves when the process is asked to stop (SIGTERM or SIGINT). */
function stopSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      process.off("SIGTERM", onSignal);
      process.off("SIGINT", onSignal);
      resolve(signal);
    };
    process.on("SIGTERM", onSignal);
    process.on("SIGINT", onSignal);
  });
}

export function registerServe(program: Command, io: CliIo): void {
  const command = program
    .command("serve")
    .description(
      "Serve budgeted hybrid translation over HTTP (/v1/translate, OpenAI-compatible /v1/chat/completions)",
    )
    .option("--config <file>", "JSON or YAML file with any of the settings below (flags override it)");
  for (const entry of FLAGS) {
    if (entry.parse) command.option(entry.flag, entry.help, entry.parse);
    else command.option(entry.flag, entry.help);
  }
  command.action(async (flags: Record<string, unknown>) => {
    const configFile = typeof flags.config === "string" ? flags.config : undefined;
    const fileValues = configFile ? await readConfigFile(configFile) : {};
    const flagValues = Object.fromEntries(FLAGS.map((entry) => [entry.key, flags[camelCase(entry.key)]]));
    const config = resolveServerConfig(fileValues, flagValues, configFile, process.env);
    const app = await buildApp(config);
    const address = await app.listen({ port: config.port, host: config.host });
    const stopping = stopSignal();
    const keys = app.routelmt.apiKeyCount;
    const store = app.routelmt.sharedBudget?.status();
    const budget = `budget ${config.budget}${config.budgetUnit === "requests" ? "" : ` of ${config.budgetUnit}`}${
      store
        ? `, shared through ${store.store} namespace ${store.namespace}${store.ok ? "" : " (unreachable: deciding locally)"}`
        : ""
    }`;
    io.stdout(
      `routelmt serve listening on ${address} (${budget}, policy ${config.policy}, ${keys === 0 ? "no API keys: open to every client" : `API keys: ${keys}`})\n`,
    );
    const signal = await stopping;
    io.stderr(`routelmt serve: ${signal}: finishing in-flight requests\n`);
    const report = await closeWithDeadline(app, config.shutdownTimeoutMs);
    if (report.abortedRequests > 0) {
      io.stderr(
        `routelmt serve: shutdown deadline (${config.shutdownTimeoutMs} ms) passed: ${report.abortedRequests} requests answered 503\n`,
      );
    }
    io.stderr("routelmt serve: stopped\n");
  });
}
