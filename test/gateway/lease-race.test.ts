/**
 * Claiming is atomic: many agents leasing at once over one queue never share a job, and an agent
 * only ever sees its own cluster's jobs.
 */
import { expect, it } from "vitest";
import { createToken } from "../../gateway/store/tokens.ts";
import { type LeaseBody, createWorld } from "./world.ts";

it("leases each of 200 jobs exactly once across concurrent agents, never across clusters", async () => {
  const w = await createWorld();
  const submitted: string[] = [];
  for (let i = 0; i < 200; i += 50) {
    const batch = await Promise.all(Array.from({ length: 50 }, () => w.submit(w.tokens.alice, { cluster: "alpha" })));
    submitted.push(...batch.map((j) => j.id));
  }
  const betaJobs = await Promise.all(Array.from({ length: 5 }, () => w.submit(w.tokens.bob, { cluster: "beta" })));
  const alphaTokens = [w.tokens.alphaAgent];
  for (let i = 0; i < 3; i++) {
    alphaTokens.push((await createToken(w.db, { kind: "agent", cluster: "alpha" }, w.deps.now())).token);
  }

  const leasedBy = new Map<string, string[]>();
  const betaSaw: string[] = [];
  const agentLoop = async (token: string, agentId: string) => {
    for (;;) {
      const res = await w.lease(token, agentId, { max: 7 });
      expect(res.status).toBe(200);
      for (const lease of res.body.leases) {
        leasedBy.set(lease.jobId, [...(leasedBy.get(lease.jobId) ?? []), agentId]);
      }
      if (res.body.leases.length === 0) {
        return;
      }
    }
  };
  const betaLoop = async () => {
    for (let i = 0; i < 10; i++) {
      const res = await w.call<LeaseBody>("POST", "/v1/agent/lease", w.tokens.betaAgent, { agentId: "b", max: 50 });
      betaSaw.push(...res.body.leases.map((l) => l.jobId));
    }
  };
  await Promise.all([
    ...alphaTokens.flatMap((token, t) => [0, 1, 2].map((k) => agentLoop(token, `alpha-${t}-${k}`))),
    betaLoop(),
  ]);

  expect(leasedBy.size).toBe(200);
  expect([...leasedBy.keys()].sort()).toEqual([...submitted].sort());
  const doubles = [...leasedBy.entries()].filter(([, holders]) => holders.length !== 1);
  expect(doubles).toEqual([]);
  expect(betaSaw.sort()).toEqual(betaJobs.map((j) => j.id).sort());

  const rs = await w.db.client.execute(
    "SELECT state, epoch, lease_owner FROM jobs WHERE cluster = 'alpha' AND (state != 'leased' OR epoch != 1)",
  );
  expect(rs.rows).toEqual([]);
  const holders = await w.db.client.execute("SELECT id, lease_owner FROM jobs WHERE cluster = 'alpha'");
  for (const row of holders.rows) {
    expect(leasedBy.get(String(row.id))).toEqual([String(row.lease_owner)]);
  }
  const events = await w.db.client.execute(
    "SELECT job_id, count(*) AS n FROM job_events WHERE state = 'leased' GROUP BY job_id HAVING n != 1",
  );
  expect(events.rows).toEqual([]);
});
