/**
 * Early answers (401, 413, 415 …) to requests whose body the gateway never read must not break a
 * keep-alive client's pool: the gateway drains the rest of the body, or says `Connection: close`.
 * A real gateway process and node:http's keep-alive Agent with one socket, like a pooled client.
 */
import http from "node:http";
import type { Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { IDLE_KEEP_ALIVE_MS } from "../../gateway/keep-alive.ts";
import { type GatewayProcess, startGatewayProcess } from "../helpers/gateway-process.ts";

type Answer = { status: number; headers: http.IncomingHttpHeaders; body: string; socket: Socket };

function send(
  base: string,
  agent: http.Agent,
  method: string,
  path: string,
  init: { headers?: Record<string, string>; body?: Buffer | Buffer[]; slowMs?: number; gapMs?: number } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${base}${path}`, { method, agent, headers: init.headers }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d) => (body += d));
      res.on("end", () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, socket: req.socket as Socket }),
      );
      res.on("error", reject);
    });
    req.on("error", reject);
    const parts = init.body === undefined ? [] : Array.isArray(init.body) ? init.body : [init.body];
    if (init.slowMs) {
      // Send the first part, then stall: the gateway answers without the rest.
      req.write(parts[0] ?? Buffer.alloc(0));
      setTimeout(() => req.destroy(), init.slowMs);
      return;
    }
    if (init.gapMs) {
      // A slow uplink: the parts arrive over time, long after the answer is ready.
      const next = (i: number) => {
        if (i === parts.length) {
          req.end();
          return;
        }
        req.write(parts[i]);
        setTimeout(() => next(i + 1), init.gapMs);
      };
      next(0);
      return;
    }
    for (const part of parts) {
      req.write(part);
    }
    req.end();
  });
}

const problem = (a: Answer) => JSON.parse(a.body) as { status: number; code: string; requestId?: string };

describe("keep-alive after early answers (real gateway process)", () => {
  let gw: GatewayProcess;
  beforeAll(async () => {
    gw = await startGatewayProcess({ SLURMGATE_BODY_LIMIT_BYTES: "4194304" });
  });
  afterAll(async () => {
    await gw?.stop();
  });

  it("keeps an idle connection longer than clients and proxies keep theirs, so the client side closes first", async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const first = await send(gw.url, agent, "GET", "/healthz");
      expect(first.headers["keep-alive"]).toBe(`timeout=${IDLE_KEEP_ALIVE_MS / 1_000}`);
      expect(IDLE_KEEP_ALIVE_MS).toBeGreaterThan(60_000);
      // Past Node's own default of 5 s, the gateway has not closed the pooled socket.
      await new Promise((r) => setTimeout(r, 5_500));
      const second = await send(gw.url, agent, "GET", "/healthz");
      expect(second.status).toBe(200);
      expect(second.socket).toBe(first.socket);
    } finally {
      agent.destroy();
    }
  }, 20_000);

  it("a 401 to a POST with a large unread body, then the next request on the same socket works", async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const big = Buffer.alloc(3_000_000, 0x20);
      const slices = Array.from({ length: 10 }, (_, i) => big.subarray(i * 300_000, (i + 1) * 300_000));
      for (const [headers, gapMs] of [
        [{ "content-type": "application/json" }, 0],
        [{ "content-type": "application/json", authorization: "Bearer sgu_garbage" }, 0],
        [{ "content-type": "text/plain", authorization: "Bearer sgu_garbage" }, 0],
        [{ "content-type": "application/json" }, 100],
      ] as const) {
        const first = await send(gw.url, agent, "POST", "/v1/jobs", {
          // A declared length, as fetch and most clients send: the body is not read before the 401.
          headers: { ...headers, "content-length": String(big.length) },
          body: slices,
          gapMs,
        });
        expect(first.status).toBe(401);
        expect(problem(first).code).toBe("unauthorized");
        expect(problem(first).requestId).toBe(first.headers["x-request-id"]);
        const second = await send(gw.url, agent, "GET", "/healthz");
        expect(second.status).toBe(200);
        // The body was within the limits, so it was drained: an answer that says keep-alive kept
        // its word, and the same connection carried the next request.
        expect(first.headers.connection).not.toBe("close");
        expect(second.socket).toBe(first.socket);
        // And a request without a body never costs its connection.
        expect(second.headers.connection).not.toBe("close");
        expect((await send(gw.url, agent, "GET", "/healthz")).socket).toBe(second.socket);
      }
      // An admin's 415 whose body was barely looked at, then a real request with the same pool.
      const typed = await send(gw.url, agent, "POST", "/v1/admin/users", {
        headers: {
          authorization: `Bearer ${gw.adminToken}`,
          "content-type": "text/plain",
          "content-length": String(big.length),
        },
        body: big,
      });
      expect(typed.status).toBe(415);
      expect(problem(typed).code).toBe("unsupported_media_type");
      const me = await send(gw.url, agent, "GET", "/v1/me", { headers: { authorization: `Bearer ${gw.adminToken}` } });
      expect(me.status).toBe(200);
    } finally {
      agent.destroy();
    }
  });

  it("a chunked body over the limit is drained (413, same socket); one far over it closes and the pool recovers", async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      // Chunked, over the 4 MB limit but within what the gateway drains: a 413 that keeps the connection.
      const over = await send(gw.url, agent, "POST", "/v1/jobs", {
        headers: { authorization: `Bearer ${gw.adminToken}`, "content-type": "application/json" },
        body: Array.from({ length: 6 }, () => Buffer.alloc(1_000_000, 0x20)),
      });
      expect(over.status).toBe(413);
      expect(problem(over).code).toBe("payload_too_large");
      expect(over.headers.connection).not.toBe("close");
      const after = await send(gw.url, agent, "GET", "/healthz");
      expect(after.socket).toBe(over.socket);

      // Far over every limit: not worth reading; the answer closes the connection.
      const chunks = Array.from({ length: 40 }, () => Buffer.alloc(1_000_000, 0x20));
      const chunked = await send(gw.url, agent, "POST", "/v1/jobs", {
        headers: { authorization: `Bearer ${gw.adminToken}`, "content-type": "application/json" },
        body: chunks,
      }).catch((err: Error) => err);
      if (!(chunked instanceof Error)) {
        expect(chunked.status).toBe(413);
        expect(chunked.headers.connection).toBe("close");
      }
      for (let i = 0; i < 3; i++) {
        const next = await send(gw.url, agent, "GET", "/v1/me", {
          headers: { authorization: `Bearer ${gw.adminToken}` },
        });
        expect(next.status).toBe(200);
      }
    } finally {
      agent.destroy();
    }
  });

  it("a client that stalls mid-body gets its answer with Connection: close, and the gateway stays up", async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const started = Date.now();
      const stalled = await send(gw.url, agent, "POST", "/v1/jobs", {
        headers: { "content-type": "application/json", "content-length": "1000000" },
        body: [Buffer.from('{"name":"x"')],
        slowMs: 15_000,
      });
      expect(stalled.status).toBe(401);
      expect(stalled.headers.connection).toBe("close");
      expect(Date.now() - started).toBeLessThan(12_000);
      const next = await send(gw.url, agent, "GET", "/healthz");
      expect(next.status).toBe(200);
    } finally {
      agent.destroy();
    }
  });
});
