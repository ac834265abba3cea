/**
 * POST /v1/agent/goodbye: an agent that stops says so, its cluster shows down at once (unless
 * another agent of it is alive), routing says why, and the jobs it holds keep their leases.
 */
import { describe, expect, it } from "vitest";
import { testClock } from "../helpers/gateway.ts";
import { createWorld, expectProblemShape, type World } from "./world.ts";

type ClusterItem = {
  name: string;
  alive: boolean;
  stoppedAt: string | null;
  lastSeenAt: string | null;
  agents: { agentId: string; stoppedAt: string | null }[];
};
type GoodbyeBody = { agentId: string; stoppedAt: string | null; clusterAlive: boolean };

const goodbye = (w: World, token: string | undefined, body: unknown) =>
  w.call<GoodbyeBody>("POST", "/v1/agent/goodbye", token, body);

async function clusterView(w: World, name: string): Promise<ClusterItem> {
  const res = await w.call<{ items: ClusterItem[] }>("GET", "/v1/clusters", w.tokens.alice);
  return res.body.items.find((c) => c.name === name)!;
}

describe("goodbye", () => {
  it("shows the cluster down at once, and only that cluster", async () => {
    const clock = testClock();
    const w = await createWorld({}, clock);
    expect((await clusterView(w, "alpha")).alive).toBe(true);
    clock.advance(1_000);
    const res = await goodbye(w, w.tokens.alphaAgent, { agentId: "agent-1" });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      agentId: "agent-1",
      stoppedAt: new Date(clock.now()).toISOString(),
      clusterAlive: false,
    });
    const alpha = await clusterView(w, "alpha");
    expect(alpha).toMatchObject({ alive: false, stoppedAt: res.body.stoppedAt, lastSeenAt: res.body.stoppedAt });
    expect(alpha.agents).toEqual([expect.objectContaining({ agentId: "agent-1", stoppedAt: res.body.stoppedAt })]);
    expect(await clusterView(w, "beta")).toMatchObject({ alive: true, stoppedAt: null });
  });

  it("is idempotent: a repeated goodbye keeps the first time", async () => {
    const clock = testClock();
    const w = await createWorld({}, clock);
    const first = await goodbye(w, w.tokens.alphaAgent, { agentId: "agent-1" });
    clock.advance(30_000);
    const second = await goodbye(w, w.tokens.alphaAgent, { agentId: "agent-1" });
    expect(second.status).toBe(200);
    expect(second.body).toEqual(first.body);
    expect((await clusterView(w, "alpha")).stoppedAt).toBe(first.body.stoppedAt);
  });

  it("an unknown or hostile agentId changes nothing and creates no agent", async () => {
    const w = await createWorld();
    for (const agentId of ["never-seen", "'; DROP TABLE agents; --", "x".repeat(128)]) {
      const res = await goodbye(w, w.tokens.alphaAgent, { agentId });
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ agentId, stoppedAt: null, clusterAlive: true });
    }
    const alpha = await clusterView(w, "alpha");
    expect(alpha.alive).toBe(true);
    expect(alpha.agents.map((a) => a.agentId)).toEqual(["agent-1"]);
  });

  it("an agent token of another cluster cannot stop this cluster's agent", async () => {
    const w = await createWorld();
    const res = await goodbye(w, w.tokens.betaAgent, { agentId: "agent-1" });
    expect(res.status).toBe(200);
    expect(res.body.clusterAlive).toBe(false); // beta's own agent-1 said goodbye...
    expect((await clusterView(w, "alpha")).alive).toBe(true); // ...alpha's agent-1 is untouched
    expect((await clusterView(w, "beta")).alive).toBe(false);
  });

  it("only agents may say goodbye", async () => {
    const w = await createWorld();
    for (const token of [w.tokens.alice, w.tokens.admin]) {
      const res = await goodbye(w, token, { agentId: "agent-1" });
      expect(expectProblemShape(res, 403).code).toBe("forbidden");
    }
    expectProblemShape(await goodbye(w, undefined, { agentId: "agent-1" }), 401);
    expectProblemShape(await goodbye(w, "sga_not-a-real-token", { agentId: "agent-1" }), 401);
    expect((await clusterView(w, "alpha")).alive).toBe(true);
  });

  it("refuses bodies without a sane agentId, naming the field", async () => {
    const w = await createWorld();
    for (const body of [{}, { agentId: "" }, { agentId: "x".repeat(129) }, { agentId: 7 }, []]) {
      const problem = expectProblemShape(await goodbye(w, w.tokens.alphaAgent, body), 422);
      expect(problem.field).toMatch(/^body/);
    }
    const malformed = await goodbye(w, w.tokens.alphaAgent, "{not json");
    expect(malformed.status).toBe(400);
    expect((await clusterView(w, "alpha")).alive).toBe(true);
  });

  it("leaves the cluster alive while another of its agents is alive", async () => {
    const w = await createWorld();
    await w.lease(w.tokens.alphaAgent, "agent-2");
    const res = await goodbye(w, w.tokens.alphaAgent, { agentId: "agent-1" });
    expect(res.body.clusterAlive).toBe(true);
    expect(await clusterView(w, "alpha")).toMatchObject({ alive: true, stoppedAt: null });
  });

  it("a stopped agent that leases again is alive again", async () => {
    const clock = testClock();
    const w = await createWorld({}, clock);
    await goodbye(w, w.tokens.alphaAgent, { agentId: "agent-1" });
    clock.advance(5_000);
    expect((await w.lease(w.tokens.alphaAgent, "agent-1")).status).toBe(200);
    const alpha = await clusterView(w, "alpha");
    expect(alpha).toMatchObject({ alive: true, stoppedAt: null, lastSeenAt: new Date(clock.now()).toISOString() });
    expect(alpha.agents[0]?.stoppedAt).toBeNull();
  });
});

describe("routing after a goodbye", () => {
  it("queues a pinned job with the reason, refuses an unpinned one only that cluster could run, routes the rest elsewhere", async () => {
    const w = await createWorld();
    const { body } = await goodbye(w, w.tokens.alphaAgent, { agentId: "agent-1" });
    const stopped = `the agent of alpha stopped at ${body.stoppedAt}; no live agent`;

    const pinned = await w.submit(w.tokens.alice, { cluster: "alpha" });
    expect(pinned.state).toBe("queued");
    expect((await w.job(pinned.id)).reason).toBe(`queued for alpha until an agent is back: ${stopped}`);

    const a100 = await w.call("POST", "/v1/jobs", w.tokens.alice, {
      name: "a100",
      command: ["true"],
      partition: "gpu",
      resources: { gpus: { count: 1, type: "a100" } },
    });
    const problem = expectProblemShape(a100, 422) as { field?: string; detail?: string };
    expect(problem.field).toBe("cluster");
    expect(problem.detail).toContain(stopped);

    expect((await w.submit(w.tokens.alice)).cluster).toBe("beta");

    // The queued job waits for the agent and goes to it once it is back.
    const back = await w.lease(w.tokens.alphaAgent, "agent-1");
    expect(back.body.leases.map((l) => l.jobId)).toEqual([pinned.id]);
  });

  it("keeps the leases the stopped agent holds until they expire, so nothing is handed over early", async () => {
    const clock = testClock();
    const w = await createWorld({ SLURMGATE_LEASE_SECONDS: "60" }, clock);
    const job = await w.submit(w.tokens.alice, { cluster: "alpha" });
    const held = (await w.lease(w.tokens.alphaAgent, "agent-1")).body.leases[0]!;
    await goodbye(w, w.tokens.alphaAgent, { agentId: "agent-1" });

    clock.advance(30_000);
    expect((await w.lease(w.tokens.alphaAgent, "agent-2")).body.leases).toEqual([]);
    expect(await w.job(job.id)).toMatchObject({ state: "leased" });

    // The same agent, restarted on its state file, keeps its lease (same epoch: its reports count).
    const resumed = await w.lease(w.tokens.alphaAgent, "agent-1", { holding: [job.id] });
    expect(resumed.body.lost).toEqual([]);
    const outcome = await w.report(
      w.tokens.alphaAgent,
      [{ jobId: job.id, epoch: held.epoch, state: "submitted", slurmJobId: "4242" }],
      "agent-1",
    );
    expect(outcome.body.outcomes[0]?.status).toBe("applied");
  });

  it("after expiry another agent of the cluster takes the job over with its Slurm id", async () => {
    const clock = testClock();
    const w = await createWorld({ SLURMGATE_LEASE_SECONDS: "60" }, clock);
    const job = await w.submit(w.tokens.alice, { cluster: "alpha" });
    const held = (await w.lease(w.tokens.alphaAgent, "agent-1")).body.leases[0]!;
    await w.report(w.tokens.alphaAgent, [{ jobId: job.id, epoch: held.epoch, state: "submitted", slurmJobId: "77" }]);
    await goodbye(w, w.tokens.alphaAgent, { agentId: "agent-1" });
    clock.advance(61_000);
    const taken = (await w.lease(w.tokens.alphaAgent, "agent-2")).body.leases;
    expect(taken).toEqual([expect.objectContaining({ jobId: job.id, slurmJobId: "77", epoch: held.epoch + 1 })]);
  });
});
