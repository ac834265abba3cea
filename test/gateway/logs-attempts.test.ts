/**
 * Logs are kept per attempt and per array task: a retry restarts its files at offset 0 and must not
 * lose (or be lost behind) the earlier attempt's bytes; an array task's log is served on its own.
 */
import { describe, expect, it } from "vitest";
import { type World, createWorld } from "./world.ts";

const b64 = (s: string) => Buffer.from(s).toString("base64");

type Chunk = { data: string; attempt: number; attempts: number; task: number | null; complete: boolean };

async function leased(w: World, extra = {}) {
  const { id } = await w.submit(w.tokens.alice, { cluster: "alpha", ...extra });
  const lease = (await w.lease(w.tokens.alphaAgent)).body.leases.find((l) => l.jobId === id)!;
  return { id, epoch: lease.epoch };
}

const read = (w: World, id: string, query = "") => w.call<Chunk>("GET", `/v1/jobs/${id}/logs${query}`, w.tokens.alice);

describe("logs per attempt", () => {
  it("keeps attempt 1's and attempt 2's logs whole, each under its own attempt", async () => {
    const w = await createWorld();
    const { id, epoch } = await leased(w, { retries: { max: 1, onTimeout: true, backoffSeconds: 0 } });
    await w.report(w.tokens.alphaAgent, [
      {
        jobId: id,
        epoch,
        state: "running",
        slurmJobId: "70",
        logs: [{ stream: "stdout", offset: 0, data: b64("first try\n"), attempt: 1 }],
      },
      {
        jobId: id,
        epoch,
        state: "timeout",
        logs: [{ stream: "stderr", offset: 0, data: b64("killed\n"), attempt: 1 }],
      },
    ]);
    // The agent ships the rest of attempt 1 after the gateway already queued attempt 2.
    const late = await w.report(w.tokens.alphaAgent, [
      { jobId: id, epoch, logs: [{ stream: "stdout", offset: 10, data: b64("more of it\n"), attempt: 1 }] },
    ]);
    expect(late.body.outcomes[0]?.status).toBe("applied");
    expect((await read(w, id, "?attempt=1")).body).toMatchObject({ attempt: 1, attempts: 2, complete: false });

    const second = (await w.lease(w.tokens.alphaAgent)).body.leases[0]!;
    expect(second.attempt).toBe(2);
    await w.report(w.tokens.alphaAgent, [
      {
        jobId: id,
        epoch: second.epoch,
        state: "running",
        slurmJobId: "71",
        logs: [{ stream: "stdout", offset: 0, data: b64("second try\n"), attempt: 2 }],
      },
    ]);
    // Still later: attempt 1's bytes with the old epoch, now that attempt 2 holds the lease.
    await w.report(w.tokens.alphaAgent, [
      { jobId: id, epoch, logs: [{ stream: "stdout", offset: 21, data: b64("tail\n"), attempt: 1 }] },
    ]);
    await w.report(w.tokens.alphaAgent, [{ jobId: id, epoch: second.epoch, state: "completed", exitCode: 0 }]);

    const one = await read(w, id, "?attempt=1");
    expect(one.body).toMatchObject({ data: "first try\nmore of it\ntail\n", attempt: 1, attempts: 2, complete: true });
    expect((await read(w, id, "?attempt=1&stream=stderr")).body.data).toBe("killed\n");
    const latest = await read(w, id);
    expect(latest.body).toMatchObject({ data: "second try\n", attempt: 2, attempts: 2, task: null, complete: true });
    expect((await read(w, id, "?attempt=2")).body.data).toBe("second try\n");

    const job = await w.job(id);
    const details = job.events.map((e) => e.detail ?? "").join("\n");
    expect(details).toContain("attempt 1 (slurm job 70) ended timeout; retrying as attempt 2 of 2");
    expect(details).toContain("slurm job 71");
  });

  it("calls an earlier attempt's log complete only once the next attempt reached Slurm", async () => {
    const w = await createWorld();
    const { id, epoch } = await leased(w, { retries: { max: 2, onTimeout: true, backoffSeconds: 0 } });
    await w.report(w.tokens.alphaAgent, [
      {
        jobId: id,
        epoch,
        state: "running",
        slurmJobId: "80",
        logs: [{ stream: "stdout", offset: 0, data: b64("a\n") }],
      },
      { jobId: id, epoch, state: "timeout" },
    ]);
    expect((await read(w, id, "?attempt=1")).body.complete).toBe(false);
    const second = (await w.lease(w.tokens.alphaAgent)).body.leases[0]!;
    expect((await read(w, id, "?attempt=1")).body.complete).toBe(false);
    await w.report(w.tokens.alphaAgent, [{ jobId: id, epoch: second.epoch, state: "submitted", slurmJobId: "81" }]);
    expect((await read(w, id, "?attempt=1")).body).toMatchObject({ data: "a\n", complete: true });
    expect((await read(w, id)).body).toMatchObject({ data: "", attempt: 2, complete: false });
  });

  it("refuses an attempt the job has not had, and drops bytes claimed for one", async () => {
    const w = await createWorld();
    const { id, epoch } = await leased(w, { retries: { max: 1, onTimeout: true, backoffSeconds: 0 } });
    const res = await w.report(w.tokens.alphaAgent, [
      {
        jobId: id,
        epoch,
        state: "running",
        slurmJobId: "90",
        logs: [
          { stream: "stdout", offset: 0, data: b64("future\n"), attempt: 2 },
          { stream: "stdout", offset: 0, data: b64("now\n"), attempt: 1 },
        ],
      },
    ]);
    expect(res.body.outcomes[0]?.status).toBe("applied");
    const bad = await read(w, id, "?attempt=2");
    expect(bad.status).toBe(422);
    expect(bad.headers.get("content-type")).toContain("application/problem+json");
    expect(bad.body).toMatchObject({ field: "query.attempt" });
    for (const q of ["?attempt=0", "?attempt=x", "?attempt=1.5", "?attempt=-1"]) {
      expect((await read(w, id, q)).status).toBe(422);
    }
    expect((await read(w, id)).body.data).toBe("now\n");
  });

  it("keeps a stale holder's bytes of the current attempt out, as before", async () => {
    const w = await createWorld();
    const { id, epoch } = await leased(w);
    const res = await w.report(w.tokens.alphaAgent, [
      { jobId: id, epoch: epoch + 5, logs: [{ stream: "stdout", offset: 0, data: b64("intruder\n"), attempt: 1 }] },
    ]);
    expect(res.body.outcomes[0]?.status).toBe("stale");
    expect((await read(w, id)).body.data).toBe("");
  });
});

describe("logs per array task", () => {
  it("serves each task's own log and refuses tasks the array does not have", async () => {
    const w = await createWorld();
    const { id, epoch } = await leased(w, { array: { indexes: "1-7:3" } });
    await w.report(w.tokens.alphaAgent, [
      {
        jobId: id,
        epoch,
        state: "running",
        slurmJobId: "95",
        logs: [
          { stream: "stdout", offset: 0, data: b64("task 1\n"), task: 1 },
          { stream: "stdout", offset: 0, data: b64("task 4\n"), task: 4 },
          { stream: "stderr", offset: 0, data: b64("warn 7\n"), task: 7 },
          { stream: "stdout", offset: 0, data: b64("not a task\n"), task: 2 },
        ],
      },
    ]);
    expect((await read(w, id, "?task=1")).body).toMatchObject({ data: "task 1\n", task: 1 });
    expect((await read(w, id, "?task=4")).body.data).toBe("task 4\n");
    expect((await read(w, id, "?task=7&stream=stderr")).body.data).toBe("warn 7\n");
    expect((await read(w, id)).body.data).toBe("");
    for (const task of ["2", "8", "0", "99999"]) {
      const res = await read(w, id, `?task=${task}`);
      expect(res.status).toBe(422);
      expect(res.body).toMatchObject({ field: "query.task" });
      expect(String((res.body as unknown as { detail: string }).detail)).toContain("not in the job's array");
    }
    const { rows } = await w.db.client.execute({ sql: "SELECT stream FROM job_logs WHERE job_id = ?", args: [id] });
    expect(rows.map((r) => r.stream).sort()).toEqual(["stderr.7", "stdout.1", "stdout.4"]);
  });

  it("answers 422 for a task of a job that is not an array", async () => {
    const w = await createWorld();
    const { id, epoch } = await leased(w);
    await w.report(w.tokens.alphaAgent, [
      { jobId: id, epoch, logs: [{ stream: "stdout", offset: 0, data: b64("x\n"), task: 0 }] },
    ]);
    const res = await read(w, id, "?task=0");
    expect(res.status).toBe(422);
    expect(res.body).toMatchObject({ field: "query.task" });
    expect((await read(w, id)).body.data).toBe("");
  });
});
