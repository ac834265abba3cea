/**
 * A request's reports are applied with one read and one write (store/reports.ts applyReportBatch):
 * the outcomes, jobs, events and logs must be exactly those of applying each report on its own, in
 * order, whatever the mix (several reports of one job, stale epochs, illegal moves, unknown jobs,
 * logs), and a job that changes between the read and the write is decided again.
 */
import { createHash } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { testClock } from "../helpers/gateway.ts";
import { type World, createWorld } from "./world.ts";

const b64 = (s: string) => Buffer.from(s).toString("base64");
const JOBS = 3;

type Step = {
  job: number;
  epochShift: 0 | 0 | -1 | 1;
  state?: string;
  slurmJobId?: string;
  exitCode?: number;
  log?: { offset: number; text: string };
};

const step: fc.Arbitrary<Step> = fc.record(
  {
    job: fc.integer({ min: 0, max: JOBS }), // JOBS: a job no one submitted
    epochShift: fc.constantFrom<0 | -1 | 1>(0, 0, 0, -1, 1),
    state: fc.constantFrom("submitted", "pending", "running", "completed", "failed", "timeout", "queued"),
    slurmJobId: fc.constantFrom("100", "101"),
    exitCode: fc.integer({ min: 0, max: 2 }),
    log: fc.record({ offset: fc.constantFrom(0, 3, 6), text: fc.constantFrom("abc", "abcdef", "xyz") }),
  },
  { requiredKeys: ["job", "epochShift"] },
);

/** A world with JOBS leased jobs (one retries a timeout once) on a clock that stands still. */
async function leasedWorld() {
  const w = await createWorld({}, testClock());
  const jobs: { id: string; epoch: number }[] = [];
  for (let i = 0; i < JOBS; i++) {
    const extra = i === 0 ? { retries: { max: 1, onTimeout: true } } : {};
    jobs.push({ id: (await w.submit(w.tokens.alice, { cluster: "alpha", name: `b${i}`, ...extra })).id, epoch: 0 });
  }
  const leases = (await w.lease(w.tokens.alphaAgent)).body.leases;
  for (const job of jobs) {
    job.epoch = leases.find((l) => l.jobId === job.id)!.epoch;
  }
  return { w, jobs };
}

function reportsOf(steps: Step[], jobs: { id: string; epoch: number }[]) {
  return steps.map((s) => {
    const job = jobs[s.job] ?? { id: "job_00000000000000000000", epoch: 1 };
    return {
      jobId: job.id,
      epoch: job.epoch + s.epochShift,
      ...(s.state ? { state: s.state } : {}),
      ...(s.slurmJobId ? { slurmJobId: s.slurmJobId } : {}),
      ...(s.exitCode !== undefined && s.state && ["completed", "failed"].includes(s.state)
        ? { exitCode: s.exitCode }
        : {}),
      logs: s.log ? [{ stream: "stdout", offset: s.log.offset, data: b64(s.log.text) }] : [],
    };
  });
}

/** Everything a report can change, with the job's id replaced by its place, and no timestamps. */
async function snapshot(w: World, ids: string[]) {
  const out = [];
  for (const [i, id] of ids.entries()) {
    const job = await w.job(id);
    const logs = await w.db.client.execute({
      sql: "SELECT stream, offset, hex(data) AS data FROM job_logs WHERE job_id = ? ORDER BY stream, offset",
      args: [id],
    });
    out.push({
      job: i,
      state: job.state,
      attempt: job.attempt,
      slurmJobId: job.slurmJobId,
      exitCode: job.exitCode,
      reason: job.reason,
      lastSeq: job.lastSeq,
      events: job.events.map(({ seq, type, state, detail, actor }) => ({ seq, type, state, detail, actor })),
      logs: logs.rows.map((r) => ({ ...r })),
    });
  }
  return out;
}

const placeOf = (ids: string[]) => (o: { jobId: string }) => ({ ...o, jobId: String(ids.indexOf(o.jobId)) });

describe("a request's reports in one read and one write", () => {
  it("ends exactly as applying each report in its own request, in order (property)", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 12 }), async (steps) => {
        const together = await leasedWorld();
        const apart = await leasedWorld();
        const batch = await together.w.report(together.w.tokens.alphaAgent, reportsOf(steps, together.jobs));
        expect(batch.status).toBe(200);
        const one = [];
        for (const report of reportsOf(steps, apart.jobs)) {
          const res = await apart.w.report(apart.w.tokens.alphaAgent, [report]);
          expect(res.status).toBe(200);
          one.push(res.body.outcomes[0]!);
        }
        const togetherIds = together.jobs.map((j) => j.id);
        const apartIds = apart.jobs.map((j) => j.id);
        expect(batch.body.outcomes.map(placeOf(togetherIds))).toEqual(one.map(placeOf(apartIds)));
        expect(await snapshot(together.w, togetherIds)).toEqual(await snapshot(apart.w, apartIds));
      }),
      { numRuns: 40 },
    );
  }, 120_000);

  it("decides again for a job cancelled between the read and the write, and keeps its history whole", async () => {
    const { w, jobs } = await leasedWorld();
    const [first, second] = jobs as [{ id: string; epoch: number }, { id: string; epoch: number }];
    const write = w.db.write;
    let raced = false;
    w.db.write = async (statements) => {
      // The first write carrying both reports: the user cancels the first job just before it lands.
      if (!raced && statements.length >= 4) {
        raced = true;
        const cancel = await w.call("POST", `/v1/jobs/${first.id}/cancel`, w.tokens.alice);
        expect(cancel.status).toBeLessThan(300);
      }
      return write(statements);
    };
    const out = await w.report(w.tokens.alphaAgent, [
      { jobId: first.id, epoch: first.epoch, state: "submitted", slurmJobId: "200" },
      { jobId: second.id, epoch: second.epoch, state: "submitted", slurmJobId: "201" },
    ]);
    w.db.write = write;
    expect(out.status, JSON.stringify(out.body)).toBe(200);
    expect(raced).toBe(true);
    // Only a fresh read knows of the cancel: the agent is told to cancel what it just submitted.
    expect(out.body.outcomes).toEqual([
      { jobId: first.id, status: "applied", cancelRequested: true },
      { jobId: second.id, status: "applied", cancelRequested: false },
    ]);
    for (const { id } of [first, second]) {
      const job = await w.job(id);
      expect(job.state).toBe("submitted");
      expect(job.events.map((e) => e.seq)).toEqual(job.events.map((_, i) => i + 1));
      expect(job.lastSeq).toBe(job.events.length);
    }
    expect((await w.job(first.id)).events.filter((e) => e.state === "submitted")).toHaveLength(1);
  });

  it("a lone report racing a cancel is decided again instead of failing on the cancel's event", async () => {
    const { w, jobs } = await leasedWorld();
    const job = jobs[1]!;
    const write = w.db.write;
    let raced = false;
    w.db.write = async (statements) => {
      if (!raced && statements.some((s) => typeof s !== "string" && /slurm_job_id = \?/.test(s.sql))) {
        raced = true;
        expect((await w.call("POST", `/v1/jobs/${job.id}/cancel`, w.tokens.alice)).status).toBeLessThan(300);
      }
      return write(statements);
    };
    const out = await w.report(w.tokens.alphaAgent, [
      { jobId: job.id, epoch: job.epoch, state: "submitted", slurmJobId: "300" },
    ]);
    w.db.write = write;
    expect(raced).toBe(true);
    expect(out.status, JSON.stringify(out.body)).toBe(200);
    expect(out.body.outcomes).toEqual([{ jobId: job.id, status: "applied", cancelRequested: true }]);
    const after = await w.job(job.id);
    expect(after.events.map((e) => e.seq)).toEqual(after.events.map((_, i) => i + 1));
    expect(after.events.filter((e) => e.type === "cancel_requested")).toHaveLength(1);
  });

  it("reads every job of a 500-report request at once and writes once, the script body it names included", async () => {
    const { w } = await leasedWorld();
    const ids: string[] = [];
    for (let i = 0; i < 500; i++) {
      ids.push((await w.submit(w.tokens.alice, { cluster: "alpha", name: `m${i}` })).id);
    }
    const epochs = new Map<string, number>();
    for (let round = 0; round < 5; round++) {
      const body = (
        await w.call<{ leases: { jobId: string; epoch: number }[] }>("POST", "/v1/agent/lease", w.tokens.alphaAgent, {
          agentId: "agent-1",
          max: 100,
          wait: 0,
        })
      ).body;
      for (const l of body.leases) {
        epochs.set(l.jobId, l.epoch);
      }
    }
    const calls: string[] = [];
    const { execute, batch } = w.db.client;
    w.db.client.execute = ((stmt: string | { sql: string }) => {
      if (/FROM jobs WHERE id/.test(typeof stmt === "string" ? stmt : stmt.sql)) {
        calls.push("read");
      }
      return execute.call(w.db.client, stmt as Parameters<typeof execute>[0]);
    }) as typeof execute;
    w.db.client.batch = ((stmts: Parameters<typeof batch>[0], mode?: Parameters<typeof batch>[1]) => {
      calls.push(`write ${stmts.length}`);
      return batch.call(w.db.client, stmts, mode);
    }) as typeof batch;
    const body = "# the wrapper's fixed body\n".repeat(100);
    const sha256 = createHash("sha256").update(body).digest("hex");
    const out = await w.call<{ outcomes: { status: string }[] }>("POST", "/v1/agent/reports", w.tokens.alphaAgent, {
      agentId: "agent-1",
      reports: ids.map((id, i) => ({
        jobId: id,
        epoch: epochs.get(id)!,
        state: "submitted",
        slurmJobId: String(1000 + i),
        script: `#!/bin/bash\n# job ${i}\n`,
        scriptBody: sha256,
      })),
      scriptBodies: { [sha256]: body },
    });
    w.db.client.execute = execute;
    w.db.client.batch = batch;
    expect(out.status).toBe(200);
    expect(out.body.outcomes.every((o) => o.status === "applied")).toBe(true);
    expect(calls).toEqual(["read", "write 1001"]);
    expect((await w.job(ids[499]!)).slurmJobId).toBe("1499");
    const script = await w.request("GET", `/v1/jobs/${ids[499]}/script`, { token: w.tokens.alice });
    expect(await script.text()).toBe(`#!/bin/bash\n# job 499\n${body}`);
  });
});
