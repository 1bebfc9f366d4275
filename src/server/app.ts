/**
 * `buildApp(config)`: loads the router, opens both engines, checks the router against the small
 * model, and returns a fastify instance with every route registered. It never listens: the CLI (or a
 * test) calls `listen`. Closing the instance waits for in-flight requests and disposes the engines.
 */
import { randomUUID } from "node:crypto";
import { type IncomingMessage, METHODS } from "node:http";
import type { Socket } from "node:net";
import Fastify, { type FastifyError, type FastifyInstance, LogController } from "fastify";
import type { DestinationStream } from "pino";
import { UsageError } from "../errors/index.js";
import {
  assertRouterMatches,
  loadRouter,
  type RouterFile,
  routerFeatureSelection,
} from "../probe/router-file.js";
import { parsePromptTemplate } from "../translators/prompt-template.js";
import type { ProbedTranslator, Translator } from "../translators/types.js";
import { BearerAuthenticator, readApiKeys } from "./auth.js";
import { BudgetWeigher } from "./budget-units.js";
import type { ServerConfig } from "./config.js";
import { answerAndClose, handleClientError } from "./connection-errors.js";
import { type OpenedEngine, openLargeEngine, openSmallEngine } from "./engines.js";
import { ClientClosedError, ServerError, toServerError } from "./errors.js";
import { HybridRouter } from "./hybrid-router.js";
import { gainBuckets, ServerMetrics } from "./metrics.js";
import { CachedProbe } from "./readiness.js";
import { roundMs, routingFacts } from "./reply-helpers.js";
import type { RequestLimits } from "./request-validation.js";
import { registerChatRoutes } from "./routes/chat-completions.js";
import { registerHealthRoutes } from "./routes/health.js";
import { registerTranslateRoutes } from "./routes/translate.js";
import { type SharedBudgetEvent, SharedBudgetLedger } from "./shared-budget-ledger.js";

/** What routes and tests reach through `app.routelmt`. */
export interface RoutelmtServerState {
  config: ServerConfig;
  router: RouterFile;
  hybrid: HybridRouter;
  metrics: ServerMetrics;
  limits: RequestLimits;
  small: OpenedEngine<ProbedTranslator>;
  large: OpenedEngine<Translator>;
  /** The budget shared with the other replicas through Redis; null when this replica holds its own. */
  sharedBudget: SharedBudgetLedger | null;
  smallProbe: CachedProbe | null;
  largeProbe: CachedProbe | null;
  /** True once close() began: readiness turns false. */
  closing: boolean;
  /** API keys accepted (from the key file, the config and the environment); 0: no authentication. */
  apiKeyCount: number;
}

declare module "fastify" {
  interface FastifyInstance {
    routelmt: RoutelmtServerState;
  }
  interface FastifyContextConfig {
    /** Answered without an API key (health, readiness, metrics); every other route needs one when keys are set. */
    public?: boolean;
  }
}

/** Options beside the config. */
export interface BuildAppExtras {
  /** Where log lines go (defaults to stdout). */
  logStream?: DestinationStream;
}

function templateOf(router: RouterFile, routerFile: string) {
  if (router.feature.template === null) {
    throw new UsageError(
      `the router ${routerFile} records no prompt template: the server must prompt exactly as in training; retrain with a dataset that records its template`,
    );
  }
  return parsePromptTemplate(router.feature.template, `${routerFile} (feature.template)`);
}

export async function buildApp(config: ServerConfig, extras: BuildAppExtras = {}): Promise<FastifyInstance> {
  const router = await loadRouter(config.router);
  const template = templateOf(router, config.router);
  const apiKeys = config.apiKeyFile
    ? config.apiKeys.with(await readApiKeys(config.apiKeyFile))
    : config.apiKeys;
  const authenticator = apiKeys.count > 0 ? new BearerAuthenticator(apiKeys.reveal()) : null;

  let hybrid: HybridRouter | undefined;
  let large: OpenedEngine<Translator> | undefined;
  let sharedBudget: SharedBudgetLedger | null = null;
  const metrics = new ServerMetrics(
    {
      budget: config.budget,
      realizedFraction: () => hybrid?.snapshot().realizedFraction ?? null,
      threshold: () => hybrid?.snapshot().threshold ?? Number.NaN,
      queueDepth: (engine) => (engine === "small" ? hybrid?.smallGate.depth : hybrid?.largeGate.depth) ?? 0,
      ...(config.budgetStore === undefined
        ? {}
        : { budgetStoreUp: () => (sharedBudget === null ? null : sharedBudget.status().ok) }),
    },
    gainBuckets(router.heads.gain?.score_quantiles ?? []),
  );
  // Logged through the app's logger once it exists; events before that (start-up) go to stderr.
  let logStoreEvent: (event: SharedBudgetEvent) => void = (event) => {
    if (event.kind === "fallback") {
      process.stderr.write(
        `routelmt serve: budget store: deciding locally (${event.reason}): ${event.message}\n`,
      );
    }
  };
  const onStoreEvent = (event: SharedBudgetEvent) => {
    switch (event.kind) {
      case "fallback":
        metrics.budgetStoreFailures.inc({ reason: event.reason });
        break;
      case "local-decisions":
        metrics.budgetStoreLocalDecisions.inc(event.count);
        return;
      case "resync":
        metrics.budgetStoreResyncs.inc();
        metrics.budgetStoreReplayed.inc(event.replayed);
        break;
      case "store-latency":
        metrics.budgetStoreSeconds.observe(event.ms / 1000);
        return;
      case "epoch":
        break;
    }
    logStoreEvent(event);
  };
  const engineOptions = {
    smallSpec: config.small,
    largeSpec: config.large,
    template,
    threads: config.threads,
    smallConcurrency: config.smallConcurrency,
    largeConcurrency: config.largeConcurrency,
    featureEngine: config.featureEngine,
    smallTimeoutMs: config.smallTimeoutMs,
    largeTimeoutMs: config.largeTimeoutMs,
    largeRetries: config.largeRetries,
    smallRetries: config.smallRetries,
    maxTokens: config.maxTokens,
    // Exactly the router's feature blocks, in its order.
    layer: routerFeatureSelection(router),
    smallDim: config.smallDim,
    onRetry: (engine: "small" | "large") => metrics.retries.inc({ engine }),
  };
  const spendCounted = config.largePrices !== undefined || config.smallPrices !== undefined;
  const weigher =
    config.budgetUnit !== "requests" || spendCounted
      ? new BudgetWeigher({
          unit: config.budgetUnit === "cost" ? "cost" : "tokens",
          largePrices: config.largePrices,
          smallPrices: config.smallPrices,
          outputTokensPerCharacter: config.outputTokensPerCharacter,
          onSpend: (model, amount) => metrics.spend.inc({ model }, amount),
        })
      : undefined;
  const small = await openSmallEngine(engineOptions);
  try {
    assertRouterMatches(router, small.translator.featureIdentity, `the small model ${config.small}`);
    large = await openLargeEngine(engineOptions);
    if (config.budgetStore !== undefined) {
      sharedBudget = await SharedBudgetLedger.open({
        url: config.budgetStore,
        namespace: config.budgetStoreNamespace,
        budget: config.budget,
        window: config.window,
        weighted: config.budgetUnit !== "requests",
        unit: config.budgetUnit,
        timeoutMs: config.budgetStoreTimeoutMs,
        ttlSeconds: config.budgetStoreTtlSeconds,
        onEvent: onStoreEvent,
      });
    }
    hybrid = new HybridRouter({
      small: small.translator,
      large: large.translator,
      smallName: config.small,
      largeName: config.large,
      router,
      budget: config.budget,
      window: config.window,
      ...(sharedBudget ? { ledger: sharedBudget } : {}),
      ...(weigher && config.budgetUnit !== "requests" ? { weigher } : {}),
      ...(weigher ? { onAnswer: weigher.observe.bind(weigher) } : {}),
      policy: config.policy,
      guardQualityQuantile: config.guardQualityQuantile,
      guardRisk: config.guardRisk,
      largeTimeoutMs: config.largeTimeoutMs,
      maxTokens: config.maxTokens,
      queueSize: config.queueSize,
      metrics,
      onUnseenPair: (pair, trainedOn) =>
        app.log.warn(
          { pair, trained_on: trainedOn },
          "the router was not trained on this language pair: its gain scores there are extrapolation",
        ),
    });
  } catch (error) {
    await small.translator.dispose();
    await large?.translator.dispose();
    await sharedBudget?.close();
    throw error;
  }

  const app: FastifyInstance = Fastify({
    logger: {
      level: config.logLevel,
      // Belt and braces: request logging is our own one line, which never includes headers.
      redact: ["req.headers.authorization", "headers.authorization"],
      ...(extras.logStream ? { stream: extras.logStream } : {}),
    },
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: config.bodyLimitBytes,
    // Without a bound, a client that announces a body and never sends it holds its connection forever.
    requestTimeout: config.requestTimeoutMs,
    http: {
      // Node's own check answers a missing Host with an empty 400; ours answers in the error format.
      requireHostHeader: false,
      headersTimeout: config.requestTimeoutMs,
      // Node checks for expired requests only this often; a tenth of the timeout keeps the bound tight.
      connectionsCheckingInterval: Math.min(1000, Math.max(10, Math.round(config.requestTimeoutMs / 10))),
    },
    genReqId: () => randomUUID(),
    // Our own onRequest hook answers while closing, in the documented error format.
    return503OnClosing: false,
    clientErrorHandler: (error, socket) => handleClientError(app.log, error, socket),
    // A path whose percent-encoding does not decode never reaches a route (or the error handler).
    frameworkErrors: (error, _request, reply) => {
      const answer = new ServerError(
        "RLMT_ERR_MALFORMED_REQUEST",
        error.code === "FST_ERR_BAD_URL" ? "the request path is not valid percent-encoding" : error.message,
      );
      const body = JSON.stringify(answer.toBody());
      reply.raw.writeHead(answer.status, {
        "content-type": "application/json; charset=utf-8",
        "content-length": Buffer.byteLength(body),
        connection: "close",
      });
      reply.raw.end(body);
    },
  });
  if (hybrid.guardedNotice !== null) app.log.info(hybrid.guardedNotice);
  if (hybrid.qeNotice !== null) app.log.info(hybrid.qeNotice);
  if (hybrid.policy === "guarded-qe" && !hybrid.decodesSmallFirst) {
    app.log.info(
      "guarded-qe: this router's post-hoc guard has λ = 0 (training found no cut worth its cost), so requests are ranked by gain alone and no small translation is decoded before the decision",
    );
  } else if (hybrid.policy === "guarded-qe" && hybrid.qeScoredByLarge) {
    app.log.info(
      "guarded-qe: this router's post-hoc guard ranks by the large model's likelihood of the small translation: every request's small translation is decoded and scored by one large-model prefill before the decision",
    );
  }
  // Node answers CONNECT with no route at all: the connection just closes.
  app.server.on("connect", (_request: IncomingMessage, socket: Socket) => {
    answerAndClose(
      socket,
      new ServerError("RLMT_ERR_MALFORMED_REQUEST", "CONNECT is not supported: this server is not a proxy"),
    );
  });

  app.decorate("routelmt", {
    config,
    router,
    hybrid,
    metrics,
    limits: {
      maxTextBytes: config.maxTextBytes,
      maxBatchSize: config.maxBatchSize,
      defaultSourceLang: router.src_lang,
      defaultTargetLang: router.tgt_lang,
    },
    small,
    large,
    sharedBudget,
    smallProbe: small.probeUrl ? new CachedProbe(small.probeUrl, config.readinessCacheMs) : null,
    largeProbe: large.probeUrl ? new CachedProbe(large.probeUrl, config.readinessCacheMs) : null,
    closing: false,
    apiKeyCount: apiKeys.count,
  } satisfies RoutelmtServerState);

  registerJsonParser(app);
  // Hooks take `done` rather than being async: a promise per hook per request is measurable here.
  app.addHook("onRequest", (request, reply, done) => {
    if (app.routelmt.closing) {
      return done(
        new ServerError("RLMT_ERR_SHUTTING_DOWN", "the server is shutting down: retry on another replica", {
          retryAfterSeconds: 1,
        }),
      );
    }
    // RFC 9112 §3.2: an HTTP/1.1 request without Host is malformed (HTTP/1.0 has none to send).
    if (request.headers.host === undefined && request.raw.httpVersion === "1.1") {
      reply.header("connection", "close");
      return done(
        new ServerError(
          "RLMT_ERR_MALFORMED_REQUEST",
          "the request has no Host header, which HTTP/1.1 requires",
          {
            field: "host",
          },
        ),
      );
    }
    done();
  });
  if (authenticator) {
    // Decided on the route the router matched, never on the raw URL: `/%76%31/translate` and other
    // spellings reach the same route. Deny by default: only routes marked public, not unknown paths.
    app.addHook("onRequest", (request, reply, done) => {
      if (
        request.routeOptions.config.public === true ||
        authenticator.accepts(request.headers.authorization)
      ) {
        return done();
      }
      reply.header("www-authenticate", 'Bearer realm="routelmt"');
      done(
        new ServerError(
          "RLMT_ERR_UNAUTHORIZED",
          "missing or unknown API key: send Authorization: Bearer <key>",
        ),
      );
    });
  }
  app.addHook("onSend", (_request, reply, payload, done) => {
    // While draining, answers close their connection so keep-alive sockets do not hold up the exit.
    if (app.routelmt.closing) reply.header("connection", "close");
    done(null, payload);
  });
  const logsRequests = ["info", "debug", "trace"].includes(config.logLevel);
  app.addHook("onResponse", (request, reply, done) => {
    const route = request.routeOptions.url ?? "unmatched";
    metrics.countHttpRequest(route, reply.statusCode);
    // Skips building the line when the level drops it (the bulk of this hook's cost under load).
    if (!logsRequests) return done();
    const results = routingFacts.get(request);
    request.log.info(
      {
        method: request.method,
        route,
        status: reply.statusCode,
        ms: roundMs(reply.elapsedTime),
        ...(results
          ? {
              translations: results.map((result) => ({
                model: result.model,
                predicted_gain: Number.isFinite(result.predictedGain) ? result.predictedGain : null,
                guarded: result.guarded,
                fallback: result.fallbackReason,
                stages_ms: {
                  prefill: roundMs(result.stages.prefill),
                  decision: roundMs(result.stages.decision),
                  small_decode: roundMs(result.stages.smallDecode),
                  qe_score: roundMs(result.stages.qeScore),
                  large_call: roundMs(result.stages.largeCall),
                  fallback_decode: roundMs(result.stages.fallbackDecode),
                  first_text: roundMs(result.stages.firstText),
                },
              })),
            }
          : {}),
      },
      "request",
    );
    done();
  });
  app.setErrorHandler(async (error: FastifyError, request, reply) => {
    // Nobody to answer: the abort already stopped the engine calls and was counted.
    if (error instanceof ClientClosedError) return reply.status(499).send();
    const answer = toServerError(error);
    if (answer.status >= 500 && answer.code === "RLMT_ERR_INTERNAL") {
      request.log.error({ err: error }, "unexpected error");
    }
    if (answer.retryAfterSeconds !== undefined) reply.header("retry-after", String(answer.retryAfterSeconds));
    return reply.status(answer.status).send(answer.toBody());
  });
  app.setNotFoundHandler(async (request, reply) => {
    const answer = new ServerError(
      "RLMT_ERR_NOT_FOUND",
      `no route ${request.method} ${request.url.split("?")[0]}`,
    );
    return reply.status(answer.status).send(answer.toBody());
  });

  const routes = collectRoutes(app);
  registerHealthRoutes(app);
  registerTranslateRoutes(app);
  registerChatRoutes(app);
  registerMethodNotAllowed(app, routes);

  app.addHook("preClose", async () => {
    app.routelmt.closing = true;
  });
  logStoreEvent = (event) => {
    if (event.kind === "fallback") {
      app.log.warn({ reason: event.reason, error: event.message }, "budget store: deciding locally");
    } else if (event.kind === "resync") {
      app.log.info(
        { replayed: event.replayed, dropped: event.dropped },
        "budget store: back to the shared budget",
      );
    } else if (event.kind === "epoch" && event.previous !== null) {
      app.log.warn(
        { previous: event.previous, epoch: event.current },
        "budget store: the shared budget started afresh",
      );
    }
  };
  app.addHook("onClose", async () => {
    await Promise.allSettled([small.translator.dispose(), large.translator.dispose(), sharedBudget?.close()]);
  });
  return app;
}

/** Path → the methods registered on it, and whether it is public; filled as routes are registered. */
type RouteTable = Map<string, { methods: Set<string>; public: boolean }>;

function collectRoutes(app: FastifyInstance): RouteTable {
  const routes: RouteTable = new Map();
  app.addHook("onRoute", (route) => {
    const entry = routes.get(route.url) ?? { methods: new Set<string>(), public: false };
    for (const method of [route.method].flat()) entry.methods.add(method);
    // fastify answers HEAD on every GET route by itself.
    if (entry.methods.has("GET")) entry.methods.add("HEAD");
    entry.public ||= route.config?.public === true;
    routes.set(route.url, entry);
  });
  return routes;
}

/**
 * 405 with `Allow` for a known path asked with another method (GET on /v1/translate), instead of a
 * 404 that says the path does not exist. Registered as routes, so another spelling of the path gets
 * the same answer, and behind the same authentication as the path's own routes.
 */
function registerMethodNotAllowed(app: FastifyInstance, routes: RouteTable): void {
  // fastify routes a few methods by default; any other one Node parses (PROPFIND, COPY, …) would
  // reach the not-found handler. CONNECT never reaches a route (answered on its own, above).
  for (const method of METHODS) {
    if (method !== "CONNECT" && !app.supportedMethods.includes(method)) app.addHttpMethod(method);
  }
  const methods = app.supportedMethods.filter((method) => method !== "CONNECT");
  for (const [url, entry] of [...routes]) {
    const allowed = methods.filter((method) => entry.methods.has(method));
    const refused = methods.filter((method) => !entry.methods.has(method));
    if (refused.length === 0) continue;
    app.route({
      method: [...refused],
      url,
      config: { public: entry.public },
      // fastify would otherwise add a HEAD route for a refused GET; HEAD is in `refused` when not allowed.
      exposeHeadRoute: false,
      handler: async (request, reply) => {
        reply.header("allow", allowed.join(", "));
        const answer = new ServerError(
          "RLMT_ERR_METHOD_NOT_ALLOWED",
          `${request.method} is not allowed on ${url}: use ${allowed.join(" or ")}`,
        );
        return reply.status(answer.status).send(answer.toBody());
      },
    });
  }
}

/**
 * JSON bodies only: read as bytes (fastify's bodyLimit applies while reading, before any parsing),
 * decoded as strict UTF-8 (invalid bytes are a 400, not silently replaced), then parsed.
 */
function registerJsonParser(app: FastifyInstance): void {
  const decoder = new TextDecoder("utf-8", { fatal: true });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("application/json", { parseAs: "buffer" }, (request, body, done) => {
    const encoding = request.headers["content-encoding"];
    if (encoding !== undefined && !/^\s*(identity)?\s*$/i.test(encoding)) {
      // RFC 7694 §3: a content coding the server does not decode is a 415, not a body of bad bytes.
      done(
        new ServerError(
          "RLMT_ERR_UNSUPPORTED_MEDIA_TYPE",
          `Content-Encoding ${JSON.stringify(encoding.slice(0, 40))} is not supported: send the body uncompressed`,
          { field: "content-encoding" },
        ),
        undefined,
      );
      return;
    }
    const charset = /;\s*charset\s*=\s*"?([^";\s]*)/i.exec(request.headers["content-type"] ?? "")?.[1];
    if (charset !== undefined && !/^utf-?8$/i.test(charset)) {
      done(
        new ServerError(
          "RLMT_ERR_UNSUPPORTED_MEDIA_TYPE",
          `charset ${JSON.stringify(charset.slice(0, 40))} is not supported: send JSON as UTF-8`,
          { field: "content-type" },
        ),
        undefined,
      );
      return;
    }
    let text: string;
    try {
      text = decoder.decode(body as Buffer);
    } catch {
      done(new ServerError("RLMT_ERR_INVALID_UTF8", "the body is not valid UTF-8"), undefined);
      return;
    }
    // A test, not trim(): no copy of the body.
    if (!/\S/.test(text)) {
      done(new ServerError("RLMT_ERR_MALFORMED_JSON", "the body is empty: send a JSON object"), undefined);
      return;
    }
    try {
      done(null, JSON.parse(text));
    } catch (error) {
      done(
        new ServerError("RLMT_ERR_MALFORMED_JSON", `the body is not valid JSON: ${(error as Error).message}`),
        undefined,
      );
    }
  });
}
