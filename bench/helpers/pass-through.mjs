/**
 * The floor of any proxy in Node, for `bench/server-overhead.ts`: a bare fastify app whose one
 * route forwards a chat completion's body to an engine and answers its bytes, with Node's `fetch`
 * (undici) or with `node:http` on a keep-alive agent (what routelmt's engine calls use). Plain
 * JavaScript run by `node` itself, as the built routelmt is, so neither carries a loader's cost.
 * Usage: `node bench/helpers/pass-through.mjs <engine base URL> fetch|node-http`.
 */
import http from "node:http";
import Fastify from "fastify";

/**
 * POSTs `body` with `node:http` on a keep-alive agent: status, content type and body bytes.
 * @param {string} url
 * @param {string} body
 * @param {http.Agent} agent
 * @returns {Promise<{ status: number; contentType: string; body: Buffer }>}
 */
function postWithNodeHttp(url, body, agent) {
  return new Promise((resolve, reject) => {
    const outgoing = http.request(
      url,
      {
        method: "POST",
        agent,
        headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) },
      },
      (answer) => {
        /** @type {Buffer[]} */
        const chunks = [];
        answer.on("data", (chunk) => chunks.push(chunk));
        answer.on("end", () =>
          resolve({
            status: answer.statusCode ?? 502,
            contentType: answer.headers["content-type"] ?? "application/json",
            body: Buffer.concat(chunks),
          }),
        );
        answer.on("error", reject);
      },
    );
    outgoing.on("error", reject);
    outgoing.end(body);
  });
}

const [upstream, client] = process.argv.slice(2);
if (!upstream || (client !== "fetch" && client !== "node-http")) {
  console.error("usage: pass-through.mjs <engine base URL> fetch|node-http");
  process.exit(2);
}
const app = Fastify({ logger: false });
const agent = new http.Agent({ keepAlive: true });
app.post("/v1/chat/completions", async (request, reply) => {
  const url = `${upstream}/chat/completions`;
  const body = JSON.stringify(request.body);
  if (client === "node-http") {
    const answer = await postWithNodeHttp(url, body, agent);
    reply.status(answer.status).header("content-type", answer.contentType);
    return answer.body;
  }
  const answer = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body });
  reply
    .status(answer.status)
    .header("content-type", answer.headers.get("content-type") ?? "application/json");
  return Buffer.from(await answer.arrayBuffer());
});
const origin = await app.listen({ port: 0, host: "127.0.0.1" });
console.log(`pass-through at ${origin}`);
process.once("SIGTERM", () => void app.close().then(() => process.exit(0)));
