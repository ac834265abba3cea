/**
 * Every job runs as its own user: personal agent tokens bound to (cluster, user), claims scoped to
 * the users an agent may run, routing that refuses a user no agent can run jobs as, and the worst
 * cases — concurrent claims by two users' agents, a personal agent posing under another agent's id,
 * rows written straight into the database.
 */
import { describe, expect, it } from "vitest";
import { createToken } from "../../gateway/store/tokens.ts";
import { createTestGateway, sampleInventory, testClock } from "../helpers/gateway.ts";
import { type LeaseBody, expectProblemShape } from "./world.ts";

type Res<T> = { status: number; headers: Headers; body: T };

async function setup() {
  const clock = testClock();
  const gw = await createTestGateway({ SLURMGATE_AGENT_LIVENESS_SECONDS: "60" }, { clock });
  const admin = await gw.user("root", true);
  const users = { alice: await gw.user("alice"), bob: await gw.user("bob"), carol: await gw.user("carol") };
  await gw.cluster("alpha");
  await gw.cluster("beta");
  for (const u of ["root", "alice", "bob", "carol"]) {
    await gw.grant(u, "alpha");
  }
  await gw.grant("alice", "beta");
  const call = async <T = Record<string, unknown>>(method: string, path: string, token?: string, body?: unknown) => {
    const res = await gw.request(method, path, { token, body });
    const text = await res.text();
    return { status: res.status, headers: res.headers, body: (text ? JSON.parse(text) : undefined) as T };
  };
  const personal = async (user: keyof typeof users, cluster = "alpha") => {
    const res = await call<{ token: string; user: string; kind: string; cluster: string }>(
      "POST",
      "/v1/agent-tokens",
      users[user],
      { cluster, label: "laptop" },
    );
    expect(res.status).toBe(201);
    return res.body.token;
  };
  const site = async (cluster = "alpha") => (await createToken(gw.db, { kind: "agent", cluster }, clock.now())).token;
  const lease = (token: string, agentId: string, max = 10) =>
    call<LeaseBody>("POST", "/v1/agent/lease", token, { agentId, max, wait: 0 });
  const inventory = (token: string, agentId: string, identity?: unknown, cluster: "a100" | "h100" = "a100") =>
    call("PUT", "/v1/agent/inventory", token, { ...sampleInventory(cluster, agentId), identity });
  const submit = (token: string, extra: Record<string, unknown> = {}) =>
    call<{ id: string; state: string; cluster: string; reason: string | null }>("POST", "/v1/jobs", token, {
      name: "j",
      command: ["true"],
      cluster: "alpha",
      ...extra,
    });
  return { gw, clock, admin, users, call, personal, site, lease, inventory, submit };
}

describe("personal agent tokens", () => {
  it("a user creates one for themselves; it is bound to (cluster, user) and says so", async () => {
    const s = await setup();
    const res = await s.call<{ kind: string; user: string; cluster: string; token: string }>(
      "POST",
      "/v1/agent-tokens",
      s.users.alice,
      { cluster: "alpha" },
    );
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ kind: "agent", user: "alice", cluster: "alpha" });
    expect(res.body.token.startsWith("sga_")).toBe(true);
    const me = await s.call("GET", "/v1/me", res.body.token);
    expect(me.body).toMatchObject({ kind: "agent", user: "alice", cluster: "alpha" });
  });

  it("refuses a cluster the user is not granted, an unknown cluster, and a user field (no tokens for others)", async () => {
    const s = await setup();
    const notGranted = await s.call("POST", "/v1/agent-tokens", s.users.bob, { cluster: "beta" });
    expect(expectProblemShape(notGranted, 403)).toMatchObject({ field: "body.cluster" });
    const unknown = await s.call("POST", "/v1/agent-tokens", s.users.bob, { cluster: "gamma" });
    expect(expectProblemShape(unknown, 404)).toMatchObject({ field: "body.cluster" });
    const forOther = await s.call("POST", "/v1/agent-tokens", s.users.bob, { cluster: "alpha", user: "alice" });
    expect([400, 422]).toContain(forOther.status);
    expect(JSON.stringify(forOther.body)).toContain("user");
    const asUser = await s.call("POST", "/v1/admin/tokens", s.users.bob, { kind: "agent", cluster: "alpha" });
    expectProblemShape(asUser, 403);
  });

  it("an admin creates one for another user, and site agent tokens stay unbound", async () => {
    const s = await setup();
    const forBob = await s.call("POST", "/v1/admin/tokens", s.admin, { kind: "agent", cluster: "alpha", user: "bob" });
    expect(forBob.status).toBe(201);
    expect(forBob.body).toMatchObject({ kind: "agent", user: "bob", cluster: "alpha" });
    const siteToken = await s.call("POST", "/v1/admin/tokens", s.admin, { kind: "agent", cluster: "alpha" });
    expect(siteToken.body).toMatchObject({ kind: "agent", user: null, cluster: "alpha" });
    const ghost = await s.call("POST", "/v1/admin/tokens", s.admin, { kind: "agent", cluster: "alpha", user: "zed" });
    expect(expectProblemShape(ghost, 404)).toMatchObject({ field: "body.user" });
  });
});

describe("claims are scoped to the users an agent may run", () => {
  it("a personal agent leases only its user's jobs; a site agent only the users it maps", async () => {
    const s = await setup();
    const aliceAgent = await s.personal("alice");
    const bobAgent = await s.personal("bob");
    const siteAgent = await s.site();
    await s.inventory(siteAgent, "site-1", { mode: "site", users: ["carol"] });
    await s.lease(aliceAgent, "laptop");
    await s.lease(bobAgent, "laptop");
    s.clock.advance(1_500);
    const jobs: Record<string, string[]> = { alice: [], bob: [], carol: [] };
    for (let i = 0; i < 6; i++) {
      for (const u of ["alice", "bob", "carol"] as const) {
        const res = await s.submit(s.users[u]);
        expect(res.status).toBe(201);
        jobs[u]!.push(res.body.id);
      }
    }
    const bob = await s.lease(bobAgent, "laptop", 100);
    expect(bob.body.leases.map((l) => l.jobId).sort()).toEqual([...jobs.bob!].sort());
    expect(new Set(bob.body.leases.map((l) => l.owner))).toEqual(new Set(["bob"]));
    const siteLeases = await s.lease(siteAgent, "site-1", 100);
    expect(siteLeases.body.leases.map((l) => l.jobId).sort()).toEqual([...jobs.carol!].sort());
    const alice = await s.lease(aliceAgent, "laptop", 100);
    expect(alice.body.leases.map((l) => l.jobId).sort()).toEqual([...jobs.alice!].sort());
    // Alice's jobs were never touched before her agent came: one lease event each, by her agent.
    const events = await s.gw.db.client.execute(
      "SELECT DISTINCT actor FROM job_events WHERE state = 'leased' AND job_id IN (SELECT id FROM jobs WHERE owner = 'alice')",
    );
    expect(events.rows.map((r) => String(r.actor))).toEqual(["agent:alpha/alice@laptop"]);
  });

  it("an unbound agent that publishes no mapping still runs everyone's jobs (the single-account setup)", async () => {
    const s = await setup();
    const shared = await s.site();
    const a = await s.submit(s.users.alice);
    const b = await s.submit(s.users.bob);
    const res = await s.lease(shared, "shared-1");
    expect(res.body.leases.map((l) => l.jobId).sort()).toEqual([a.body.id, b.body.id].sort());
  });

  it("two personal agents claiming concurrently over 200 interleaved jobs never get each other's", async () => {
    const s = await setup();
    const agents = { alice: await s.personal("alice"), bob: await s.personal("bob") };
    const owners = new Map<string, string>();
    const leasedBy = new Map<string, string[]>();
    let stop = false;
    const loop = async (user: "alice" | "bob", k: number) => {
      let idle = 0;
      while (!(stop && idle > 1)) {
        const res = await s.lease(agents[user], `host-${k}`, 3);
        expect(res.status).toBe(200);
        idle = res.body.leases.length === 0 ? idle + 1 : 0;
        for (const l of res.body.leases) {
          leasedBy.set(l.jobId, [...(leasedBy.get(l.jobId) ?? []), user]);
        }
      }
    };
    const submitter = async () => {
      for (let i = 0; i < 200; i++) {
        const user = i % 3 === 0 ? "bob" : "alice";
        const res = await s.submit(s.users[user]);
        owners.set(res.body.id, user);
      }
      stop = true;
    };
    await Promise.all([submitter(), loop("alice", 0), loop("alice", 1), loop("bob", 0), loop("bob", 1)]);
    expect(leasedBy.size).toBe(200);
    const wrong = [...leasedBy].filter(([id, by]) => by.length !== 1 || by[0] !== owners.get(id));
    expect(wrong).toEqual([]);
    const rows = await s.gw.db.client.execute(
      "SELECT count(*) AS n FROM jobs WHERE lease_owner NOT LIKE owner || '@%' OR state != 'leased' OR epoch != 1",
    );
    expect(Number(rows.rows[0]?.n)).toBe(0);
  });

  it("takes over only expired leases of its own user", async () => {
    const s = await setup();
    const aliceAgent = await s.personal("alice");
    const bobAgent = await s.personal("bob");
    const shared = await s.site();
    await s.submit(s.users.alice);
    await s.lease(shared, "shared-1");
    s.clock.advance(200_000);
    expect((await s.lease(bobAgent, "laptop")).body.leases).toEqual([]);
    expect((await s.lease(aliceAgent, "laptop")).body.leases).toHaveLength(1);
  });

  it("reads only the user's own rows, off the claim index", async () => {
    const s = await setup();
    const plan = await s.gw.db.client.execute({
      sql: `EXPLAIN QUERY PLAN SELECT id FROM jobs WHERE cluster = ? AND state = 'queued' AND run_after <= ? AND owner = ?
            ORDER BY id LIMIT ?`,
      args: ["alpha", 0, "alice", 10],
    });
    const text = plan.rows.map((r) => String(r.detail)).join("\n");
    expect(text).toContain("jobs_claim_owner");
    expect(text).not.toContain("TEMP B-TREE");
  });
});

describe("worst cases", () => {
  it("a personal agent posing under another agent's id cannot renew, see cancels of, or report on its jobs", async () => {
    const s = await setup();
    const aliceAgent = await s.personal("alice");
    const bobAgent = await s.personal("bob");
    const job = await s.submit(s.users.alice);
    const leased = await s.lease(aliceAgent, "laptop");
    const epoch = leased.body.leases[0]!.epoch;
    await s.call("POST", `/v1/jobs/${job.body.id}/cancel`, s.users.alice);
    const spoof = await s.call<LeaseBody>("POST", "/v1/agent/lease", bobAgent, {
      agentId: "laptop",
      wait: 0,
      holding: [job.body.id],
    });
    expect(spoof.body.cancels).toEqual([]);
    expect(spoof.body.lost).toEqual([job.body.id]);
    const report = await s.call<{ outcomes: { status: string }[] }>("POST", "/v1/agent/reports", bobAgent, {
      agentId: "laptop",
      reports: [{ jobId: job.body.id, epoch, state: "submitted", slurmJobId: "99" }],
    });
    expect(report.body.outcomes[0]?.status).toBe("not_found");
    const after = await s.call<{ state: string; slurmJobId: string | null }>("GET", `/v1/jobs/${job.body.id}`, s.admin);
    expect(after.body).toMatchObject({ state: "leased", slurmJobId: null });
  });

  it("rows written straight into the database for another user never reach a personal agent", async () => {
    const s = await setup();
    const bobAgent = await s.personal("bob");
    const real = await s.submit(s.users.alice);
    await s.gw.db.client.execute({
      sql: `INSERT INTO jobs (id, owner, name, state, cluster, spec, created_at, updated_at)
            SELECT 'job_forged', 'alice', name, 'queued', cluster, spec, created_at, updated_at FROM jobs WHERE id = ?`,
      args: [real.body.id],
    });
    expect((await s.lease(bobAgent, "laptop", 100)).body.leases).toEqual([]);
  });

  it("refuses a hostile mapping and keeps the mapped names out of GET /v1/clusters", async () => {
    const s = await setup();
    const siteAgent = await s.site();
    const bad = await s.inventory(siteAgent, "site-1", { mode: "site", users: ["Robert'); DROP TABLE jobs;--"] });
    expect([400, 422]).toContain(bad.status);
    const wrongType = await s.inventory(siteAgent, "site-1", { mode: "site", users: "alice" });
    expect([400, 422]).toContain(wrongType.status);
    expect((await s.inventory(siteAgent, "site-1", { mode: "site", users: ["carol"] })).status).toBe(200);
    const clusters = await s.call("GET", "/v1/clusters", s.users.carol);
    expect(JSON.stringify(clusters.body)).not.toContain("identity");
  });

  it("a site agent's own personal-looking claim ('mode: personal') does not widen an unbound token", async () => {
    const s = await setup();
    const siteAgent = await s.site();
    await s.inventory(siteAgent, "site-1", { mode: "site", users: ["carol"] });
    await s.submit(s.users.alice);
    expect((await s.lease(siteAgent, "site-1")).body.leases).toEqual([]);
  });
});

describe("routing only picks a cluster where an agent can run the job as its user", () => {
  it("refuses with 422 when the cluster's agents cannot run as the user, and accepts once one can", async () => {
    const s = await setup();
    const bobAgent = await s.personal("bob");
    await s.inventory(bobAgent, "laptop");
    const refused = await s.submit(s.users.alice);
    const problem = expectProblemShape(refused as Res<unknown>, 422) as unknown as { detail: string; field: string };
    expect(problem.detail).toBe(
      "no agent can run jobs as alice on alpha: start a personal agent or ask the site to map you",
    );
    expect(problem.field).toBe("body.cluster");
    expect((await s.submit(s.users.bob)).status).toBe(201);

    const aliceAgent = await s.personal("alice");
    await s.lease(aliceAgent, "laptop");
    s.clock.advance(1_500);
    expect((await s.submit(s.users.alice)).status).toBe(201);

    // Her agent stops: a pinned job waits for it rather than being refused.
    s.clock.advance(120_000);
    await s.lease(bobAgent, "laptop");
    const waiting = await s.submit(s.users.alice);
    expect(waiting.status).toBe(201);
    expect(waiting.body.reason).toContain("has not been seen");
  });

  it("routes by a site agent's published mapping, and names every cluster in an unpinned refusal", async () => {
    const s = await setup();
    const siteAlpha = await s.site("alpha");
    const siteBeta = await s.site("beta");
    await s.inventory(siteAlpha, "site-a", { mode: "site", users: ["carol"] });
    await s.inventory(siteBeta, "site-b", { mode: "site", users: ["carol"] }, "h100");
    expect((await s.submit(s.users.carol)).status).toBe(201);
    const refused = await s.submit(s.users.alice, { cluster: undefined });
    const body = expectProblemShape(refused as Res<unknown>, 422) as unknown as { detail: string };
    expect(body.detail).toBe(
      "no agent can run jobs as alice on alpha, beta: start a personal agent or ask the site to map you",
    );
  });
});
