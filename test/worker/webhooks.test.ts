/**
 * Webhooks on the Worker: the cron handler's bounded delivery pass sends signed deliveries, in
 * order, to a real receiver on 127.0.0.1 (reachable from workerd; allowed by the admin setting).
 */
import { type IncomingHttpHeaders, createServer } from "node:http";
import { afterAll, beforeAll, expect, it } from "vitest";
import { verifyWebhook } from "../../client/webhooks.ts";
import { sampleInventory } from "../helpers/gateway.ts";
import { type WorkerTarget, startWorkerTarget } from "../helpers/worker-target.ts";

let target: WorkerTarget;
const hits: { headers: IncomingHttpHeaders; body: string }[] = [];
let status = 204;
const receiver = createServer((req, res) => {
  let body = "";
  req.setEncoding("utf8");
  req.on("data", (chunk) => (body += chunk));
  req.on("end", () => {
    hits.push({ headers: req.headers, body });
    res.writeHead(status).end();
  });
});

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
  return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
}

let user: string;
let port = 0;

beforeAll(async () => {
  await new Promise<void>((done) => receiver.listen(0, "127.0.0.1", done));
  const address = receiver.address();
  port = typeof address === "object" && address ? address.port : 0;
  target = await startWorkerTarget({
    vars: { SLURMGATE_WEBHOOK_ALLOW_PRIVATE: "1", SLURMGATE_WEBHOOK_RETRY_BASE_MS: "10" },
  });
  const admin = target.adminToken;
  expect((await call("POST", "/v1/admin/users", admin, { name: "alice" })).status).toBe(200);
  expect(
    (await call("POST", "/v1/admin/clusters", admin, { name: "alpha", sharedRoots: ["/shared"] })).status,
  ).toBeLessThan(300);
  expect((await call("POST", "/v1/admin/grants", admin, { user: "alice", cluster: "alpha" })).status).toBeLessThan(300);
  user = (await call<{ token: string }>("POST", "/v1/admin/tokens", admin, { kind: "user", user: "alice" })).body.token;
  const agent = (await call<{ token: string }>("POST", "/v1/admin/tokens", admin, { kind: "agent", cluster: "alpha" }))
    .body.token;
  expect((await call("PUT", "/v1/agent/inventory", agent, sampleInventory("a100"))).status).toBeLessThan(300);
}, 90_000);

afterAll(async () => {
  await target?.close();
  receiver.closeAllConnections();
  await new Promise((done) => receiver.close(done));
});

const cron = async () => {
  const res = await fetch(`${target.baseUrl}/cdn-cgi/handler/scheduled?cron=*+*+*+*+*`);
  expect(res.status, await res.text()).toBe(200);
};

it("the cron pass delivers signed events to the receiver, retrying a failure on a later pass", async () => {
  const hook = await call<{ id: string; secret: string }>("POST", "/v1/webhooks", user, {
    url: `http://127.0.0.1:${port}/hook`,
    events: ["job.queued", "job.cancelled"],
  });
  expect(hook.status, JSON.stringify(hook.body)).toBe(201);
  const job = await call<{ id: string }>("POST", "/v1/jobs", user, { name: "w", command: ["true"] });
  expect(job.status).toBe(201);
  expect((await call("POST", `/v1/jobs/${job.body.id}/cancel`, user)).status).toBe(202);
  status = 500;
  await cron();
  expect(hits).toHaveLength(1);
  status = 204;
  await new Promise((done) => setTimeout(done, 50));
  await cron();
  const ok = hits.slice(1);
  expect(ok.map((h) => JSON.parse(h.body).type)).toEqual(["job.queued", "job.cancelled"]);
  expect(ok[0]!.headers["webhook-id"]).toBe(hits[0]!.headers["webhook-id"]);
  for (const hit of ok) {
    expect(
      await verifyWebhook({ secret: hook.body.secret, headers: hit.headers as never, body: hit.body }),
    ).toMatchObject({
      valid: true,
    });
  }
  const log = await call<{ items: { deliveredAt: string | null }[] }>(
    "GET",
    `/v1/webhooks/${hook.body.id}/deliveries`,
    user,
  );
  expect(log.body.items.every((d) => d.deliveredAt !== null)).toBe(true);
}, 60_000);
