import type { FastifyInstance } from "fastify";
import { SERVED_MODEL } from "../request-validation.js";

/** Open to every client, API keys or not: load balancers and scrapers probe these. */
const PUBLIC = { config: { public: true } };

/** `/healthz` (process up), `/readyz` (engines usable), `/metrics` (Prometheus), `/v1/models`. */
export function registerHealthRoutes(app: FastifyInstance): void {
  app.get("/healthz", PUBLIC, async () => ({ status: "ok" }));

  app.get("/readyz", PUBLIC, async (_request, reply) => {
    const state = app.routelmt;
    const [smallProbe, largeProbe] = await Promise.all([
      state.smallProbe?.check(),
      state.largeProbe?.check(),
    ]);
    const smallError =
      state.hybrid.smallEngineError ?? (smallProbe && !smallProbe.ok ? smallProbe.error : undefined);
    const largeError = largeProbe && !largeProbe.ok ? largeProbe.error : undefined;
    const checks = {
      small: {
        ok: smallError === undefined,
        engine: state.config.small,
        ...(smallError ? { error: smallError } : {}),
      },
      large: {
        ok: largeError === undefined,
        engine: state.config.large,
        ...(largeError ? { error: largeError } : {}),
      },
      shutting_down: state.closing,
      // Informational: a replica whose budget store is down decides locally and keeps serving, so
      // it stays ready (draining every replica on a store outage would turn it into a full outage).
      ...(state.sharedBudget ? { budget_store: state.sharedBudget.status() } : {}),
    };
    const ready = checks.small.ok && checks.large.ok && !state.closing;
    return reply.status(ready ? 200 : 503).send({ ready, checks, budget: state.hybrid.snapshot() });
  });

  app.get("/metrics", PUBLIC, async (_request, reply) => {
    const registry = app.routelmt.metrics.registry;
    reply.header("content-type", registry.contentType);
    return registry.metrics();
  });

  app.get("/v1/models", async () => ({
    object: "list",
    data: [{ id: SERVED_MODEL, object: "model", created: 0, owned_by: "routelmt" }],
  }));
}
