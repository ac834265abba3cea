/**
 * Signed webhooks against the real app and a real HTTP receiver on 127.0.0.1: registration and its
 * refusals (strict bodies, SSRF, ownership, limits), every delivery verified with the client's
 * verifyWebhook, the receiver refusing, failing and hanging then coming back, a restart on the same
 * database, the failure streak that disables a webhook, and a name that resolves to loopback.
 */
import { type IncomingHttpHeaders, type Server, createServer } from "node:http";
import { mkdtempSync, rmSync } from "node:fs";
import { lookup } from "node:dns/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { createClient as createDbClient } from "@libsql/client";
import { afterEach, describe, expect, it } from "vitest";
import { createClient } from "../../client/index.ts";
import { verifyWebhook } from "../../client/webhooks.ts";
import {
  MAX_WEBHOOKS_PER_USER,
  WEBHOOK_EVENT_TYPES,
  WEBHOOK_LOG_RETENTION,
  WEBHOOK_RETRY,
} from "../../schemas/index.ts";
import { retryDelayMs, runDeliveryPass } from "../../gateway/services/webhook-delivery.ts";
import { addressFault, urlFault } from "../../gateway/webhook-target.ts";
import { nodeTransport } from "../../gateway/webhook-transport-node.ts";
import { CLUSTER, seedWorld } from "../client/support/world.ts";
import { captureStatements } from "../helpers/capture-sql.ts";
import { startGatewayProcess } from "../helpers/gateway-process.ts";
import { createTestGateway, testClock } from "../helpers/gateway.ts";
import { type World, createWorld, expectProblemShape } from "./world.ts";

type Mode = "ok" | "fail" | "hang" | "redirect";
type Hit = { headers: IncomingHttpHeaders; body: string; answered: Mode };

/** A real receiver; `down()` closes its port (connections refused) and `up()` opens the same port again. */
async function startReceiver() {
  const hits: Hit[] = [];
  let mode: Mode = "ok";
  let server: Server | undefined;
  let port = 0;
  const listen = () =>
    new Promise<void>((done) => {
      server = createServer((req, res) => {
        let body = "";
        req.setEncoding("utf8");
        req.on("data", (chunk) => (body += chunk));
        req.on("end", () => {
          hits.push({ headers: req.headers, body, answered: mode });
          if (mode === "ok") {
            res.writeHead(204).end();
          } else if (mode === "redirect") {
            res.writeHead(307, { location: "/elsewhere" }).end();
          } else if (mode === "fail") {
            res.writeHead(500, { "content-type": "text/plain" }).end("x".repeat(100_000));
          }
        });
      });
      server.listen(port, "127.0.0.1", () => {
        const address = server?.address();
        port = typeof address === "object" && address ? address.port : 0;
        done();
      });
    });
  await listen();
  return {
    hits,
    url: () => `http://127.0.0.1:${port}/hook`,
    set: (next: Mode) => (mode = next),
    delivered: () => hits.filter((h) => h.answered === "ok"),
    async down() {
      await new Promise<void>((done) => {
        server?.closeAllConnections();
        server?.close(() => done());
      });
    },
    up: listen,
    async close() {
      server?.closeAllConnections();
      await new Promise<void>((done) => server?.close(() => done()) ?? done());
    },
  };
}
type Receiver = Awaited<ReturnType<typeof startReceiver>>;

const ALL = [...WEBHOOK_EVENT_TYPES];
const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) {
    await fn();
  }
});

async function receiver(): Promise<Receiver> {
  const r = await startReceiver();
  cleanup.push(() => r.close());
  return r;
}

async function register(w: World, token: string, body: Record<string, unknown>) {
  const res = await w.call<{ id: string; secret: string; enabled: boolean }>("POST", "/v1/webhooks", token, body);
  if (res.status !== 201) {
    throw new Error(`register failed: ${res.status} ${JSON.stringify(res.body)}`);
  }
  return res.body;
}

/** Makes events: `count` jobs for alice (pinned, so a test clock far ahead still queues them), the first cancelled. */
async function makeEvents(w: World, count = 3): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    ids.push((await w.submit(w.tokens.alice, { name: `job-${i}`, cluster: "alpha" })).id);
  }
  await w.call("POST", `/v1/jobs/${ids[0]}/cancel`, w.tokens.alice);
  return ids;
}

/** Each hit verified as its receiver would at arrival: `nowSeconds`, or (the clock moved between tries) its own send time. */
async function expectAllVerified(hits: Hit[], secret: string, nowSeconds?: number) {
  for (const hit of hits) {
    const now = nowSeconds ?? Number(hit.headers["webhook-timestamp"]);
    const result = await verifyWebhook({ secret, headers: hit.headers as never, body: hit.body, now });
    expect(result, hit.body).toMatchObject({ valid: true });
  }
}

/** Delivered bodies grouped by job: each job's seqs in the order they arrived. */
function seqsByJob(hits: Hit[]): Map<string, number[]> {
  const byJob = new Map<string, number[]>();
  for (const hit of hits) {
    const data = (JSON.parse(hit.body) as { data: { jobId: string; seq: number } }).data;
    byJob.set(data.jobId, [...(byJob.get(data.jobId) ?? []), data.seq]);
  }
  return byJob;
}

async function allEventsOf(w: World, ids: string[]) {
  const out: { jobId: string; seq: number }[] = [];
  for (const id of ids) {
    for (const e of (await w.job(id)).events) {
      out.push({ jobId: id, seq: e.seq });
    }
  }
  return out;
}

describe("webhook registration", () => {
  it("shows the secret once, never in reads, and lists only the caller's webhooks", async () => {
    const w = await createWorld();
    const created = await register(w, w.tokens.alice, {
      url: "https://hooks.example.org/a",
      events: ["job.completed"],
    });
    expect(created.secret).toMatch(/^whsec_[A-Za-z0-9+/]+=*$/);
    expect(atob(created.secret.slice(6)).length).toBeGreaterThanOrEqual(24);
    const got = await w.call("GET", `/v1/webhooks/${created.id}`, w.tokens.alice);
    expect(got.status).toBe(200);
    expect(JSON.stringify(got.body)).not.toContain(created.secret.slice(6, 20));
    expect(got.body).not.toHaveProperty("secret");
    const list = await w.call<{ items: { id: string }[] }>("GET", "/v1/webhooks", w.tokens.alice);
    expect(JSON.stringify(list.body)).not.toContain("whsec_");
    expect(list.body.items.map((h) => h.id)).toEqual([created.id]);
    expect((await w.call<{ items: unknown[] }>("GET", "/v1/webhooks", w.tokens.bob)).body.items).toEqual([]);
  });

  it("does not let another user see, read the log of, re-enable or delete a webhook", async () => {
    const w = await createWorld();
    const hook = await register(w, w.tokens.alice, { url: "https://hooks.example.org/a", events: ALL });
    for (const [method, suffix] of [
      ["GET", ""],
      ["GET", "/deliveries"],
      ["POST", "/enable"],
      ["DELETE", ""],
    ] as const) {
      const res = await w.call(method, `/v1/webhooks/${hook.id}${suffix}`, w.tokens.bob);
      expect(expectProblemShape(res, 404).code).toBe("not_found");
    }
    expect((await w.call("GET", `/v1/webhooks/${hook.id}`, w.tokens.alice)).status).toBe(200);
    // An admin may.
    expect((await w.call("GET", `/v1/webhooks/${hook.id}`, w.tokens.admin)).status).toBe(200);
    expect((await w.call("DELETE", `/v1/webhooks/${hook.id}`, w.tokens.alice)).status).toBe(204);
    expect((await w.call("GET", `/v1/webhooks/${hook.id}`, w.tokens.alice)).status).toBe(404);
  });

  it("refuses unknown fields, unknown event types and admin-only options, naming each", async () => {
    const w = await createWorld();
    const res = await w.call("POST", "/v1/webhooks", w.tokens.alice, {
      url: "https://hooks.example.org/a",
      events: ["job.completed", "job.exploded"],
      secret: "whsec_mine",
    });
    const problem = expectProblemShape(res, 422) as unknown as { errors: { field: string }[] };
    expect(problem.errors.map((e) => e.field).sort()).toEqual(["body.events.1", "body.secret"]);
    const admin = await w.call("POST", "/v1/webhooks", w.tokens.alice, {
      url: "https://hooks.example.org/a",
      events: ["job.completed"],
      allUsers: true,
      allowPrivate: true,
    });
    const adminProblem = expectProblemShape(admin, 422) as unknown as { errors: { field: string }[] };
    expect(adminProblem.errors.map((e) => e.field).sort()).toEqual(["body.allUsers", "body.allowPrivate"]);
    for (const body of [null, [], "x", { url: "https://a.example.org", events: [] }, { events: ["job.completed"] }]) {
      const bad = await w.call("POST", "/v1/webhooks", w.tokens.alice, JSON.stringify(body));
      expect(bad.status).toBe(422);
    }
    const wrongType = await w.call("POST", "/v1/webhooks", w.tokens.alice, "url=x", { "content-type": "text/plain" });
    expect(wrongType.status).toBe(415);
    expect((await w.call<{ items: unknown[] }>("GET", "/v1/webhooks", w.tokens.alice)).body.items).toEqual([]);
  });

  it(`allows at most ${MAX_WEBHOOKS_PER_USER} webhooks per user`, async () => {
    const w = await createWorld();
    const body = { url: "https://hooks.example.org/a", events: ["job.completed"] };
    const results = await Promise.all(
      Array.from({ length: MAX_WEBHOOKS_PER_USER + 3 }, () => w.call("POST", "/v1/webhooks", w.tokens.alice, body)),
    );
    expect(results.filter((r) => r.status === 201)).toHaveLength(MAX_WEBHOOKS_PER_USER);
    expect(results.filter((r) => r.status === 409)).toHaveLength(3);
    expect((await w.call("POST", "/v1/webhooks", w.tokens.bob, body)).status).toBe(201);
  });

  const REFUSED = [
    ["http://hooks.example.org/a", "only https://"],
    ["https://127.0.0.1/a", "loopback"],
    ["https://localhost:8443/a", "loopback name"],
    ["https://app.localhost/a", "loopback name"],
    ["https://10.0.0.7/a", "private"],
    ["https://172.16.4.1/a", "private"],
    ["https://192.168.1.10/a", "private"],
    ["https://169.254.169.254/latest/meta-data", "metadata"],
    ["https://100.64.0.1/a", "carrier-grade NAT"],
    ["https://0.0.0.0/a", "unspecified"],
    ["https://224.0.0.251/a", "multicast"],
    ["https://[::1]/a", "loopback"],
    ["https://[::]/a", "unspecified"],
    ["https://[fd12:3456::1]/a", "unique local"],
    ["https://[fe80::1]/a", "link-local"],
    ["https://[::ffff:127.0.0.1]/a", "IPv4-mapped"],
    ["https://[::ffff:169.254.169.254]/a", "IPv4-mapped"],
    ["https://2130706433/a", "loopback"],
    ["https://0x7f.1/a", "loopback"],
    ["https://0177.0.0.1/a", "loopback"],
    ["https://127.1/a", "loopback"],
    ["https://user:pw@hooks.example.org/a", "credentials"],
    ["ftp://hooks.example.org/a", "only https://"],
    ["not a url", "absolute URL"],
  ] as const;

  it.each(REFUSED)("refuses %s without the admin's allowPrivate", async (url, reason) => {
    const w = await createWorld();
    const res = await w.call("POST", "/v1/webhooks", w.tokens.alice, { url, events: ["job.completed"] });
    const problem = expectProblemShape(res, 422) as unknown as { field: string; detail: string };
    expect(problem.field).toBe("body.url");
    expect(problem.detail).toContain(reason);
  });

  it("lets an admin allow a private target per webhook, and the config allow every one", async () => {
    const w = await createWorld();
    const admin = await w.call("POST", "/v1/webhooks", w.tokens.admin, {
      url: "http://127.0.0.1:9/a",
      events: ["job.completed"],
      allowPrivate: true,
    });
    expect(admin.status).toBe(201);
    const open = await createWorld({ SLURMGATE_WEBHOOK_ALLOW_PRIVATE: "1" });
    expect(
      (await open.call("POST", "/v1/webhooks", open.tokens.alice, { url: "http://10.1.2.3/a", events: ALL })).status,
    ).toBe(201);
  });
});

describe("webhook delivery", () => {
  it("delivers every subscribed event signed, in order, each with its own webhook-id", async () => {
    const clock = testClock();
    const w = await createWorld({ SLURMGATE_WEBHOOK_ALLOW_PRIVATE: "1" }, clock);
    const r = await receiver();
    const hook = await register(w, w.tokens.alice, { url: r.url(), events: ALL });
    const only = await register(w, w.tokens.alice, { url: `${r.url()}?only`, events: ["job.cancelled"] });
    const bobs = await w.submit(w.tokens.bob);
    const ids = await makeEvents(w);
    expect(await runDeliveryPass(w.deps, nodeTransport())).toBeGreaterThan(0);
    const mine = r.delivered().filter((h) => !h.headers["webhook-id"]?.includes(only.id.slice(3)));
    const expected = await allEventsOf(w, ids);
    expect(mine).toHaveLength(expected.length);
    await expectAllVerified(mine, hook.secret, Math.floor(clock.now() / 1000));
    expect(new Set(mine.map((h) => h.headers["webhook-id"])).size).toBe(mine.length);
    expect(JSON.stringify(mine.map((h) => h.body))).not.toContain(bobs.id);
    for (const [, seqs] of seqsByJob(mine)) {
      expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    }
    const first = JSON.parse(mine[0]!.body) as { type: string; timestamp: string; data: Record<string, unknown> };
    expect(first).toMatchObject({
      type: "job.queued",
      data: { jobId: ids[0], seq: 1, state: "queued", owner: "alice" },
    });
    expect(mine[0]!.headers["content-type"]).toBe("application/json");
    // The narrow subscription got the cancellation only, signed with its own secret.
    const narrow = r.delivered().filter((h) => h.headers["webhook-id"]?.includes(only.id.slice(3)));
    expect(narrow.map((h) => (JSON.parse(h.body) as { type: string }).type)).toEqual(["job.cancelled"]);
    await expectAllVerified(narrow, only.secret, Math.floor(clock.now() / 1000));
    // A second pass sends nothing again, and an idle pass writes nothing.
    const idle = await captureStatements(w.db, async () => {
      expect(await runDeliveryPass(w.deps, nodeTransport())).toBe(0);
    });
    expect(idle.map((stmt) => stmt.sql.trim().split(/\s/)[0])).toEqual(["SELECT"]);
    const log = await w.call<{ items: { deliveredAt: string | null; attempts: number }[] }>(
      "GET",
      `/v1/webhooks/${hook.id}/deliveries`,
      w.tokens.alice,
    );
    expect(log.body.items).toHaveLength(expected.length);
    expect(log.body.items.every((d) => d.deliveredAt !== null && d.attempts === 1)).toBe(true);
  });

  it("a tampered body, a wrong secret and a stale or future timestamp fail verification", async () => {
    const clock = testClock();
    const w = await createWorld({ SLURMGATE_WEBHOOK_ALLOW_PRIVATE: "1" }, clock);
    const r = await receiver();
    const hook = await register(w, w.tokens.alice, { url: r.url(), events: ALL });
    await makeEvents(w, 1);
    await runDeliveryPass(w.deps, nodeTransport());
    const hit = r.delivered()[0]!;
    const now = Math.floor(clock.now() / 1000);
    const check = (over: Partial<Parameters<typeof verifyWebhook>[0]>) =>
      verifyWebhook({ secret: hook.secret, headers: hit.headers as never, body: hit.body, now, ...over });
    expect(await check({})).toMatchObject({ valid: true });
    expect(await check({ body: hit.body.replace('"seq":1', '"seq":2') })).toMatchObject({ valid: false });
    expect(await check({ body: `${hit.body} ` })).toMatchObject({ valid: false });
    const other = await register(w, w.tokens.alice, { url: r.url(), events: ALL });
    expect(await check({ secret: other.secret })).toMatchObject({ valid: false });
    expect(await check({ now: now + 301 })).toMatchObject({ valid: false, reason: expect.stringContaining("old") });
    expect(await check({ now: now - 301 })).toMatchObject({ valid: false, reason: expect.stringContaining("future") });
    expect(await check({ headers: { ...hit.headers, "webhook-id": "msg_other" } as never })).toMatchObject({
      valid: false,
    });
  });

  it("survives the receiver refusing, failing and hanging: every event once delivered, in order, ids stable", async () => {
    const clock = testClock();
    const w = await createWorld({ SLURMGATE_WEBHOOK_ALLOW_PRIVATE: "1", SLURMGATE_WEBHOOK_TIMEOUT_MS: "300" }, clock);
    const r = await receiver();
    const hook = await register(w, w.tokens.alice, { url: r.url(), events: ALL });
    const ids = await makeEvents(w, 2);
    const pass = async () => {
      const n = await runDeliveryPass(w.deps, nodeTransport());
      clock.advance(WEBHOOK_RETRY.capMs + 1);
      return n;
    };
    await r.down();
    expect(await pass()).toBe(0);
    await r.up();
    r.set("fail");
    expect(await pass()).toBe(0);
    r.set("hang");
    const started = Date.now();
    expect(await pass()).toBe(0);
    expect(Date.now() - started).toBeLessThan(5_000);
    r.set("fail");
    ids.push(...(await makeEvents(w, 1)));
    expect(await pass()).toBe(0);
    const failedLog = await w.call<{ items: { attempts: number; lastError: string | null; nextAttemptAt: string }[] }>(
      "GET",
      `/v1/webhooks/${hook.id}/deliveries`,
      w.tokens.alice,
    );
    const head = failedLog.body.items.at(-1)!;
    expect(head.attempts).toBe(4);
    expect(head.lastError).toMatch(/^HTTP 500/);
    expect(head.lastError!.length).toBeLessThan(600);
    expect(head.nextAttemptAt).not.toBeNull();
    const during = await w.call<{ consecutiveFailures: number; enabled: boolean }>(
      "GET",
      `/v1/webhooks/${hook.id}`,
      w.tokens.alice,
    );
    expect(during.body).toMatchObject({ consecutiveFailures: 4, enabled: true });
    r.set("ok");
    while ((await pass()) > 0) {}
    const delivered = r.delivered();
    const expected = await allEventsOf(w, ids);
    expect(delivered).toHaveLength(expected.length);
    await expectAllVerified(delivered, hook.secret);
    const idsDelivered = delivered.map((h) => h.headers["webhook-id"]);
    expect(new Set(idsDelivered).size).toBe(delivered.length);
    // Every failed try of the first event carried the id its successful delivery did.
    const firstId = idsDelivered[0];
    expect(r.hits.filter((h) => h.answered !== "ok").every((h) => h.headers["webhook-id"] === firstId)).toBe(true);
    for (const [jobId, seqs] of seqsByJob(delivered)) {
      expect(seqs).toEqual(expected.filter((e) => e.jobId === jobId).map((e) => e.seq));
    }
    expect((await w.call("GET", `/v1/webhooks/${hook.id}`, w.tokens.alice)).body).toMatchObject({
      consecutiveFailures: 0,
    });
  });

  it("resumes from the stored cursor after a restart mid-outage, without loss or repetition", async () => {
    const dir = mkdtempSync(join(tmpdir(), "slurmgate-wh-"));
    cleanup.push(async () => rmSync(dir, { recursive: true, force: true }));
    const url = `file:${join(dir, "db")}`;
    const clock = testClock();
    const env = { SLURMGATE_WEBHOOK_ALLOW_PRIVATE: "1" };
    const w = await createWorld(env, clock, url);
    const r = await receiver();
    const hook = await register(w, w.tokens.alice, { url: r.url(), events: ALL });
    const ids = await makeEvents(w, 2);
    await runDeliveryPass(w.deps, nodeTransport());
    const before = r.delivered().length;
    expect(before).toBeGreaterThan(0);
    r.set("fail");
    ids.push(...(await makeEvents(w, 2)));
    await runDeliveryPass(w.deps, nodeTransport());
    w.db.client.close();

    const again = await createTestGateway(env, { clock, url });
    clock.advance(WEBHOOK_RETRY.capMs + 1);
    r.set("ok");
    while ((await runDeliveryPass(again.deps, nodeTransport())) > 0) {
      clock.advance(1);
    }
    const delivered = r.delivered();
    const ids2 = delivered.map((h) => h.headers["webhook-id"]);
    expect(new Set(ids2).size).toBe(delivered.length);
    const events = [];
    for (const id of ids) {
      const rs = await again.db.client.execute({ sql: "SELECT seq FROM job_events WHERE job_id = ?", args: [id] });
      events.push(...rs.rows.map((row) => ({ jobId: id, seq: Number(row.seq) })));
    }
    expect(delivered).toHaveLength(events.length);
    await expectAllVerified(delivered.slice(before), hook.secret, Math.floor(clock.now() / 1000));
    again.db.client.close();
  });

  it("disables a webhook after the failure streak, says why, and resumes when re-enabled", async () => {
    const clock = testClock();
    const w = await createWorld({ SLURMGATE_WEBHOOK_ALLOW_PRIVATE: "1" }, clock);
    const r = await receiver();
    const hook = await register(w, w.tokens.alice, { url: r.url(), events: ALL });
    const ids = await makeEvents(w, 1);
    r.set("fail");
    await runDeliveryPass(w.deps, nodeTransport());
    clock.advance(WEBHOOK_RETRY.disableAfterMs / 2);
    await runDeliveryPass(w.deps, nodeTransport());
    expect((await w.call("GET", `/v1/webhooks/${hook.id}`, w.tokens.alice)).body).toMatchObject({ enabled: true });
    clock.advance(WEBHOOK_RETRY.disableAfterMs / 2);
    await runDeliveryPass(w.deps, nodeTransport());
    const disabled = await w.call<{ enabled: boolean; disabledReason: string }>(
      "GET",
      `/v1/webhooks/${hook.id}`,
      w.tokens.alice,
    );
    expect(disabled.body.enabled).toBe(false);
    expect(disabled.body.disabledReason).toMatch(/failing for 72 hours.*HTTP 500/);
    const tries = r.hits.length;
    clock.advance(WEBHOOK_RETRY.capMs * 2);
    r.set("ok");
    await runDeliveryPass(w.deps, nodeTransport());
    expect(r.hits.length).toBe(tries);
    const enabled = await w.call("POST", `/v1/webhooks/${hook.id}/enable`, w.tokens.alice);
    expect(enabled.body).toMatchObject({ enabled: true, disabledReason: null, consecutiveFailures: 0 });
    while ((await runDeliveryPass(w.deps, nodeTransport())) > 0) {}
    expect(r.delivered()).toHaveLength((await allEventsOf(w, ids)).length);
  });

  it("refuses at delivery a name that resolves to loopback, and never connects", async () => {
    const clock = testClock();
    const w = await createWorld({ SLURMGATE_WEBHOOK_TIMEOUT_MS: "500" }, clock);
    const r = await receiver();
    const port = new URL(r.url()).port;
    const hook = await register(w, w.tokens.alice, { url: `https://rebind.example.org:${port}/hook`, events: ALL });
    await makeEvents(w, 1);
    const toLoopback = nodeTransport(async () => [{ address: "127.0.0.1", family: 4 }]);
    expect(await runDeliveryPass(w.deps, toLoopback)).toBe(0);
    const mixed = nodeTransport(async () => [
      { address: "93.184.216.34", family: 4 },
      { address: "::ffff:169.254.169.254", family: 6 },
    ]);
    clock.advance(WEBHOOK_RETRY.capMs + 1);
    expect(await runDeliveryPass(w.deps, mixed)).toBe(0);
    expect(r.hits).toHaveLength(0);
    const log = await w.call<{ items: { lastError: string }[] }>(
      "GET",
      `/v1/webhooks/${hook.id}/deliveries`,
      w.tokens.alice,
    );
    expect(log.body.items.at(-1)?.lastError).toContain("169.254.169.254");
    expect(w.logs.some((l) => String(l.error).includes("resolves to 127.0.0.1"))).toBe(true);
    // The system resolver too: this machine's own name resolves to a loopback or private address.
    const own = hostname();
    const resolved = await lookup(own).catch(() => undefined);
    if (resolved && addressFault(resolved.address) && !urlFault(`https://${own}/`, false)) {
      const local = await register(w, w.tokens.alice, { url: `https://${own}:${port}/hook`, events: ALL });
      clock.advance(WEBHOOK_RETRY.capMs + 1);
      await makeEvents(w, 1);
      await runDeliveryPass(w.deps, nodeTransport());
      const localLog = await w.call<{ items: { lastError: string }[] }>(
        "GET",
        `/v1/webhooks/${local.id}/deliveries`,
        w.tokens.alice,
      );
      expect(localLog.body.items.at(-1)?.lastError).toContain(`${own} resolves to ${resolved.address}`);
      expect(r.hits).toHaveLength(0);
    }
  });

  it("connects to the address it checked, not to a second lookup (no DNS rebinding)", async () => {
    const w = await createWorld({ SLURMGATE_WEBHOOK_ALLOW_PRIVATE: "1" });
    const r = await receiver();
    const port = new URL(r.url()).port;
    // A name nothing else can resolve: the request can only reach the receiver through the checked answer.
    const hook = await register(w, w.tokens.alice, { url: `http://pinned.invalid:${port}/hook`, events: ALL });
    await makeEvents(w, 1);
    let lookups = 0;
    const once = nodeTransport(async () => {
      lookups++;
      return [{ address: "127.0.0.1", family: 4 }];
    });
    expect(await runDeliveryPass(w.deps, once)).toBe(2);
    expect(lookups).toBe(2);
    expect(r.delivered().map((h) => h.headers.host)).toEqual([`pinned.invalid:${port}`, `pinned.invalid:${port}`]);
    await expectAllVerified(r.delivered(), hook.secret, Math.floor(Date.now() / 1000));
  });

  it("encrypts secrets at rest with SLURMGATE_WEBHOOK_SECRET_KEY, and says so when it cannot open one", async () => {
    const key = Buffer.alloc(32, 7).toString("base64");
    const clock = testClock();
    const w = await createWorld({ SLURMGATE_WEBHOOK_ALLOW_PRIVATE: "1", SLURMGATE_WEBHOOK_SECRET_KEY: key }, clock);
    const r = await receiver();
    const hook = await register(w, w.tokens.alice, { url: r.url(), events: ALL });
    const other = await register(w, w.tokens.alice, { url: `${r.url()}?other`, events: ["job.queued"] });
    const rows = await w.db.client.execute("SELECT id, secret FROM webhooks ORDER BY id");
    for (const row of rows.rows) {
      expect(String(row.secret)).toMatch(/^aesgcm:/);
      expect(String(row.secret)).not.toContain(hook.secret.slice(6, 16));
    }
    // A sealed secret moved onto another webhook's row does not open there.
    await w.db.client.execute({
      sql: "UPDATE webhooks SET secret = (SELECT secret FROM webhooks WHERE id = ?) WHERE id = ?",
      args: [hook.id, other.id],
    });
    await makeEvents(w, 1);
    await runDeliveryPass(w.deps, nodeTransport());
    const mine = r.delivered().filter((h) => h.headers["webhook-id"]?.includes(hook.id.slice(3)));
    expect(mine).toHaveLength(2);
    await expectAllVerified(mine, hook.secret, Math.floor(clock.now() / 1000));
    expect(r.hits.filter((h) => h.headers["webhook-id"]?.includes(other.id.slice(3)))).toHaveLength(0);
    const log = await w.call<{ items: { lastError: string }[] }>(
      "GET",
      `/v1/webhooks/${other.id}/deliveries`,
      w.tokens.alice,
    );
    expect(log.body.items.at(-1)?.lastError).toMatch(/does not decrypt/);
    const bad = await createWorld({ SLURMGATE_WEBHOOK_SECRET_KEY: "short" }).catch((e: Error) => e);
    expect(String(bad)).toMatch(/SLURMGATE_WEBHOOK_SECRET_KEY: base64 of 32/);
  });

  it("follows no redirect, and a corrupt webhook row neither breaks reads nor the pass", async () => {
    const clock = testClock();
    const w = await createWorld({ SLURMGATE_WEBHOOK_ALLOW_PRIVATE: "1" }, clock);
    const r = await receiver();
    const hook = await register(w, w.tokens.alice, { url: r.url(), events: ALL });
    const broken = await register(w, w.tokens.alice, { url: `${r.url()}?broken`, events: ALL });
    await w.db.client.execute({
      sql: "UPDATE webhooks SET events = 'not json', scope = '{\"cluster\": 7' WHERE id = ?",
      args: [broken.id],
    });
    await makeEvents(w, 1);
    r.set("redirect");
    expect(await runDeliveryPass(w.deps, nodeTransport())).toBe(0);
    expect(r.hits.map((h) => h.answered)).toEqual(["redirect"]);
    const log = await w.call<{ items: { lastStatus: number; lastError: string }[] }>(
      "GET",
      `/v1/webhooks/${hook.id}/deliveries`,
      w.tokens.alice,
    );
    expect(log.body.items.at(-1)).toMatchObject({ lastStatus: 307, lastError: expect.stringContaining("redirects") });
    const read = await w.call("GET", `/v1/webhooks/${broken.id}`, w.tokens.alice);
    expect(read.status).toBe(200);
    expect(read.body).toMatchObject({ events: [], scope: null });
    expect((await w.call("GET", "/v1/webhooks", w.tokens.alice)).status).toBe(200);
    // The damaged one is not due again for events it already passed over.
    clock.advance(WEBHOOK_RETRY.capMs + 1);
    r.set("ok");
    await runDeliveryPass(w.deps, nodeTransport());
    const idle = await captureStatements(w.db, () => runDeliveryPass(w.deps, nodeTransport()));
    expect(idle.map((stmt) => stmt.sql.trim().split(/\s/)[0])).toEqual(["SELECT"]);
    expect(
      r.hits.filter((h) => h.answered === "ok").every((h) => !h.headers["webhook-id"]?.includes(broken.id.slice(3))),
    ).toBe(true);
  });

  it("narrows by scope, and an admin's allUsers webhook sees every user's jobs in it", async () => {
    const w = await createWorld({ SLURMGATE_WEBHOOK_ALLOW_PRIVATE: "1" });
    const r = await receiver();
    const labelled = await register(w, w.tokens.alice, {
      url: `${r.url()}?label`,
      events: ["job.queued"],
      scope: { label: { key: "team", value: "ml" } },
    });
    const everyone = await register(w, w.tokens.admin, {
      url: `${r.url()}?beta`,
      events: ["job.queued"],
      allUsers: true,
      scope: { cluster: "beta" },
    });
    const aliceMl = await w.submit(w.tokens.alice, { cluster: "alpha", labels: { team: "ml" } });
    await w.submit(w.tokens.alice, { cluster: "alpha", labels: { team: "hpc" } });
    const bobBeta = await w.submit(w.tokens.bob, { cluster: "beta", labels: { team: "ml" } });
    const aliceBeta = await w.submit(w.tokens.alice, { cluster: "beta" });
    await runDeliveryPass(w.deps, nodeTransport());
    const jobsOf = (id: string) =>
      r
        .delivered()
        .filter((h) => h.headers["webhook-id"]?.includes(id.slice(3)))
        .map((h) => (JSON.parse(h.body) as { data: { jobId: string } }).data.jobId);
    expect(jobsOf(labelled.id)).toEqual([aliceMl.id]);
    expect(jobsOf(everyone.id)).toEqual([bobBeta.id, aliceBeta.id]);
  });

  it("keeps the delivery log bounded: delivered rows older than the retention go", async () => {
    const clock = testClock();
    const w = await createWorld({ SLURMGATE_WEBHOOK_ALLOW_PRIVATE: "1" }, clock);
    const r = await receiver();
    const hook = await register(w, w.tokens.alice, { url: r.url(), events: ALL });
    await makeEvents(w, 2);
    await runDeliveryPass(w.deps, nodeTransport());
    const before = await w.call<{ items: unknown[] }>("GET", `/v1/webhooks/${hook.id}/deliveries`, w.tokens.alice);
    expect(before.body.items.length).toBe(3);
    clock.advance(WEBHOOK_LOG_RETENTION.ms + 1);
    await makeEvents(w, 1);
    await runDeliveryPass(w.deps, nodeTransport());
    const after = await w.call<{ items: { jobId: string }[] }>(
      "GET",
      `/v1/webhooks/${hook.id}/deliveries`,
      w.tokens.alice,
    );
    expect(after.body.items).toHaveLength(2);
  });

  it("backs off exponentially with jitter, capped", () => {
    const base = WEBHOOK_RETRY.baseMs;
    expect(retryDelayMs(1, base, () => 0)).toBe(base / 2);
    expect(retryDelayMs(1, base, () => 1)).toBe(base);
    expect(retryDelayMs(3, base, () => 1)).toBe(base * 4);
    expect(retryDelayMs(60, base, () => 1)).toBe(WEBHOOK_RETRY.capMs);
    expect(retryDelayMs(10_000, base, () => 0.5)).toBeLessThanOrEqual(WEBHOOK_RETRY.capMs);
  });

  it("pages the delivery log newest first with a keyset cursor", async () => {
    const w = await createWorld({ SLURMGATE_WEBHOOK_ALLOW_PRIVATE: "1" });
    const r = await receiver();
    const hook = await register(w, w.tokens.alice, { url: r.url(), events: ALL });
    await makeEvents(w, 4);
    await runDeliveryPass(w.deps, nodeTransport());
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { status: number; body: { items: { cursor: string }[]; nextCursor: string | null } } = await w.call(
        "GET",
        `/v1/webhooks/${hook.id}/deliveries?limit=2${cursor ? `&cursor=${cursor}` : ""}`,
        w.tokens.alice,
      );
      expect(page.status).toBe(200);
      seen.push(...page.body.items.map((d) => d.cursor));
      cursor = page.body.nextCursor;
    } while (cursor);
    expect(seen).toHaveLength(r.delivered().length);
    expect(seen.map(Number)).toEqual([...seen.map(Number)].sort((a, b) => b - a));
    const bad = await w.call("GET", `/v1/webhooks/${hook.id}/deliveries?cursor=abc&nope=1`, w.tokens.alice);
    expect(expectProblemShape(bad, 422)).toBeDefined();
  });
});

describe("webhook query plans", () => {
  it("never scans the events, jobs or delivery tables, however long the history", async () => {
    const dir = mkdtempSync(join(tmpdir(), "slurmgate-wh-plans-"));
    cleanup.push(async () => rmSync(dir, { recursive: true, force: true }));
    const url = `file:${join(dir, "db")}`;
    const w = await createWorld({ SLURMGATE_WEBHOOK_ALLOW_PRIVATE: "1" }, undefined, url);
    const explain = createDbClient({ url });
    cleanup.push(async () => explain.close());
    const r = await receiver();
    const hook = await register(w, w.tokens.alice, {
      url: r.url(),
      events: ALL,
      scope: { cluster: "alpha", label: { key: "team", value: "x" } },
    });
    const all = await register(w, w.tokens.admin, {
      url: r.url(),
      events: ALL,
      allUsers: true,
      scope: { sweep: "swp_01jd7x2k9m4q8r6t5v3w1y0z" },
    });
    await w.submit(w.tokens.alice, { cluster: "alpha", labels: { team: "x" } });
    r.set("fail");
    const statements = await captureStatements(w.db, async () => {
      await runDeliveryPass(w.deps, nodeTransport());
      await w.call("GET", `/v1/webhooks/${hook.id}/deliveries?limit=5`, w.tokens.alice);
      await w.call("GET", `/v1/webhooks/${all.id}/deliveries?limit=5&cursor=99`, w.tokens.admin);
    });
    expect(statements.length).toBeGreaterThan(5);
    for (const stmt of statements) {
      const rs = await explain.execute({ sql: `EXPLAIN QUERY PLAN ${stmt.sql}`, args: stmt.args });
      const plan = rs.rows.map((row) => String(row.detail));
      expect(
        plan.filter((line) => /^SCAN (job_events|jobs|job_labels|webhook_deliveries|e|j|l)\b/.test(line)),
        stmt.sql,
      ).toEqual([]);
    }
  });
});

describe("webhooks on a gateway process (the Node delivery loop)", () => {
  it("delivers as events happen, and a restart mid-outage resumes without loss or repetition", async () => {
    const dir = mkdtempSync(join(tmpdir(), "slurmgate-wh-proc-"));
    cleanup.push(async () => rmSync(dir, { recursive: true, force: true }));
    const dbUrl = `file:${join(dir, "db")}`;
    const env = {
      SLURMGATE_WEBHOOK_ALLOW_PRIVATE: "1",
      SLURMGATE_WEBHOOK_RETRY_BASE_MS: "100",
      SLURMGATE_WEBHOOK_TIMEOUT_MS: "1000",
    };
    const r = await receiver();
    let gw = await startGatewayProcess(env, { dbUrl });
    cleanup.push(() => gw.stop());
    const world = await seedWorld(gw.url, gw.adminToken);
    const hook = await world.user.createWebhook({ url: r.url(), events: ["job.queued", "job.cancelled"] });
    expect(hook.secret).toMatch(/^whsec_/);
    expect(await world.user.getWebhook(hook.id)).not.toHaveProperty("secret");
    const first = await world.user.submit({ name: "a", command: ["true"], cluster: CLUSTER });
    await until(() => r.delivered().length === 1);
    r.set("fail");
    await world.user.cancel(first.id);
    const second = await world.user.submit({ name: "b", command: ["true"], cluster: CLUSTER });
    await until(() => r.hits.filter((h) => h.answered === "fail").length >= 2);
    await gw.stop();
    r.set("ok");
    gw = await startGatewayProcess(env, { dbUrl });
    await until(() => r.delivered().length === 3);
    await new Promise((done) => setTimeout(done, 1_500));
    const delivered = r.delivered();
    expect(delivered.map((h) => JSON.parse(h.body).type)).toEqual(["job.queued", "job.cancelled", "job.queued"]);
    expect(delivered.map((h) => JSON.parse(h.body).data.jobId)).toEqual([first.id, first.id, second.id]);
    expect(new Set(delivered.map((h) => h.headers["webhook-id"])).size).toBe(3);
    for (const hit of delivered) {
      expect(await verifyWebhook({ secret: hook.secret, headers: hit.headers as never, body: hit.body })).toMatchObject(
        {
          valid: true,
        },
      );
    }
    const log = [];
    const client = createClient({ baseUrl: gw.url, token: world.userToken });
    for await (const d of client.webhookDeliveries(hook.id, { pageSize: 2 })) {
      log.push(d);
    }
    expect(log.map((d) => d.jobId)).toEqual([second.id, first.id, first.id]);
    expect(log[1]!.attempts).toBeGreaterThanOrEqual(2);
    await client.deleteWebhook(hook.id);
    expect(await client.listWebhooks()).toEqual([]);
  }, 120_000);
});

describe("webhooks when the gateway process is killed mid-delivery", () => {
  it("another process takes over once the hold expires and sends the event again under the same id", async () => {
    const dir = mkdtempSync(join(tmpdir(), "slurmgate-wh-kill-"));
    cleanup.push(async () => rmSync(dir, { recursive: true, force: true }));
    const dbUrl = `file:${join(dir, "db")}`;
    const env = { SLURMGATE_WEBHOOK_ALLOW_PRIVATE: "1", SLURMGATE_WEBHOOK_TIMEOUT_MS: "2000" };
    const r = await receiver();
    let gw = await startGatewayProcess(env, { dbUrl });
    cleanup.push(() => gw.stop());
    const world = await seedWorld(gw.url, gw.adminToken);
    const hook = await world.user.createWebhook({ url: r.url(), events: ["job.queued"] });
    r.set("hang");
    const job = await world.user.submit({ name: "k", command: ["true"], cluster: CLUSTER });
    await until(() => r.hits.length === 1);
    process.kill(gw.pid, "SIGKILL");
    await gw.stop();
    r.set("ok");
    const restarted = Date.now();
    gw = await startGatewayProcess(env, { dbUrl });
    await until(() => r.delivered().length === 1, 40_000);
    // Not before the killed pass's hold ran out.
    expect(Date.now() - restarted).toBeGreaterThan(3_000);
    await new Promise((done) => setTimeout(done, 1_500));
    expect(r.delivered()).toHaveLength(1);
    const [hung, sent] = [r.hits[0]!, r.delivered()[0]!];
    expect(sent.headers["webhook-id"]).toBe(hung.headers["webhook-id"]);
    expect(sent.body).toBe(hung.body);
    expect(JSON.parse(sent.body).data.jobId).toBe(job.id);
    expect(await verifyWebhook({ secret: hook.secret, headers: sent.headers as never, body: sent.body })).toMatchObject(
      {
        valid: true,
      },
    );
  }, 120_000);
});

async function until(check: () => boolean, ms = 20_000) {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) {
      throw new Error("timed out waiting");
    }
    await new Promise((done) => setTimeout(done, 50));
  }
}
