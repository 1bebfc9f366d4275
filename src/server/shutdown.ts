/**
 * Stopping the server within a deadline. `app.close()` alone waits for every in-flight request,
 * and a request waiting on a slow engine keeps its socket to the engine — and the process — alive
 * for as long as the engine takes, whatever happens to the client's connection.
 */
import type { FastifyInstance } from "fastify";

/** After the abort, how long the aborted requests get to write their answers before connections are cut. */
const ANSWER_GRACE_MS = 250;

/** What happened during a shutdown. */
export interface ShutdownReport {
  /** Requests whose engine calls were aborted at the deadline (0 when everything finished in time). */
  abortedRequests: number;
}

/**
 * Stops accepting connections, lets in-flight requests finish until `deadlineMs`, then aborts the
 * engine calls of those still running (each answers 503 RLMT_ERR_SHUTTING_DOWN), gives the answers
 * ANSWER_GRACE_MS to leave, cuts every connection still open (a slow upload, a client that does not
 * read) and resolves once the server and both engines are closed.
 */
export async function closeWithDeadline(app: FastifyInstance, deadlineMs: number): Promise<ShutdownReport> {
  const report: ShutdownReport = { abortedRequests: 0 };
  let cut: NodeJS.Timeout | undefined;
  const deadline = setTimeout(() => {
    report.abortedRequests = app.routelmt.hybrid.inFlight;
    app.routelmt.hybrid.abortInFlight();
    cut = setTimeout(() => app.server.closeAllConnections(), ANSWER_GRACE_MS);
  }, deadlineMs);
  try {
    await app.close();
  } finally {
    clearTimeout(deadline);
    clearTimeout(cut);
  }
  return report;
}
