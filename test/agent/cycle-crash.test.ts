/**
 * Every crash point of the exactly-once protocol, in milliseconds: `runCycle` through `createAgent`
 * with an in-memory gateway double and an executor that answers Slurm commands from the captured
 * outputs in test/fixtures/slurm (files are real, in a temp directory). A crash is a throw out of
 * the step; then a fresh agent on the same state file runs a cycle. Across both runs each job gets
 * exactly one sbatch and the gateway ends up told its Slurm id. (The real-gateway, real-Slurm
 * versions of these are test/e2e/exactly-once.test.ts and identity-exactly-once.test.ts.)
 */
import { describe, expect, it } from "vitest";
import type { CrashStep } from "../../agent/context.ts";
import type { Lease, LeaseResponse } from "../../agent/gateway-api.ts";
import { BATCH, type World, agentOn, jobId, lease, world } from "./helpers/agent-doubles.ts";

/** Runs one cycle that crashes at `step`, then one cycle of a fresh agent on the same state file. */
async function crashThenRestart(w: World, step: CrashStep, leases: Lease[], afterCrash: Partial<LeaseResponse> = {}) {
  w.gateway.pending.push({ leases });
  const first = await agentOn(w, step);
  await expect(first.runOnce()).rejects.toThrow(`crash at ${step}`);
  w.gateway.pending.push(afterCrash);
  const second = await agentOn(w);
  const stats = await second.runOnce();
  return { first, second, stats };
}

const STEPS: CrashStep[] = ["before-sbatch", "after-sbatch", "before-report"];

describe("exactly once across a crash at every point (plain jobs)", () => {
  it.each(STEPS)("crashed %s: one sbatch in all, and the gateway told its Slurm id", async (step) => {
    const w = world();
    const { second, stats } = await crashThenRestart(w, step, [lease(1)]);
    expect(w.slurm.sbatches()).toHaveLength(1);
    const id = String(w.slurm.queued[0]!.id);
    expect(w.gateway.submittedAs(jobId(1)).at(-1)).toBe(id);
    expect(w.gateway.reports.filter((r) => r.state && r.state !== "submitted" && r.state !== "pending")).toEqual([]);
    expect(stats.errors).toEqual([]);
    expect(second.ctx.state.get(jobId(1))).toMatchObject({ phase: "submitted", slurmJobId: id, epoch: 1 });
  });

  it("before sbatch, nothing was queued: the restarted agent submits it (once) after looking the tag up", async () => {
    const w = world();
    await crashThenRestart(w, "before-sbatch", [lease(1)]);
    const squeueAt = w.slurm.calls.findIndex((c) => c[0] === "squeue");
    const sbatchAt = w.slurm.calls.findIndex((c) => c[0] === "sbatch" && c[1] !== "--version");
    expect(squeueAt).toBeGreaterThanOrEqual(0);
    expect(squeueAt).toBeLessThan(sbatchAt);
  });

  it("after sbatch, before the id was journaled: found by its tag, reported as found, never resubmitted", async () => {
    const w = world();
    await crashThenRestart(w, "after-sbatch", [lease(1)]);
    expect(w.gateway.reports.find((r) => r.state === "submitted")?.reason).toMatch(/found by its tag/);
  });

  it("several jobs, crashed after the first sbatch: each still gets exactly one", async () => {
    const w = world();
    // Job 3 was never journaled: the gateway's lease on it expires, and it comes back as epoch 2.
    await crashThenRestart(w, "after-sbatch", [lease(1), lease(2), lease(3)], { leases: [lease(3, { epoch: 2 })] });
    const tags = w.slurm.queued.map((q) => q.comment).sort();
    expect(tags).toEqual([1, 2, 3].map((i) => `slurmgate:${jobId(i)}:1`));
    for (const i of [1, 2, 3]) {
      expect(w.gateway.submittedAs(jobId(i)).length).toBeGreaterThan(0);
    }
  });
});

describe("a lease renewed under a new epoch after the crash", () => {
  it.each(STEPS)("crashed %s, re-leased as epoch 2: one sbatch, reported under epoch 2", async (step) => {
    const w = world();
    await crashThenRestart(w, step, [lease(1)], { leases: [lease(1, { epoch: 2 })] });
    expect(w.slurm.sbatches()).toHaveLength(1);
    const last = w.gateway.reports.filter((r) => r.jobId === jobId(1) && r.state === "submitted").at(-1);
    expect(last).toMatchObject({ epoch: 2, slurmJobId: String(w.slurm.queued[0]!.id) });
  });

  it("a re-lease (epoch 2) this agent never saw is looked up before sbatch: another agent's submission is adopted", async () => {
    const w = world();
    w.slurm.queued.push({ id: 555, comment: `slurmgate:${jobId(1)}:1`, tasks: null });
    w.gateway.pending.push({ leases: [lease(1, { epoch: 2 })] });
    await (await agentOn(w)).runOnce();
    expect(w.slurm.sbatches()).toHaveLength(0);
    expect(new Set(w.gateway.submittedAs(jobId(1)))).toEqual(new Set(["555"]));
  });
});

describe("a cancel arriving mid-submit", () => {
  it.each(STEPS)("crashed %s, then a cancel order: one sbatch, then scancel of that very job", async (step) => {
    const w = world();
    const cancel = { jobId: jobId(1), epoch: 1, slurmJobId: null };
    await crashThenRestart(w, step, [lease(1)], { cancels: [cancel] });
    // The gateway repeats the order until the job ends; the next cycle kills what the tag resolved.
    w.gateway.pending.push({ cancels: [cancel] });
    const third = await agentOn(w);
    await third.runOnce();
    expect(w.slurm.sbatches()).toHaveLength(1);
    const id = String(w.slurm.queued[0]!.id);
    expect(w.slurm.scancels().flat()).toContain(id);
    expect(third.ctx.state.get(jobId(1))).toMatchObject({ cancelRequested: true, slurmJobId: id });
    expect(w.gateway.reports.filter((r) => r.state === "cancelled")).toEqual([]);
  });
});

describe("sweep batches (one array per batch) across a crash", () => {
  const members = () => [0, 1, 2].map((i) => lease(i, {}, true));

  it.each(STEPS)("crashed %s: one array sbatch in all, every element told its <array>_<index>", async (step) => {
    const w = world();
    await crashThenRestart(w, step, members());
    expect(w.slurm.sbatches()).toHaveLength(1);
    const array = w.slurm.queued[0]!;
    expect(array.comment).toBe(`slurmgate:batch:${BATCH}`);
    expect(array.tasks).toEqual([0, 1, 2]);
    for (const i of [0, 1, 2]) {
      expect(w.gateway.submittedAs(jobId(i)).at(-1)).toBe(`${array.id}_${i}`);
    }
  });

  it("crashed after the array's sbatch, re-leased as epoch 2: adopted by the batch tag", async () => {
    const w = world();
    await crashThenRestart(w, "after-sbatch", members(), { leases: members().map((l) => ({ ...l, epoch: 2 })) });
    expect(w.slurm.sbatches()).toHaveLength(1);
    const array = w.slurm.queued[0]!;
    for (const i of [0, 1, 2]) {
      const last = w.gateway.reports.filter((r) => r.jobId === jobId(i) && r.state === "submitted").at(-1);
      expect(last).toMatchObject({ epoch: 2, slurmJobId: `${array.id}_${i}` });
    }
  });
});
