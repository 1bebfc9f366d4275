/**
 * Preloaded into `routelmt serve` by `bench/server-timeline.ts` (`node --import`): records, from
 * Node's HTTP diagnostics channels, when each incoming request starts and its answer finishes and
 * when each engine call the server makes starts and finishes, plus the process's CPU time. Nothing
 * in the server changes; the channels are Node's own instrumentation points.
 *
 * SIGUSR2 writes what was recorded since the previous SIGUSR2 to `ROUTELMT_TIMELINE_OUT` (JSON) and
 * starts afresh, so the benchmark can cut away its warm-up. Plain JavaScript, so the server runs
 * without a TypeScript loader as users run it.
 */
import { subscribe } from "node:diagnostics_channel";
import { writeFileSync } from "node:fs";

/**
 * `[kind, time in ms, path]`: `in` / `out` for the server's request and answer, `call` / `done` for
 * an engine call.
 * @type {["in" | "out" | "call" | "done", number, string][]}
 */
let events = [];
let cpuSince = process.cpuUsage();

subscribe("http.server.request.start", (message) => {
  const { request } = message;
  events.push(["in", performance.now(), request.url ?? ""]);
});
subscribe("http.server.response.finish", (message) => {
  const { request } = message;
  events.push(["out", performance.now(), request.url ?? ""]);
});
subscribe("http.client.request.start", (message) => {
  const { request } = message;
  events.push(["call", performance.now(), request.path]);
});
subscribe("http.client.response.finish", (message) => {
  const { request } = message;
  events.push(["done", performance.now(), request.path]);
});

process.on("SIGUSR2", () => {
  const out = process.env.ROUTELMT_TIMELINE_OUT;
  const cpu = process.cpuUsage(cpuSince);
  if (out) writeFileSync(out, JSON.stringify({ events, cpu_user_us: cpu.user, cpu_system_us: cpu.system }));
  events = [];
  cpuSince = process.cpuUsage();
});
