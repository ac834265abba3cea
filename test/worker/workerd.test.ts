/**
 * What only the Worker wiring can get wrong, in real workerd over the test Hrana endpoint: the
 * bootstrap admin, long-polls woken within one isolate and bounded by `wait`, binary log bytes
 * through libSQL-over-HTTP, and the cron handler that sweeps expired leases. The shared API suite
 * (test/worker/api.test.ts) covers the rest of the API on the same build.
 */
import { createClient } from "@libsql/client/web";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sampleInventory } from "../helpers/gateway.ts";
import { startWorkerTarget, type WorkerTarget } from "../helpers/worker-target.ts";

let target: WorkerTarget;

async function call<T = Record<string, unknown>>(method: string, path: string, token?: string, body?: unknown) {
  const res = await fetch(target.baseUrl + path, {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: (text ? JSON.parse(text) : undefined) as T };
}

let user: string;
let agent: string;

beforeAll(async () => {
  target = await startWorkerTarget();
  const admin = target.adminToken;
  expect((await call("POST", "/v1/admin/users", admin, { name: "alice" })).status).toBe(200);
  const cluster = { name: "alpha", sharedRoots: ["/shared"] };
  expect((await call("POST", "/v1/admin/clusters", admin, cluster)).status).toBeLessThan(300);
  expect((await call("POST", "/v1/admin/grants", admin, { user: "alice", cluster: "alpha" })).status).toBeLessThan(300);
  user = (await call<{ token: string }>("POST", "/v1/admin/tokens", admin, { kind: "user", user: "alice" })).body.token;
  agent = (await call<{ token: string }>("POST", "/v1/admin/tokens", admin, { kind: "agent", cluster: "alpha" })).body
    .token;
  const inventory = await call("PUT", "/v1/agent/inventory", agent, sampleInventory("a100"));
  expect(inventory.status, JSON.stringify(inventory.body)).toBeLessThan(300);
}, 60_000);

afterAll(async () => {
  await target?.close();
});

const submit = async () => {
  const res = await call<{ id: string }>("POST", "/v1/jobs", user, { name: "w", command: ["echo", "hi"] });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body.id;
};

type LeaseBody = { leases: { jobId: string; epoch: number }[] };

describe("worker in workerd", () => {
  it("bootstraps the admin from SLURMGATE_BOOTSTRAP_TOKEN once", async () => {
    const users = await call<{ items: { name: string; admin: boolean }[] }>(
      "GET",
      "/v1/admin/users",
      target.adminToken,
    );
    expect(users.status).toBe(200);
    expect(users.body.items.filter((u) => u.admin).map((u) => u.name)).toEqual(["admin"]);
  });

  it("a waiting lease returns as soon as a job is submitted, and an idle one ends at `wait`", async () => {
    let started = Date.now();
    const idle = await call<LeaseBody>("POST", "/v1/agent/lease", agent, { agentId: "a1", wait: 1 });
    expect(idle.status).toBe(200);
    expect(idle.body.leases).toEqual([]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    expect(Date.now() - started).toBeLessThan(5_000);

    started = Date.now();
    const waiting = call<LeaseBody>("POST", "/v1/agent/lease", agent, { agentId: "a1", wait: 20 });
    await new Promise((resolve) => setTimeout(resolve, 300));
    const id = await submit();
    const leased = await waiting;
    expect(leased.body.leases.map((l) => l.jobId)).toEqual([id]);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it("stores and serves arbitrary log bytes (blobs over libSQL HTTP)", async () => {
    const id = await submit();
    const lease = await call<LeaseBody>("POST", "/v1/agent/lease", agent, { agentId: "a1", wait: 0 });
    const epoch = lease.body.leases.find((l) => l.jobId === id)?.epoch;
    const text = "héllo ✓ 日本\u0000\u0001\n".repeat(100);
    const data = Buffer.from(text).toString("base64");
    const report = await call<{ outcomes: { status: string }[] }>("POST", "/v1/agent/reports", agent, {
      agentId: "a1",
      reports: [
        { jobId: id, epoch, state: "running", slurmJobId: "42", logs: [{ stream: "stdout", offset: 0, data }] },
      ],
    });
    expect(report.body.outcomes[0]?.status).toBe("applied");
    const logs = await call<{ data: string; nextOffset: number }>("GET", `/v1/jobs/${id}/logs?stream=stdout`, user);
    expect(logs.status, JSON.stringify(logs.body)).toBe(200);
    expect(logs.body.data).toBe(text);
    expect(logs.body.nextOffset).toBe(Buffer.byteLength(text));
    const tail = await call<{ data: string }>("GET", `/v1/jobs/${id}/logs?stream=stdout&offset=1&limit=5`, user);
    expect(tail.body.data).toBe("éllo"); // bytes 1..5: two for é, three for "llo"
  });

  it("the cron handler puts leases whose agent vanished back in the queue", async () => {
    const id = await submit();
    const lease = await call<LeaseBody>("POST", "/v1/agent/lease", agent, { agentId: "gone", wait: 0 });
    expect(lease.body.leases.map((l) => l.jobId)).toContain(id);
    // Age the lease instead of waiting out SLURMGATE_LEASE_SECONDS.
    const direct = createClient({ url: target.database.url, authToken: target.dbAuthToken });
    await direct.execute({ sql: "UPDATE jobs SET lease_expires_at = 1 WHERE id = ?", args: [id] });
    direct.close();
    const res = await fetch(`${target.baseUrl}/cdn-cgi/handler/scheduled?cron=*+*+*+*+*`);
    expect(res.status, await res.text()).toBe(200);
    const job = await call<{ state: string; reason: string }>("GET", `/v1/jobs/${id}`, user);
    expect(job.body.state).toBe("queued");
    expect(job.body.reason).toMatch(/went quiet/);
  });

  it("answers problem+json for unknown routes and bad tokens, like Node", async () => {
    const res = await call("GET", "/v1/jobs", "sgu_nope");
    expect(res.status).toBe(401);
    expect(res.headers.get("content-type")).toMatch(/application\/problem\+json/);
  });
});
