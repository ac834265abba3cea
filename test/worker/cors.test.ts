/**
 * CORS on the Worker in real workerd answers exactly as on Node: the same requests, compared
 * header by header with the in-process Node app under the same SLURMGATE_CORS_ORIGINS. And the
 * entry's own "not ready" problem (run in Node) is readable by a listed origin's page.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import worker from "../../gateway/worker.ts";
import { generateToken } from "../../gateway/tokens.ts";
import { createTestGateway, type TestGateway } from "../helpers/gateway.ts";
import { freePort, startWorkerTarget, type WorkerTarget } from "../helpers/worker-target.ts";

const APP = "https://app.example.org";

type Probe = { method: string; path: string; headers: Record<string, string>; auth?: boolean };

const probes: Probe[] = [
  { method: "OPTIONS", path: "/v1/me", headers: { origin: APP, "access-control-request-method": "GET" } },
  {
    method: "OPTIONS",
    path: "/v1/jobs",
    headers: {
      origin: APP,
      "access-control-request-method": "POST",
      "access-control-request-headers": "authorization, content-type, idempotency-key",
    },
  },
  { method: "OPTIONS", path: "/v1/me", headers: { origin: APP, "access-control-request-method": "PATCH" } },
  {
    method: "OPTIONS",
    path: "/v1/me",
    headers: { origin: "https://evil.example", "access-control-request-method": "GET" },
  },
  { method: "OPTIONS", path: "/v1/me", headers: { origin: "null", "access-control-request-method": "GET" } },
  { method: "OPTIONS", path: "/healthz", headers: {} },
  { method: "GET", path: "/v1/me", headers: { origin: APP }, auth: true },
  { method: "GET", path: "/v1/me", headers: { origin: APP } },
  { method: "GET", path: "/v1/me", headers: { origin: "https://evil.example" }, auth: true },
];

/** Status, content type and every CORS-relevant header, the parts a browser decides on. */
function shape(res: Response) {
  const picked: Record<string, string> = {};
  for (const [name, value] of res.headers) {
    if (name.startsWith("access-control-") || name === "vary" || name === "content-type") {
      picked[name] = value;
    }
  }
  return { status: res.status, headers: picked };
}

describe("CORS on the Worker in workerd", () => {
  let target: WorkerTarget;
  let node: TestGateway;
  let nodeAdmin: string;

  beforeAll(async () => {
    [target, node] = await Promise.all([
      startWorkerTarget({ vars: { SLURMGATE_CORS_ORIGINS: APP, SLURMGATE_RATE_LIMIT_PER_SECOND: "0" } }),
      createTestGateway({ SLURMGATE_CORS_ORIGINS: APP }),
    ]);
    nodeAdmin = await node.user("root", true);
  }, 90_000);

  afterAll(async () => {
    await target?.close();
  });

  it("answers a listed origin's preflight 204 without a token and refuses others, as Node does", async () => {
    const preflight = await fetch(`${target.baseUrl}/v1/me`, { method: "OPTIONS", headers: probes[0]?.headers });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("access-control-allow-origin")).toBe(APP);
    expect(preflight.headers.get("access-control-allow-headers")).toContain("authorization");

    const refused = await fetch(`${target.baseUrl}/v1/me`, { method: "OPTIONS", headers: probes[3]?.headers });
    expect(refused.status).toBe(403);
    expect([...refused.headers.keys()].filter((h) => h.startsWith("access-control-"))).toEqual([]);
  });

  it("gives every probe the same status and CORS headers as the Node gateway", async () => {
    for (const probe of probes) {
      const label = `${probe.method} ${probe.path} ${JSON.stringify(probe.headers)}`;
      const worker = await fetch(target.baseUrl + probe.path, {
        method: probe.method,
        headers: { ...probe.headers, ...(probe.auth ? { authorization: `Bearer ${target.adminToken}` } : {}) },
      });
      await worker.arrayBuffer();
      const onNode = await node.request(probe.method, probe.path, {
        headers: probe.headers,
        ...(probe.auth ? { token: nodeAdmin } : {}),
      });
      expect(shape(worker), label).toEqual(shape(onNode));
    }
  });
});

describe("the Worker entry's own problems", () => {
  it("lets a listed origin read the 503 while the database is unreachable, and no other origin", async () => {
    const env = {
      LIBSQL_URL: `http://127.0.0.1:${await freePort()}`, // nothing listens there
      LIBSQL_AUTH_TOKEN: "secret",
      SLURMGATE_BOOTSTRAP_TOKEN: generateToken("admin"),
      SLURMGATE_CORS_ORIGINS: APP,
      SLURMGATE_LOG_LEVEL: "error",
    };
    const ctx = { waitUntil: () => {} };
    const errors = console.error;
    console.error = () => {}; // the entry logs each failed bootstrap; expected here
    try {
      for (const [origin, allowed] of [
        [APP, true],
        ["https://evil.example", false],
      ] as const) {
        const res = await worker.fetch(new Request("http://gateway.test/v1/me", { headers: { origin } }), env, ctx);
        expect(res.status).toBe(503);
        expect(await res.json()).toMatchObject({ code: "unavailable" });
        expect(res.headers.get("access-control-allow-origin")).toBe(allowed ? APP : null);
        expect(res.headers.get("vary")).toBe("Origin");
        if (allowed) {
          expect(res.headers.get("access-control-expose-headers")).toContain("retry-after");
        }
      }
    } finally {
      console.error = errors;
    }
  });
});
