/**
 * Agent reports: idempotent, fenced, never rewriting a terminal state, applying the retry policy,
 * storing logs as one contiguous prefix and the result JSON. The job is the fold of its events.
 */
import { describe, expect, it } from "vitest";
import { testClock } from "../helpers/gateway.ts";
import { type JobBody, type World, createWorld } from "./world.ts";

const b64 = (s: string) => Buffer.from(s).toString("base64");

async function leased(w: World, extra = {}) {
  const { id } = await w.submit(w.tokens.alice, { cluster: "alpha", ...extra });
  const lease = (await w.lease(w.tokens.alphaAgent)).body.leases.find((l) => l.jobId === id)!;
  return { id, epoch: lease.epoch };
}

async function eventCount(w: World, id: string) {
  const rs = await w.db.client.execute({ sql: "SELECT count(*) AS n FROM job_events WHERE job_id = ?", args: [id] });
  return Number(rs.rows[0]?.n);
}

function expectFold(job: JobBody) {
  const states = job.events.filter((e) => e.type === "state");
  expect(states.at(-1)?.state).toBe(job.state);
  expect(job.events.map((e) => e.seq)).toEqual(job.events.map((_, i) => i + 1));
  expect(job.lastSeq).toBe(job.events.length);
}

describe("reports", () => {
  it("walks a job to completed and stores exit code and result", async () => {
    const w = await createWorld();
    const { id, epoch } = await leased(w);
    const out = await w.report(w.tokens.alphaAgent, [
      { jobId: id, epoch, state: "submitted", slurmJobId: "100", script: "#!/bin/bash\necho hi\n" },
      { jobId: id, epoch, state: "pending" },
      { jobId: id, epoch, state: "running" },
      { jobId: id, epoch, state: "completed", exitCode: 0, result: { accuracy: 0.93, tags: ["a"] } },
    ]);
    expect(out.body.outcomes.map((o) => o.status)).toEqual(["applied", "applied", "applied", "applied"]);
    const job = await w.job(id, w.tokens.alice);
    expect(job).toMatchObject({ state: "completed", slurmJobId: "100", exitCode: 0 });
    expect(job.result).toEqual({ accuracy: 0.93, tags: ["a"] });
    expect(job.events.filter((e) => e.type === "state").map((e) => e.state)).toEqual([
      "queued",
      "leased",
      "submitted",
      "pending",
      "running",
      "completed",
    ]);
    expectFold(job);
  });

  it("answers a repeated report with duplicate and adds no event", async () => {
    const w = await createWorld();
    const { id, epoch } = await leased(w);
    const report = { jobId: id, epoch, state: "submitted", slurmJobId: "5" };
    expect((await w.report(w.tokens.alphaAgent, [report])).body.outcomes[0]?.status).toBe("applied");
    const events = await eventCount(w, id);
    const before = await w.job(id);
    expect((await w.report(w.tokens.alphaAgent, [report])).body.outcomes[0]?.status).toBe("duplicate");
    expect(await eventCount(w, id)).toBe(events);
    expect(await w.job(id)).toEqual(before);
  });

  it("refuses illegal transitions and never rewrites a terminal state", async () => {
    const w = await createWorld();
    const { id, epoch } = await leased(w);
    await w.report(w.tokens.alphaAgent, [{ jobId: id, epoch, state: "running", slurmJobId: "6" }]);
    const back = await w.report(w.tokens.alphaAgent, [{ jobId: id, epoch, state: "submitted" }]);
    expect(back.body.outcomes[0]).toMatchObject({ status: "illegal", detail: "running → submitted is not allowed" });
    await w.report(w.tokens.alphaAgent, [{ jobId: id, epoch, state: "completed", exitCode: 0 }]);
    const before = await w.job(id);
    for (const state of ["cancelled", "failed", "running", "queued"]) {
      const res = await w.report(w.tokens.alphaAgent, [{ jobId: id, epoch, state, exitCode: 1 }]);
      expect(res.body.outcomes[0]?.status).toBe("illegal");
    }
    expect(await w.job(id)).toEqual(before);
    expectFold(before);
  });

  it("answers not_found for another cluster's job and for unknown jobs", async () => {
    const w = await createWorld();
    const { id, epoch } = await leased(w);
    const res = await w.report(w.tokens.betaAgent, [
      { jobId: id, epoch, state: "running" },
      { jobId: "job_0000000000000000000000zzzz", epoch: 1, state: "running" },
    ]);
    expect(res.body.outcomes.map((o) => o.status)).toEqual(["not_found", "not_found"]);
    expect((await w.job(id)).state).toBe("leased");
  });

  it("retries a timeout as a new attempt while retries.max allows, then stays timed out", async () => {
    const clock = testClock();
    const w = await createWorld({}, clock);
    const { id, epoch } = await leased(w, { retries: { max: 1, onTimeout: true } });
    await w.report(w.tokens.alphaAgent, [
      { jobId: id, epoch, state: "running", slurmJobId: "7" },
      { jobId: id, epoch, state: "timeout" },
    ]);
    let job = await w.job(id);
    expect(job).toMatchObject({ state: "queued", attempt: 2, slurmJobId: null });
    expect(job.reason).toMatch(/attempt 1 \(slurm job 7\) ended timeout; retrying as attempt 2 of 2 in 10 s/);
    expect(job.events.slice(-2).map((e) => e.state)).toEqual(["timeout", "queued"]);
    expectFold(job);
    // The default backoff holds the retry 10 s: not leased before, leased after.
    clock.advance(9_000);
    expect((await w.lease(w.tokens.alphaAgent)).body.leases).toEqual([]);
    clock.advance(1_000);

    const second = (await w.lease(w.tokens.alphaAgent)).body.leases[0]!;
    expect(second).toMatchObject({ jobId: id, attempt: 2, slurmJobId: null, epoch: epoch + 1 });
    await w.report(w.tokens.alphaAgent, [
      { jobId: id, epoch: second.epoch, state: "running", slurmJobId: "8" },
      { jobId: id, epoch: second.epoch, state: "timeout" },
    ]);
    job = await w.job(id);
    expect(job).toMatchObject({ state: "timeout", attempt: 2, slurmJobId: "8" });
    expectFold(job);
  });

  it("doubles the wait with each attempt (backoffSeconds × 2^(n−1)); 0 retries at once", async () => {
    const clock = testClock();
    const w = await createWorld({}, clock);
    const first = await leased(w, { retries: { max: 3, onNodeFail: true, backoffSeconds: 4 } });
    const id = first.id;
    let epoch = first.epoch;
    const waits: number[] = [];
    for (let attempt = 1; attempt <= 3; attempt++) {
      await w.report(w.tokens.alphaAgent, [{ jobId: id, epoch, state: "node_fail", slurmJobId: String(attempt) }]);
      const started = clock.now();
      let lease = (await w.lease(w.tokens.alphaAgent)).body.leases[0];
      while (!lease) {
        clock.advance(1_000);
        lease = (await w.lease(w.tokens.alphaAgent)).body.leases[0];
      }
      waits.push(clock.now() - started);
      epoch = lease.epoch;
    }
    expect(waits).toEqual([4_000, 8_000, 16_000]);

    const now = await leased(w, { retries: { max: 1, onNodeFail: true, backoffSeconds: 0 } });
    await w.report(w.tokens.alphaAgent, [{ jobId: now.id, epoch: now.epoch, state: "node_fail" }]);
    expect((await w.job(now.id)).reason).toMatch(/retrying as attempt 2 of 2$/);
    expect((await w.lease(w.tokens.alphaAgent)).body.leases.map((l) => l.jobId)).toEqual([now.id]);
  });

  it("does not retry a timeout when the policy does not cover it", async () => {
    const w = await createWorld();
    const { id, epoch } = await leased(w, { retries: { max: 3 } });
    await w.report(w.tokens.alphaAgent, [{ jobId: id, epoch, state: "timeout", slurmJobId: "9" }]);
    expect((await w.job(id)).state).toBe("timeout");
  });

  it("gives a job back to the queue under back-pressure and holds it for retryAfterSeconds", async () => {
    const clock = testClock();
    const w = await createWorld({}, clock);
    const { id, epoch } = await leased(w);
    const res = await w.report(w.tokens.alphaAgent, [
      { jobId: id, epoch, requeue: { reason: "MaxJobCount reached", retryAfterSeconds: 30 } },
    ]);
    expect(res.body.outcomes[0]?.status).toBe("applied");
    const job = await w.job(id, w.tokens.alice);
    expect(job).toMatchObject({ state: "queued", reason: "MaxJobCount reached" });
    expectFold(job);
    expect((await w.lease(w.tokens.alphaAgent)).body.leases).toEqual([]);
    clock.advance(30_000);
    const again = await w.lease(w.tokens.alphaAgent);
    expect(again.body.leases.map((l) => [l.jobId, l.epoch])).toEqual([[id, epoch + 1]]);
    const submitted = await w.report(w.tokens.alphaAgent, [
      { jobId: id, epoch: epoch + 1, state: "submitted", slurmJobId: "1" },
    ]);
    const requeueLate = await w.report(w.tokens.alphaAgent, [
      { jobId: id, epoch: epoch + 1, requeue: { reason: "late", retryAfterSeconds: 5 } },
    ]);
    expect(submitted.body.outcomes[0]?.status).toBe("applied");
    expect(requeueLate.body.outcomes[0]?.status).toBe("illegal");
  });

  it("appends logs idempotently as one contiguous prefix", async () => {
    const w = await createWorld();
    const { id, epoch } = await leased(w);
    const send = (offset: number, text: string, stream = "stdout") =>
      w.report(w.tokens.alphaAgent, [{ jobId: id, epoch, logs: [{ stream, offset, data: b64(text) }] }]);
    await send(0, "hello ");
    await send(0, "hello ");
    await send(6, "world\n");
    await send(100, "gap");
    await send(3, "lo world\n");
    await send(0, "oops", "stderr");
    const read = async (query: string) =>
      (
        await w.call<{ data: string; nextOffset: number; complete: boolean }>(
          "GET",
          `/v1/jobs/${id}/logs${query}`,
          w.tokens.alice,
        )
      ).body;
    expect(await read("")).toMatchObject({ data: "hello world\n", nextOffset: 12, complete: false });
    expect(await read("?offset=6&limit=3")).toMatchObject({ data: "wor", nextOffset: 9 });
    expect(await read("?stream=stderr")).toMatchObject({ data: "oops" });
    expect(await read("?offset=12")).toMatchObject({ data: "", nextOffset: 12 });
    const rows = await w.db.client.execute({ sql: "SELECT count(*) AS n FROM job_logs WHERE job_id = ?", args: [id] });
    expect(Number(rows.rows[0]?.n)).toBe(3);

    await w.report(w.tokens.alphaAgent, [
      {
        jobId: id,
        epoch,
        state: "completed",
        exitCode: 0,
        slurmJobId: "3",
        logs: [{ stream: "stdout", offset: 12, data: b64("bye\n") }],
      },
    ]);
    expect(await read("")).toMatchObject({ data: "hello world\nbye\n", complete: true });
  });
});
