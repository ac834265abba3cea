/**
 * Cancel: queued jobs end at once; held jobs get a cancel order on the agent's next lease call,
 * which also wakes a waiting lease; finished jobs are left alone.
 */
import { describe, expect, it } from "vitest";
import { testClock } from "../helpers/gateway.ts";
import { type JobBody, createWorld } from "./world.ts";

describe("cancel", () => {
  it("cancels a queued job at once and no agent ever leases it", async () => {
    const w = await createWorld();
    const { id } = await w.submit(w.tokens.alice);
    const res = await w.call<JobBody>("POST", `/v1/jobs/${id}/cancel`, w.tokens.alice);
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({ state: "cancelled", cancelRequested: true });
    expect((await w.lease(w.tokens.alphaAgent)).body.leases).toEqual([]);
    const again = await w.call<JobBody>("POST", `/v1/jobs/${id}/cancel`, w.tokens.alice);
    expect(again.body.lastSeq).toBe(res.body.lastSeq);
  });

  it("marks a running job cancel_requested and orders its agent to scancel", async () => {
    const w = await createWorld();
    const { id } = await w.submit(w.tokens.alice, { cluster: "alpha" });
    const lease = (await w.lease(w.tokens.alphaAgent, "a1")).body.leases[0]!;
    await w.report(w.tokens.alphaAgent, [{ jobId: id, epoch: lease.epoch, state: "running", slurmJobId: "55" }], "a1");
    const res = await w.call<JobBody>("POST", `/v1/jobs/${id}/cancel`, w.tokens.alice);
    expect(res.body).toMatchObject({ state: "running", cancelRequested: true });
    const job = await w.job(id);
    expect(job.events.at(-1)).toMatchObject({ type: "cancel_requested", actor: "user:alice" });

    expect((await w.lease(w.tokens.alphaAgent, "other")).body.cancels).toEqual([]);
    const orders = await w.lease(w.tokens.alphaAgent, "a1", { holding: [id] });
    expect(orders.body.cancels).toEqual([{ jobId: id, epoch: lease.epoch, slurmJobId: "55" }]);
    const done = await w.report(w.tokens.alphaAgent, [{ jobId: id, epoch: lease.epoch, state: "cancelled" }], "a1");
    expect(done.body.outcomes[0]?.status).toBe("applied");
    expect((await w.lease(w.tokens.alphaAgent, "a1")).body.cancels).toEqual([]);
  });

  it("wakes a long-polling lease call with the cancel order", async () => {
    const w = await createWorld();
    w.deps.recheckMs = 30_000;
    const { id } = await w.submit(w.tokens.alice, { cluster: "alpha" });
    const lease = (await w.lease(w.tokens.alphaAgent, "a1")).body.leases[0]!;
    const started = performance.now();
    const waiting = w.lease(w.tokens.alphaAgent, "a1", { wait: 10, holding: [id] });
    await new Promise((r) => setTimeout(r, 100));
    await w.call("POST", `/v1/jobs/${id}/cancel`, w.tokens.alice);
    const res = await waiting;
    const elapsed = performance.now() - started;
    expect(res.body.cancels).toEqual([{ jobId: id, epoch: lease.epoch, slurmJobId: null }]);
    expect(elapsed).toBeGreaterThanOrEqual(90);
    expect(elapsed).toBeLessThan(2_000);
  });

  it("hands a cancel for a job in Slurm whose agent died to the agent that takes it over", async () => {
    const clock = testClock();
    const w = await createWorld({}, clock);
    const { id } = await w.submit(w.tokens.alice, { cluster: "alpha" });
    const lease = (await w.lease(w.tokens.alphaAgent, "dead")).body.leases[0]!;
    await w.report(
      w.tokens.alphaAgent,
      [{ jobId: id, epoch: lease.epoch, state: "running", slurmJobId: "77" }],
      "dead",
    );
    await w.call("POST", `/v1/jobs/${id}/cancel`, w.tokens.alice);
    clock.advance((w.deps.config.SLURMGATE_LEASE_SECONDS + 1) * 1000);
    const rescue = await w.lease(w.tokens.alphaAgent, "rescuer");
    expect(rescue.body.leases.map((l) => [l.jobId, l.slurmJobId])).toEqual([[id, "77"]]);
    expect(rescue.body.cancels).toEqual([{ jobId: id, epoch: lease.epoch + 1, slurmJobId: "77" }]);
  });

  it("changes nothing on a completed job", async () => {
    const w = await createWorld();
    const { id } = await w.submit(w.tokens.alice);
    const lease = (await w.lease(w.tokens.alphaAgent)).body.leases[0]!;
    await w.report(w.tokens.alphaAgent, [
      { jobId: id, epoch: lease.epoch, state: "completed", slurmJobId: "1", exitCode: 0 },
    ]);
    const before = await w.job(id);
    const res = await w.call<JobBody>("POST", `/v1/jobs/${id}/cancel`, w.tokens.alice);
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({ state: "completed", cancelRequested: false });
    expect(await w.job(id)).toEqual(before);
  });

  it("lets an admin cancel anyone's job", async () => {
    const w = await createWorld();
    const { id } = await w.submit(w.tokens.alice);
    const res = await w.call<JobBody>("POST", `/v1/jobs/${id}/cancel`, w.tokens.admin);
    expect(res.body.state).toBe("cancelled");
    expect((await w.job(id)).events.at(-1)?.actor).toBe("user:root");
  });
});
