/**
 * An array job's tasks reach the gateway with the agent's reports, are stored, and are served by
 * GET /v1/jobs/{id}/tasks to whoever may see the job. A terminal job's reason replaces a live one.
 */
import { describe, expect, it } from "vitest";
import { type World, createWorld, expectProblemShape } from "./world.ts";

async function leasedArray(w: World) {
  const { id } = await w.submit(w.tokens.alice, { cluster: "alpha", array: { indexes: "0-3" } });
  const lease = (await w.lease(w.tokens.alphaAgent)).body.leases.find((l) => l.jobId === id)!;
  return { id, epoch: lease.epoch };
}

const task = (t: number, state: string, exitCode: number | null, reason: string | null = null) => ({
  task: t,
  state,
  exitCode,
  signal: null,
  reason,
});

type TasksBody = {
  jobId: string;
  state: string;
  indexes: string | null;
  counts: Record<string, number>;
  items: unknown[];
};

describe("array tasks", () => {
  it("stores the tasks of each report and serves the latest, with counts per state", async () => {
    const w = await createWorld();
    const { id, epoch } = await leasedArray(w);
    const running = [
      task(0, "running", null),
      task(1, "running", null),
      task(2, "pending", null, "Priority"),
      task(3, "pending", null, "Priority"),
    ];
    await w.report(w.tokens.alphaAgent, [
      { jobId: id, epoch, state: "submitted", slurmJobId: "40" },
      { jobId: id, epoch, state: "running", reason: "2 of 4 tasks running; 2 pending", tasks: running },
    ]);
    // Progress while the job stays running is stored too (the state does not change).
    const progressed = [
      task(0, "completed", 0, "exited 0"),
      task(1, "running", null),
      task(2, "running", null),
      task(3, "pending", null),
    ];
    const again = await w.report(w.tokens.alphaAgent, [
      { jobId: id, epoch, state: "running", reason: "2 of 4 tasks running; 1 pending; 1 completed", tasks: progressed },
    ]);
    expect(again.body.outcomes[0]?.status).toBe("applied");
    const mid = await w.call<TasksBody>("GET", `/v1/jobs/${id}/tasks`, w.tokens.alice);
    expect(mid.status).toBe(200);
    expect(mid.body).toMatchObject({
      jobId: id,
      state: "running",
      indexes: "0-3",
      counts: { completed: 1, running: 2, pending: 1 },
    });
    const final = [
      task(0, "completed", 0, "exited 0"),
      task(1, "completed", 0, "exited 0"),
      task(2, "failed", 1, "exited 1"),
      task(3, "completed", 0, "exited 0"),
    ];
    await w.report(w.tokens.alphaAgent, [
      {
        jobId: id,
        epoch,
        state: "failed",
        exitCode: 1,
        reason: "1 of 4 tasks failed (task 2 exited 1); 3 completed",
        tasks: final,
      },
    ]);
    const done = await w.call<TasksBody>("GET", `/v1/jobs/${id}/tasks`, w.tokens.alice);
    expect(done.body).toEqual({
      jobId: id,
      state: "failed",
      indexes: "0-3",
      counts: { completed: 3, failed: 1 },
      items: final,
    });
    expect((await w.job(id)).reason).toBe("1 of 4 tasks failed (task 2 exited 1); 3 completed");
  });

  it("answers 404 for another user's job and for a missing one, like GET /v1/jobs/{id}", async () => {
    const w = await createWorld();
    const { id } = await leasedArray(w);
    expectProblemShape(await w.call("GET", `/v1/jobs/${id}/tasks`, w.tokens.bob), 404);
    expectProblemShape(await w.call("GET", "/v1/jobs/job_00000000000000000000/tasks", w.tokens.alice), 404);
    expectProblemShape(await w.call("GET", `/v1/jobs/${id}/tasks`, undefined), 401);
    expect((await w.call("GET", `/v1/jobs/${id}/tasks`, w.tokens.admin)).status).toBe(200);
  });

  it("serves a plain job and a not-yet-reported array with no tasks", async () => {
    const w = await createWorld();
    const { id } = await w.submit(w.tokens.alice, { cluster: "alpha" });
    expect((await w.call<TasksBody>("GET", `/v1/jobs/${id}/tasks`, w.tokens.alice)).body).toEqual({
      jobId: id,
      state: "queued",
      indexes: null,
      counts: {},
      items: [],
    });
  });

  it("refuses a report with too many or malformed tasks, and reads a corrupt stored column as no tasks", async () => {
    const w = await createWorld();
    const { id, epoch } = await leasedArray(w);
    const many = Array.from({ length: 1_002 }, (_, i) => task(i, "running", null));
    expect((await w.report(w.tokens.alphaAgent, [{ jobId: id, epoch, state: "running", tasks: many }])).status).toBe(
      422,
    );
    const hostile = [{ task: -1, state: "done", exitCode: "0", signal: null, reason: "x".repeat(600) }];
    expect((await w.report(w.tokens.alphaAgent, [{ jobId: id, epoch, state: "running", tasks: hostile }])).status).toBe(
      422,
    );
    await w.db.client.execute({ sql: "UPDATE jobs SET tasks = ? WHERE id = ?", args: ['[{"task":"x"}', id] });
    const res = await w.call<TasksBody>("GET", `/v1/jobs/${id}/tasks`, w.tokens.alice);
    expect(res.status).toBe(200);
    expect(res.body.items).toEqual([]);
  });

  it("drops a live reason (Priority) when the job ends without one, and clears tasks for a retry", async () => {
    const w = await createWorld();
    const { id } = await w.submit(w.tokens.alice, {
      cluster: "alpha",
      array: { indexes: "0-1" },
      retries: { max: 1, onNodeFail: true },
    });
    const epoch = (await w.lease(w.tokens.alphaAgent)).body.leases.find((l) => l.jobId === id)!.epoch;
    await w.report(w.tokens.alphaAgent, [
      {
        jobId: id,
        epoch,
        state: "pending",
        slurmJobId: "41",
        reason: "Priority",
        tasks: [task(0, "pending", null, "Priority")],
      },
    ]);
    expect((await w.job(id)).reason).toBe("Priority");
    await w.report(w.tokens.alphaAgent, [
      { jobId: id, epoch, state: "node_fail", tasks: [task(0, "node_fail", null)] },
    ]);
    const retried = await w.job(id);
    expect(retried).toMatchObject({ state: "queued", attempt: 2 });
    expect((await w.call<TasksBody>("GET", `/v1/jobs/${id}/tasks`, w.tokens.alice)).body.items).toEqual([]);
    const plain = await w.submit(w.tokens.alice, { cluster: "alpha" });
    const e2 = (await w.lease(w.tokens.alphaAgent)).body.leases.find((l) => l.jobId === plain.id)!.epoch;
    await w.report(w.tokens.alphaAgent, [
      { jobId: plain.id, epoch: e2, state: "pending", slurmJobId: "42", reason: "Priority" },
    ]);
    await w.report(w.tokens.alphaAgent, [{ jobId: plain.id, epoch: e2, state: "completed", exitCode: 0 }]);
    expect((await w.job(plain.id)).reason).toBeNull();
  });
});
