/**
 * What moving the use cases into gateway/services/ fixed: a refused submit takes no queue-cap
 * slot, a lease call reads the cancel orders once, and a store write is seen by routing and
 * authentication at once, with no invalidate call anywhere.
 */
import { describe, expect, it } from "vitest";
import { saveInventory, upsertCluster } from "../../gateway/store/clusters.ts";
import { deleteGrant, upsertGrant } from "../../gateway/store/grants.ts";
import { revokeToken } from "../../gateway/store/tokens.ts";
import { upsertUser } from "../../gateway/store/users.ts";
import { captureStatements } from "../helpers/capture-sql.ts";
import { sampleInventory, testClock } from "../helpers/gateway.ts";
import { MAX_HOLDING_PER_LEASE } from "../../schemas/agent.ts";
import { createWorld, expectProblemShape, spec } from "./world.ts";

describe("the queue cap", () => {
  it("counts only jobs routing accepted: with cap N, N refusals and then N jobs still get in", async () => {
    // A fixed clock: the cached count is never re-read, so every slot taken stays taken.
    const w = await createWorld({ SLURMGATE_MAX_QUEUED_PER_USER: "3" }, testClock());
    const refusals = [
      spec({ partition: "nope" }),
      spec({ cluster: "gamma" }),
      spec({ dependsOn: [{ job: "job_00000000000000000000000000", condition: "afterok" }] }),
    ];
    for (const body of refusals) {
      const res = await w.call("POST", "/v1/jobs", w.tokens.alice, body);
      expect([403, 422], JSON.stringify(res.body)).toContain(res.status);
    }
    for (let i = 0; i < 3; i++) {
      expect((await w.call("POST", "/v1/jobs", w.tokens.alice, spec())).status).toBe(201);
    }
    expectProblemShape(await w.call("POST", "/v1/jobs", w.tokens.alice, spec()), 429);
    // At the cap, a refused job is still refused for what is wrong with it, and a replay still answers.
    expect((await w.call("POST", "/v1/jobs", w.tokens.alice, spec({ partition: "nope" }))).status).toBe(422);
  });

  it("answers an Idempotency-Key replay even when the owner is at the cap", async () => {
    const w = await createWorld({ SLURMGATE_MAX_QUEUED_PER_USER: "1" }, testClock());
    const headers = { "idempotency-key": "once" };
    const first = await w.call<{ id: string }>("POST", "/v1/jobs", w.tokens.alice, spec(), headers);
    expect(first.status).toBe(201);
    const again = await w.call<{ id: string }>("POST", "/v1/jobs", w.tokens.alice, spec(), headers);
    expect(again.status).toBe(200);
    expect(again.body).toEqual(first.body);
    expect(
      expectProblemShape(await w.call("POST", "/v1/jobs", w.tokens.alice, spec({ name: "x" }), headers), 409),
    ).toMatchObject({ field: "header.idempotency-key" });
  });
});

describe("the submit answer", () => {
  it("is the job exactly as stored: GET returns the same fields", async () => {
    const w = await createWorld();
    const created = await w.call<Record<string, unknown>>(
      "POST",
      "/v1/jobs",
      w.tokens.alice,
      spec({ labels: { run: "r1" } }),
    );
    expect(created.status).toBe(201);
    const { events: _events, ...stored } = (await w.call("GET", `/v1/jobs/${created.body.id}`, w.tokens.alice)).body;
    expect(created.body).toEqual(stored);
  });
});

const isCancelOrders = (sql: string) => /^\s*SELECT\b[\s\S]*\bcancel_requested = 1\b/.test(sql);

describe("a lease call", () => {
  it("reads the cancel orders once, with and without a pending cancel", async () => {
    const w = await createWorld();
    const job = await w.submit(w.tokens.alice, { cluster: "alpha" });
    const idle = await captureStatements(w.db, () => w.lease(w.tokens.betaAgent, "beta-1"));
    expect(idle.filter((s) => isCancelOrders(s.sql))).toHaveLength(1);
    expect((await w.lease(w.tokens.alphaAgent)).body.leases.map((l) => l.jobId)).toEqual([job.id]);
    expect((await w.call("POST", `/v1/jobs/${job.id}/cancel`, w.tokens.alice)).status).toBe(202);
    let body: Awaited<ReturnType<typeof w.lease>>["body"] | undefined;
    const pending = await captureStatements(w.db, async () => {
      body = (await w.lease(w.tokens.alphaAgent, "agent-1", { holding: [job.id] })).body;
    });
    expect(pending.filter((s) => isCancelOrders(s.sql))).toHaveLength(1);
    expect(body?.cancels.map((c) => c.jobId)).toEqual([job.id]);
    // Another agent of the cluster gets no order for a job it does not hold.
    expect((await w.lease(w.tokens.alphaAgent, "agent-2")).body.cancels).toEqual([]);
  });

  it("that is waiting ends with the order when its job is cancelled meanwhile", async () => {
    const w = await createWorld();
    const job = await w.submit(w.tokens.alice, { cluster: "alpha" });
    await w.lease(w.tokens.alphaAgent);
    const started = Date.now();
    const waiting = w.lease(w.tokens.alphaAgent, "agent-1", { holding: [job.id], wait: 10 });
    await new Promise((r) => setTimeout(r, 100));
    await w.call("POST", `/v1/jobs/${job.id}/cancel`, w.tokens.alice);
    const res = await waiting;
    expect(res.status).toBe(200);
    expect(res.body.cancels.map((c) => c.jobId)).toEqual([job.id]);
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});

describe("a renewal-only lease call (max 0)", () => {
  const expiry = async (w: Awaited<ReturnType<typeof createWorld>>, id: string) =>
    Number(
      (await w.db.client.execute({ sql: "SELECT lease_expires_at AS e FROM jobs WHERE id = ?", args: [id] })).rows[0]
        ?.e,
    );

  it("renews what it lists and names the rest lost, but claims nothing and hands out no cancel order or ask", async () => {
    const w = await createWorld({ SLURMGATE_LEASE_SECONDS: "60" }, testClock());
    const held = await w.submit(w.tokens.alice, { cluster: "alpha" });
    expect((await w.lease(w.tokens.alphaAgent)).body.leases.map((l) => l.jobId)).toEqual([held.id]);
    const queued = await w.submit(w.tokens.alice, { cluster: "alpha" });
    expect((await w.call("POST", `/v1/jobs/${held.id}/cancel`, w.tokens.alice)).status).toBe(202);
    await w.db.client.execute({
      sql: `INSERT INTO agent_asks (id, cluster, owner, kind, body, created_at, expires_at)
            VALUES ('ask_00000000000000000000000001', 'alpha', 'alice', 'estimate', '{not json', ?, ?)`,
      args: [w.clock.now(), w.clock.now() + 600_000],
    });
    const before = await expiry(w, held.id);
    w.clock.advance(30_000);
    const stranger = "job_00000000000000000000000000";
    const res = await w.lease(w.tokens.alphaAgent, "agent-1", { max: 0, wait: 20, holding: [held.id, stranger] });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ leases: [], cancels: [], asks: [], lost: [stranger] });
    expect(await expiry(w, held.id)).toBe(before + 30_000);
    // The claiming call still gets all three: the queued job, the cancel order, the ask untouched.
    const asks = await w.db.client.execute("SELECT count(*) AS n FROM agent_asks");
    expect(Number(asks.rows[0]?.n)).toBe(1);
    const next = await w.lease(w.tokens.alphaAgent, "agent-1", { holding: [held.id] });
    expect(next.body.leases.map((l) => l.jobId)).toEqual([queued.id]);
    expect(next.body.cancels.map((c) => c.jobId)).toEqual([held.id]);
  });

  it("does not wait: a renewal-only call answers at once even with wait set", async () => {
    const w = await createWorld();
    const started = Date.now();
    expect((await w.lease(w.tokens.alphaAgent, "agent-1", { max: 0, wait: 5 })).status).toBe(200);
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it("refuses more held jobs than MAX_HOLDING_PER_LEASE, naming the field", async () => {
    const w = await createWorld();
    const holding = Array.from({ length: MAX_HOLDING_PER_LEASE + 1 }, (_, i) => `job_${String(i).padStart(26, "0")}`);
    const res = await w.lease(w.tokens.alphaAgent, "agent-1", { max: 0, holding });
    expect(expectProblemShape(res, 422)).toMatchObject({ field: "body.holding" });
  });
});

describe("a store write", () => {
  it("to grants and clusters is seen by routing at once, with no invalidate call", async () => {
    // A fixed clock: the routing view's TTL never passes, so only the store's own clearing can help.
    const w = await createWorld({}, testClock());
    const gamma = spec({ cluster: "gamma" });
    expectProblemShape(await w.call("POST", "/v1/jobs", w.tokens.alice, gamma), 403);
    await upsertCluster(
      w.db,
      { name: "gamma", description: "", sharedRoots: ["/shared"], allowedSbatchArgs: [], profiles: {} },
      w.clock.now(),
    );
    await upsertGrant(w.db, { user: "alice", cluster: "gamma", partitions: ["*"] });
    const queued = await w.call<{ cluster: string }>("POST", "/v1/jobs", w.tokens.alice, gamma);
    expect(queued.status).toBe(201);
    expect(queued.body.cluster).toBe("gamma");
    // A partition only gamma's new inventory offers routes there at once.
    const inventory = sampleInventory("h100");
    inventory.partitions.push({ ...inventory.partitions[0]!, name: "big", default: false });
    await saveInventory(w.db, "gamma", inventory, w.clock.now());
    const big = await w.call<{ partition: string }>(
      "POST",
      "/v1/jobs",
      w.tokens.alice,
      spec({ cluster: "gamma", partition: "big" }),
    );
    expect(big.status).toBe(201);
    expect(big.body.partition).toBe("big");
    await deleteGrant(w.db, "alice", "gamma");
    expectProblemShape(await w.call("POST", "/v1/jobs", w.tokens.alice, gamma), 403);
  });

  it("to tokens and users is seen by authentication at once", async () => {
    const w = await createWorld({}, testClock());
    const token = await w.user("carol");
    expect((await w.call("GET", "/v1/me", token)).status).toBe(200);
    await upsertUser(w.db, "carol", false, w.clock.now(), true);
    expectProblemShape(await w.call("GET", "/v1/me", token), 403);
    await upsertUser(w.db, "carol", false, w.clock.now(), false);
    expect((await w.call("GET", "/v1/me", token)).status).toBe(200);
    const tokens = await w.call<{ items: { id: string; user: string | null }[] }>(
      "GET",
      "/v1/admin/tokens?user=carol",
      w.tokens.admin,
    );
    await revokeToken(w.db, tokens.body.items[0]!.id, w.clock.now());
    expectProblemShape(await w.call("GET", "/v1/me", token), 401);
  });
});
