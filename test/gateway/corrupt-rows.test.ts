/**
 * Rows written straight into the database that break JobSpec (or are not JSON at all): the lease
 * call that meets one ends it as `rejected` / `invalid_spec` with an event and still serves the
 * valid jobs of the same batch; reads, lists, events, reports and dependencies never answer 500.
 */
import { describe, expect, it } from "vitest";
import { testClock } from "../helpers/gateway.ts";
import { type JobBody, type World, createWorld } from "./world.ts";

/** A stored spec as a valid submission would store it, then broken in one way. */
const CORRUPT_SPECS: Record<string, (valid: Record<string, unknown>) => string> = {
  "workdir with ..": (v) => JSON.stringify({ ...v, workdir: "../../etc" }),
  "workdir absolute": (v) => JSON.stringify({ ...v, workdir: "/etc" }),
  "newline + #SBATCH in the name": (v) => JSON.stringify({ ...v, name: "x\n#SBATCH --uid=0" }),
  "bind source with ..": (v) =>
    JSON.stringify({
      ...v,
      container: { image: "/shared/a.sif", binds: [{ src: "/shared/../etc", readonly: false }], mountHome: true },
    }),
  "partition with shell characters": (v) => JSON.stringify({ ...v, partition: "cpu;rm -rf /" }),
  "not JSON": () => "{name: 'x', command: [",
  "JSON null": () => "null",
  "a JSON array": () => "[1,2,3]",
  "name of the wrong type": (v) => JSON.stringify({ ...v, name: 42 }),
  "cpusPerTask of the wrong type": (v) => JSON.stringify({ ...v, resources: { cpusPerTask: "2" } }),
  "neither command nor script": (v) => JSON.stringify({ ...v, command: undefined }),
  "newline in a setup line": (v) => JSON.stringify({ ...v, setup: ["true\n#SBATCH --uid=0"] }),
};

async function storedSpec(w: World, id: string): Promise<Record<string, unknown>> {
  const rs = await w.db.client.execute({ sql: "SELECT spec FROM jobs WHERE id = ?", args: [id] });
  return JSON.parse(String(rs.rows[0]?.spec));
}

async function corrupt(w: World, id: string, column: string, value: string) {
  await w.db.client.execute({ sql: `UPDATE jobs SET ${column} = ? WHERE id = ?`, args: [value, id] });
}

describe("corrupt stored rows", () => {
  it("rejects each invalid row in the same lease call, with an event, and serves the valid ones", async () => {
    const w = await createWorld();
    const before = await w.submit(w.tokens.alice, { cluster: "alpha", name: "valid-before" });
    const broken: Record<string, string> = {};
    for (const [what, make] of Object.entries(CORRUPT_SPECS)) {
      const { id } = await w.submit(w.tokens.alice, { cluster: "alpha", name: "to-break" });
      await corrupt(w, id, "spec", make(await storedSpec(w, id)));
      broken[what] = id;
    }
    const after = await w.submit(w.tokens.alice, { cluster: "alpha", name: "valid-after" });

    const res = await w.lease(w.tokens.alphaAgent, "agent-1", { max: 100 });
    expect(res.status).toBe(200);
    expect(res.body.leases.map((l) => l.jobId).sort()).toEqual([before.id, after.id].sort());

    for (const [what, id] of Object.entries(broken)) {
      const job = await w.job(id, w.tokens.alice);
      expect({ what, state: job.state, code: (job as JobBody & { code: string }).code }).toEqual({
        what,
        state: "rejected",
        code: "invalid_spec",
      });
      expect(job.reason).toMatch(/stored job spec is (invalid|not JSON)/);
      const last = job.events.at(-1)!;
      expect(last).toMatchObject({ type: "state", state: "rejected", actor: "gateway" });
      expect(last.detail).toBe(job.reason);
    }
    expect((await w.job(broken["workdir with .."]!)).reason).toContain("workdir");
    expect((await w.job(broken["newline + #SBATCH in the name"]!)).reason).toContain("name");

    // Never offered again; the valid ones are held, not stuck.
    expect((await w.lease(w.tokens.alphaAgent, "agent-2", { max: 100 })).body.leases).toEqual([]);
    expect((await w.job(before.id)).state).toBe("leased");
    const report = await w.report(w.tokens.alphaAgent, [
      {
        jobId: after.id,
        epoch: res.body.leases.find((l) => l.jobId === after.id)!.epoch,
        state: "submitted",
        slurmJobId: "77",
      },
    ]);
    expect(report.body.outcomes[0]?.status).toBe("applied");
  });

  it("shows a corrupt live row as it is stored, with spec null and the reason; lists and events still answer", async () => {
    const w = await createWorld();
    const good = await w.submit(w.tokens.alice, { labels: { project: "x" } });
    const bad = await w.submit(w.tokens.alice, { labels: { project: "x" } });
    await corrupt(w, bad.id, "spec", "not json at all");
    const weird = await w.submit(w.tokens.alice);
    await corrupt(w, weird.id, "labels", "{broken");
    await corrupt(w, weird.id, "result", "[oops");
    const ghost = await w.submit(w.tokens.alice);
    await corrupt(w, ghost.id, "state", "sleeping");

    const one = await w.call<Record<string, unknown>>("GET", `/v1/jobs/${bad.id}`, w.tokens.alice);
    expect(one.status).toBe(200);
    expect(one.body).toMatchObject({ state: "queued", spec: null, code: "invalid_spec" });
    expect(one.body.reason).toBe("the stored job spec is not JSON");

    const odd = await w.call<Record<string, unknown>>("GET", `/v1/jobs/${weird.id}`, w.tokens.alice);
    expect(odd.status).toBe(200);
    expect(odd.body).toMatchObject({ state: "queued", labels: {}, result: null, code: null });

    const lost = await w.call<Record<string, unknown>>("GET", `/v1/jobs/${ghost.id}`, w.tokens.alice);
    expect(lost.status).toBe(200);
    expect(lost.body).toMatchObject({ state: "rejected", code: "invalid_spec" });
    expect(lost.body.reason).toContain('"sleeping"');

    for (const query of ["", "?label=project%3Dx", "?state=queued", "?limit=1"]) {
      const list = await w.call<{ items: { id: string }[] }>("GET", `/v1/jobs${query}`, w.tokens.alice);
      expect({ query, status: list.status }).toEqual({ query, status: 200 });
    }
    const all = await w.call<{ items: { id: string }[] }>("GET", "/v1/jobs", w.tokens.alice);
    expect(all.body.items.map((j) => j.id).sort()).toEqual([good.id, bad.id, weird.id, ghost.id].sort());
    const labelled = await w.call<{ items: { id: string }[] }>("GET", "/v1/jobs?label=project%3Dx", w.tokens.alice);
    expect(labelled.body.items.map((j) => j.id).sort()).toEqual([good.id, bad.id].sort());

    const events = await w.call<{ job: { spec: unknown } }>("GET", `/v1/jobs/${bad.id}/events`, w.tokens.alice);
    expect([events.status, events.body.job.spec]).toEqual([200, null]);
    const logs = await w.call("GET", `/v1/jobs/${bad.id}/logs`, w.tokens.alice);
    expect(logs.status).toBe(200);
    const cancel = await w.call<{ state: string }>("POST", `/v1/jobs/${bad.id}/cancel`, w.tokens.alice);
    expect([cancel.status, cancel.body.state]).toEqual([202, "cancelled"]);
  });

  it("keeps a finished job's ending when its spec is corrupt", async () => {
    const w = await createWorld();
    const { id } = await w.submit(w.tokens.alice);
    const lease = (await w.lease(w.tokens.alphaAgent)).body.leases[0]!;
    await w.report(w.tokens.alphaAgent, [{ jobId: id, epoch: lease.epoch, state: "submitted", slurmJobId: "5" }]);
    await w.report(w.tokens.alphaAgent, [{ jobId: id, epoch: lease.epoch, state: "completed", exitCode: 0 }]);
    await corrupt(w, id, "spec", "[]");
    const job = await w.call<Record<string, unknown>>("GET", `/v1/jobs/${id}`, w.tokens.alice);
    expect(job.status).toBe(200);
    expect(job.body).toMatchObject({ state: "completed", exitCode: 0, spec: null, code: null });
  });

  it("applies a report for a job whose spec broke after it was leased, without a retry and without a 500", async () => {
    const w = await createWorld();
    const { id } = await w.submit(w.tokens.alice, { retries: { max: 3, onTimeout: true } });
    const lease = (await w.lease(w.tokens.alphaAgent)).body.leases[0]!;
    await w.report(w.tokens.alphaAgent, [{ jobId: id, epoch: lease.epoch, state: "submitted", slurmJobId: "9" }]);
    await corrupt(w, id, "spec", "{truncated");
    const res = await w.report(w.tokens.alphaAgent, [{ jobId: id, epoch: lease.epoch, state: "timeout" }]);
    expect(res.status).toBe(200);
    expect(res.body.outcomes[0]?.status).toBe("applied");
    const job = await w.job(id);
    expect([job.state, job.attempt]).toEqual(["timeout", 1]);
  });

  it("rejects a taken-over row that reached Slurm, saying its Slurm job is no longer tracked", async () => {
    const clock = testClock();
    const w = await createWorld({ SLURMGATE_LEASE_SECONDS: "30" }, clock);
    const { id } = await w.submit(w.tokens.alice, { cluster: "alpha" });
    const lease = (await w.lease(w.tokens.alphaAgent, "a1")).body.leases[0]!;
    await w.report(
      w.tokens.alphaAgent,
      [{ jobId: id, epoch: lease.epoch, state: "submitted", slurmJobId: "4242" }],
      "a1",
    );
    await corrupt(w, id, "spec", '{"name":7}');
    clock.advance(31_000);
    const taken = await w.lease(w.tokens.alphaAgent, "a2");
    expect([taken.status, taken.body.leases]).toEqual([200, []]);
    const job = await w.job(id);
    expect(job.state).toBe("rejected");
    expect(job.reason).toContain("Slurm job 4242 is no longer tracked");
  });

  it("ends a dependant whose dependency row has an unreadable state instead of failing the lease", async () => {
    const w = await createWorld();
    const first = await w.submit(w.tokens.alice, { cluster: "alpha" });
    const second = await w.submit(w.tokens.alice, { dependsOn: [{ job: first.id, condition: "afterok" }] });
    await corrupt(w, first.id, "state", "zombie");
    const res = await w.lease(w.tokens.alphaAgent, "agent-1", { max: 10 });
    expect(res.status).toBe(200);
    expect(res.body.leases).toEqual([]);
    const job = await w.job(second.id);
    expect(job.state).toBe("rejected");
    expect(job.reason).toContain("unreadable stored state");
  });
});
