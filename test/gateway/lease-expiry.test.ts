/**
 * Leases expire on the gateway's clock; a newer lease fences out the older holder; a job already in
 * Slurm stays with its cluster and carries its Slurm job id to the next holder.
 */
import { describe, expect, it } from "vitest";
import { expireLeases } from "../../gateway/store/leases.ts";
import { testClock } from "../helpers/gateway.ts";
import { createWorld } from "./world.ts";

const LEASE = { SLURMGATE_LEASE_SECONDS: "30" };

describe("lease expiry and fencing", () => {
  it("hands an expired lease to a second agent with epoch + 1 and refuses the first holder's reports", async () => {
    const clock = testClock();
    const w = await createWorld(LEASE, clock);
    const { id } = await w.submit(w.tokens.alice);
    const first = await w.lease(w.tokens.alphaAgent, "a1");
    expect(first.body.leases.map((l) => [l.jobId, l.epoch])).toEqual([[id, 1]]);
    expect(first.body.leaseSeconds).toBe(30);

    clock.advance(29_000);
    expect((await w.lease(w.tokens.alphaAgent, "a2")).body.leases).toEqual([]);
    clock.advance(1_001);
    const second = await w.lease(w.tokens.alphaAgent, "a2");
    expect(second.body.leases.map((l) => [l.jobId, l.epoch, l.attempt])).toEqual([[id, 2, 1]]);

    const before = await w.job(id);
    const stale = await w.report(
      w.tokens.alphaAgent,
      [{ jobId: id, epoch: 1, state: "submitted", slurmJobId: "11" }],
      "a1",
    );
    expect(stale.body.outcomes).toEqual([expect.objectContaining({ jobId: id, status: "stale" })]);
    expect(await w.job(id)).toEqual(before);

    // The first holder learns it lost the job when it next calls lease.
    const relist = await w.lease(w.tokens.alphaAgent, "a1", { holding: [id] });
    expect(relist.body.lost).toEqual([id]);

    const fresh = await w.report(
      w.tokens.alphaAgent,
      [{ jobId: id, epoch: 2, state: "submitted", slurmJobId: "12" }],
      "a2",
    );
    expect(fresh.body.outcomes[0]?.status).toBe("applied");
    expect((await w.job(id)).slurmJobId).toBe("12");
  });

  it("renews leases the agent still holds", async () => {
    const clock = testClock();
    const w = await createWorld(LEASE, clock);
    const { id } = await w.submit(w.tokens.alice);
    await w.lease(w.tokens.alphaAgent, "a1");
    for (let i = 0; i < 4; i++) {
      clock.advance(20_000);
      const renewed = await w.lease(w.tokens.alphaAgent, "a1", { holding: [id] });
      expect(renewed.body.lost).toEqual([]);
    }
    expect((await w.lease(w.tokens.alphaAgent, "a2")).body.leases).toEqual([]);
    expect(await expireLeases(w.db, clock.now())).toBe(0);
  });

  it("re-leases a job that reached Slurm to the same cluster, with its Slurm job id", async () => {
    const clock = testClock();
    const w = await createWorld(LEASE, clock);
    const { id } = await w.submit(w.tokens.alice, { cluster: "alpha" });
    const lease = (await w.lease(w.tokens.alphaAgent, "a1")).body.leases[0]!;
    await w.report(
      w.tokens.alphaAgent,
      [{ jobId: id, epoch: lease.epoch, state: "submitted", slurmJobId: "4242" }],
      "a1",
    );
    await w.report(w.tokens.alphaAgent, [{ jobId: id, epoch: lease.epoch, state: "running" }], "a1");
    clock.advance(31_000);

    expect(await expireLeases(w.db, clock.now())).toBe(0);
    expect((await w.job(id)).state).toBe("running");
    expect((await w.lease(w.tokens.betaAgent, "b1")).body.leases).toEqual([]);
    const taken = await w.lease(w.tokens.alphaAgent, "a2");
    expect(taken.body.leases).toEqual([
      expect.objectContaining({ jobId: id, epoch: lease.epoch + 1, attempt: 1, slurmJobId: "4242" }),
    ]);
    const job = await w.job(id);
    expect(job.state).toBe("running");
    expect(job.events.at(-1)).toMatchObject({ type: "note", detail: expect.stringMatching(/taken over/) });
  });

  it("expireLeases returns a pre-submission lease to the queue with a visible reason", async () => {
    const clock = testClock();
    const w = await createWorld(LEASE, clock);
    const { id } = await w.submit(w.tokens.alice);
    await w.lease(w.tokens.alphaAgent, "a1");
    expect(await expireLeases(w.db, clock.now() + 29_000)).toBe(0);
    clock.advance(31_000);
    expect(await expireLeases(w.db, clock.now())).toBe(1);
    const job = await w.job(id, w.tokens.alice);
    expect(job.state).toBe("queued");
    expect(job.reason).toMatch(/went quiet before submitting/);
    expect(job.events.map((e) => e.state ?? e.type)).toEqual(["queued", "leased", "queued"]);
    expect(job.events.at(-1)).toMatchObject({ actor: "gateway", detail: job.reason });
    // The old holder is fenced out even though the epoch did not move while the job sat queued.
    const late = await w.report(
      w.tokens.alphaAgent,
      [{ jobId: id, epoch: 1, state: "submitted", slurmJobId: "9" }],
      "a1",
    );
    expect(late.body.outcomes[0]?.status).toBe("stale");
    const again = await w.lease(w.tokens.alphaAgent, "a2");
    expect(again.body.leases.map((l) => [l.jobId, l.epoch])).toEqual([[id, 2]]);
  });

  it("expireLeases ends a cancel-requested pre-submission job as cancelled", async () => {
    const clock = testClock();
    const w = await createWorld(LEASE, clock);
    const { id } = await w.submit(w.tokens.alice);
    await w.lease(w.tokens.alphaAgent, "a1");
    expect((await w.call("POST", `/v1/jobs/${id}/cancel`, w.tokens.alice)).status).toBe(202);
    clock.advance(31_000);
    expect(await expireLeases(w.db, clock.now())).toBe(1);
    expect((await w.job(id)).state).toBe("cancelled");
  });
});
