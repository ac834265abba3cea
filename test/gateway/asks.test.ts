/**
 * Asks: the gateway's questions to a cluster's agent, carried by the agent's own (held) lease call
 * and answered by POST; and the preflight estimate built on them. The agents here are requests the
 * test makes with real agent tokens against a real in-process gateway.
 */
import { describe, expect, it } from "vitest";
import type { Preflight } from "../../schemas/index.ts";
import { sampleInventory } from "../helpers/gateway.ts";
import { createWorld, expectProblemShape, spec } from "./world.ts";

type Ask = { id: string; kind: string; owner: string; spec: { name: string; partition?: string; cluster?: string } };
type LeaseWithAsks = { leases: unknown[]; asks: Ask[] };

const at = (iso: string) => ({ startAt: iso, partition: "cpu", nodes: "n1", processors: 1 });

async function world(seconds = "3") {
  return createWorld({ SLURMGATE_ESTIMATE_SECONDS: seconds });
}
type W = Awaited<ReturnType<typeof world>>;

/** One agent's held lease call; resolves with the asks it was handed. */
async function takeAsks(w: W, token: string, agentId = "agent-1", wait = 5): Promise<Ask[]> {
  const res = await w.call<LeaseWithAsks>("POST", "/v1/agent/lease", token, { agentId, max: 1, wait });
  expect(res.status).toBe(200);
  return res.body.asks;
}

function answer(w: W, token: string, id: string, body: unknown, agentId = "agent-1") {
  return w.call<Record<string, unknown>>("POST", `/v1/agent/asks/${id}/answer`, token, { agentId, answer: body });
}

async function askCount(w: W) {
  return Number((await w.db.client.execute("SELECT count(*) AS n FROM agent_asks")).rows[0]?.n);
}

describe("preflight estimates through the agents", () => {
  it("asks every cluster that fits, as the user, and ranks the others by Slurm's estimate", async () => {
    const w = await world();
    const gamma = await w.cluster("gamma");
    await w.grant("alice", "gamma");
    await w.inventory("gamma", sampleInventory("a100", "g1"));
    const plan = w.call<Preflight>("POST", "/v1/jobs/preflight", w.tokens.alice, spec({ resources: { time: "5m" } }));
    const answered = (async () => {
      const agents = [
        [w.tokens.alphaAgent, "2026-12-01T10:00:00.000Z"],
        [w.tokens.betaAgent, "2026-12-01T12:00:00.000Z"],
        [gamma, "2026-12-01T11:00:00.000Z"],
      ] as const;
      await Promise.all(
        agents.map(async ([token, when]) => {
          const [ask, ...more] = await takeAsks(w, token);
          expect(more).toEqual([]);
          expect(ask).toMatchObject({ kind: "estimate", owner: "alice", spec: { name: "hello" } });
          expect((await answer(w, token, ask!.id, { ok: true, value: at(when) })).status).toBe(204);
        }),
      );
    })();
    const [res] = await Promise.all([plan, answered]);
    expect(res.status).toBe(200);
    const order = res.body.candidates.map((c) => [c.cluster, c.chosen, c.estimate?.startAt]);
    // Routing's choice stays first; the others come earliest start first.
    expect(order).toEqual([
      ["alpha", true, "2026-12-01T10:00:00.000Z"],
      ["gamma", false, "2026-12-01T11:00:00.000Z"],
      ["beta", false, "2026-12-01T12:00:00.000Z"],
    ]);
    expect(res.body.candidates[0]?.estimate?.reason).toBe(
      "Slurm on alpha expects it to start at 2026-12-01 10:00:00 UTC on n1 in cpu",
    );
    expect(await askCount(w)).toBe(0);
  });

  it("says no agent answered when none does in time, and leaves no ask behind", async () => {
    const w = await world("1");
    const started = Date.now();
    const res = await w.call<Preflight>("POST", "/v1/jobs/preflight", w.tokens.alice, spec());
    expect(Date.now() - started).toBeLessThan(4_000);
    const alpha = res.body.candidates.find((c) => c.cluster === "alpha");
    expect(alpha?.estimate).toEqual({
      startAt: null,
      partition: null,
      nodes: null,
      reason: "no estimate from alpha: no agent of alpha answered within 1 s",
    });
    expect(await askCount(w)).toBe(0);
    // The agent that comes late is handed nothing stale.
    expect(await takeAsks(w, w.tokens.alphaAgent, "agent-1", 0)).toEqual([]);
  });

  it("passes Slurm's refusal on in the estimate's reason", async () => {
    const w = await world();
    const plan = w.call<Preflight>("POST", "/v1/jobs/preflight", w.tokens.alice, spec({ cluster: "alpha" }));
    const [ask] = await takeAsks(w, w.tokens.alphaAgent);
    const refusal = "Requested node configuration is not available";
    expect((await answer(w, w.tokens.alphaAgent, ask!.id, { ok: false, reason: refusal })).status).toBe(204);
    const res = await plan;
    expect(res.body.candidates[0]?.estimate).toMatchObject({
      startAt: null,
      reason: `no estimate from alpha: ${refusal}`,
    });
  });

  it("skips the agents with ?estimate=false: nothing is asked", async () => {
    const w = await world("5");
    const started = Date.now();
    const res = await w.call<Preflight>("POST", "/v1/jobs/preflight?estimate=false", w.tokens.alice, spec());
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(res.body.candidates.every((c) => c.estimate === null)).toBe(true);
    expect(await takeAsks(w, w.tokens.alphaAgent, "agent-1", 0)).toEqual([]);
  });

  it("wakes a held lease call at once when a question arrives", async () => {
    const w = await world("5");
    const held = (async () => {
      const t0 = Date.now();
      const asks = await takeAsks(w, w.tokens.alphaAgent, "agent-1", 20);
      return { asks, ms: Date.now() - t0 };
    })();
    await new Promise((r) => setTimeout(r, 300));
    const plan = w.call<Preflight>("POST", "/v1/jobs/preflight", w.tokens.alice, spec({ cluster: "alpha" }));
    const { asks, ms } = await held;
    expect(asks).toHaveLength(1);
    expect(ms).toBeLessThan(3_000);
    await answer(w, w.tokens.alphaAgent, asks[0]!.id, { ok: true, value: at("2026-12-01T10:00:00Z") });
    expect((await plan).body.candidates[0]?.estimate?.startAt).toBe("2026-12-01T10:00:00Z");
  });
});

describe("answers, as an attacker would send them", () => {
  async function pendingAsk(w: W) {
    const plan = w.call<Preflight>("POST", "/v1/jobs/preflight", w.tokens.alice, spec({ cluster: "alpha" }));
    const [ask] = await takeAsks(w, w.tokens.alphaAgent);
    return { plan, id: ask!.id };
  }

  it("refuses a malformed value naming each field, and still takes a good answer after", async () => {
    const w = await world();
    const { plan, id } = await pendingAsk(w);
    const bad = await answer(w, w.tokens.alphaAgent, id, {
      ok: true,
      value: { startAt: "tomorrow", partition: "cpu", nodes: "n1", processors: -1, extra: "x" },
    });
    const problem = expectProblemShape(bad, 422) as unknown as { errors: { field: string }[] };
    expect(problem.errors.map((e) => e.field).sort()).toEqual([
      "body.value.extra",
      "body.value.processors",
      "body.value.startAt",
    ]);
    expect((await answer(w, w.tokens.alphaAgent, id, { ok: true, value: at("2026-12-01T10:00:00Z") })).status).toBe(
      204,
    );
    expect((await plan).body.candidates[0]?.estimate?.startAt).toBe("2026-12-01T10:00:00Z");
  });

  it("takes one answer only, from the agent that took the ask, on its own cluster", async () => {
    const w = await world();
    const { plan, id } = await pendingAsk(w);
    const good = { ok: true, value: at("2026-12-01T10:00:00Z") };
    expectProblemShape(await answer(w, w.tokens.betaAgent, id, good), 404);
    expectProblemShape(await answer(w, w.tokens.alphaAgent, id, good, "agent-2"), 404);
    expectProblemShape(await answer(w, w.tokens.alice, id, good), 403);
    expect((await answer(w, w.tokens.alphaAgent, id, good)).status).toBe(204);
    expectProblemShape(await answer(w, w.tokens.alphaAgent, id, good), 404);
    expect((await plan).body.candidates[0]?.estimate?.startAt).toBe("2026-12-01T10:00:00Z");
  });

  it("refuses unknown fields, a malformed id (404) and a wrong content type (415)", async () => {
    const w = await world();
    const { plan, id } = await pendingAsk(w);
    const extra = await w.call("POST", `/v1/agent/asks/${id}/answer`, w.tokens.alphaAgent, {
      agentId: "agent-1",
      answer: { ok: false, reason: "x" },
      hint: 1,
    });
    expect((expectProblemShape(extra, 422) as { field?: string }).field).toBe("body.hint");
    expectProblemShape(await answer(w, w.tokens.alphaAgent, "ask_..%2F..%2Fx", { ok: false, reason: "x" }), 404);
    const typed = await w.call("POST", `/v1/agent/asks/${id}/answer`, w.tokens.alphaAgent, "agentId=agent-1", {
      "content-type": "application/x-www-form-urlencoded",
    });
    expectProblemShape(typed, 415);
    await answer(w, w.tokens.alphaAgent, id, { ok: false, reason: "done" });
    await plan;
  });

  it("drops a stored ask that no longer parses instead of handing it out or failing the lease", async () => {
    const w = await world("2");
    await w.db.client.execute({
      sql: `INSERT INTO agent_asks (id, cluster, owner, kind, body, created_at, expires_at)
            VALUES ('ask_00000000000000000000000000', 'alpha', 'alice', 'estimate', '{not json', ?, ?)`,
      args: [Date.now(), Date.now() + 60_000],
    });
    expect(await takeAsks(w, w.tokens.alphaAgent, "agent-1", 0)).toEqual([]);
    const { plan, id } = await pendingAsk(w);
    expect(id).not.toBe("ask_00000000000000000000000000");
    await answer(w, w.tokens.alphaAgent, id, { ok: false, reason: "done" });
    await plan;
  });
});
