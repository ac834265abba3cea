/**
 * Array jobs on real Slurm tell the truth: the job is the fold of ALL its tasks (a failing task
 * makes the job fail, every time), per-task states match sacct, an afterok dependant never runs,
 * and a terminal reason says how the job ended.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { JobTasks } from "../../schemas/index.ts";
import { type E2E, slurm, slurmClusters, startE2E } from "./harness.ts";

let e2e: E2E;
const shared = slurmClusters().alpha.sharedRoot;

beforeAll(async () => {
  e2e = await startE2E();
  e2e.startAgent("alpha");
  e2e.startAgent("beta");
  await e2e.waitClustersAlive();
});

afterAll(async () => {
  await e2e?.close();
});

async function tasksOf(id: string): Promise<JobTasks> {
  const res = await fetch(`${e2e.url}/v1/jobs/${id}/tasks`, { headers: { authorization: `Bearer ${e2e.alice}` } });
  expect(res.status).toBe(200);
  return (await res.json()) as JobTasks;
}

/** sacct's per-task state words and exit codes, once accounting has caught up with every task. */
async function sacctTasks(cluster: "alpha" | "beta", slurmJobId: string, count: number) {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const rows = slurm(cluster, "sacct", ["-X", "-P", "-n", "-o", "JobID,State,ExitCode", "-j", slurmJobId])
      .split("\n")
      .filter((l) => /^\d+_\d+\|/.test(l))
      .map((l) => {
        const [id = "", state = "", exit = ""] = l.split("|");
        return { task: Number(id.split("_")[1]), state: state.split(" ")[0]!, exitCode: Number(exit.split(":")[0]) };
      })
      .sort((a, b) => a.task - b.task);
    const settled = rows.length === count && rows.every((r) => !/PENDING|RUNNING|COMPLETING/.test(r.state));
    if (settled || Date.now() > deadline) {
      return rows;
    }
    await new Promise((r) => setTimeout(r, 1_000));
  }
}

const SACCT_TO_STATE: Record<string, string> = { COMPLETED: "completed", FAILED: "failed" };

describe("array jobs on real Slurm", () => {
  it("reports a 4-task array whose task 2 exits 1 as failed, every time in 20 runs, per-task states as in sacct", async () => {
    const runs = 20;
    const jobs = await Promise.all(
      Array.from({ length: runs }, (_, i) =>
        e2e.submit(e2e.alice, {
          name: `arr-fail-${i}`,
          cluster: i % 2 === 0 ? "alpha" : "beta",
          resources: { time: "5m", memPerNode: "64M" },
          array: { indexes: "0-3" },
          command: ["bash", "-c", 'if [ "$SLURM_ARRAY_TASK_ID" = 2 ]; then exit 1; fi; echo ok'],
        }),
      ),
    );
    const done = await Promise.all(jobs.map((j) => e2e.waitTerminal(e2e.alice, j.id, 420_000)));
    const wrong = done.filter(
      (j) =>
        j.state !== "failed" || j.exitCode !== 1 || j.reason !== "1 of 4 tasks failed (task 2 exited 1); 3 completed",
    );
    expect(wrong.map((j) => `${j.id}: ${j.state} exit ${j.exitCode} (${j.reason})`)).toEqual([]);
    for (const job of done) {
      const tasks = await tasksOf(job.id);
      expect(tasks.counts).toEqual({ completed: 3, failed: 1 });
      const acct = await sacctTasks(job.cluster as "alpha" | "beta", job.slurmJobId!, 4);
      expect(tasks.items.map((t) => [t.task, t.state, t.exitCode])).toEqual(
        acct.map((r) => [r.task, SACCT_TO_STATE[r.state] ?? r.state, r.exitCode]),
      );
    }
  }, 600_000);

  it("never starts an afterok dependant of such an array: it ends rejected with the dependency reason", async () => {
    const marker = join(shared, "alice", `afterok-marker-${Date.now()}`);
    const array = await e2e.submit(e2e.alice, {
      name: "arr-dep",
      cluster: "alpha",
      resources: { time: "5m", memPerNode: "64M" },
      array: { indexes: "0-3" },
      command: ["bash", "-c", 'sleep 4; if [ "$SLURM_ARRAY_TASK_ID" = 2 ]; then exit 1; fi'],
    });
    await e2e.waitFor(e2e.alice, array.id, (j) => j.slurmJobId !== null);
    const dependant = await e2e.submit(e2e.alice, {
      name: "arr-dependant",
      dependsOn: [{ job: array.id, condition: "afterok" }],
      resources: { memPerNode: "64M" },
      command: ["touch", marker],
    });
    const arrayDone = await e2e.waitTerminal(e2e.alice, array.id, 180_000);
    expect(arrayDone.state).toBe("failed");
    const done = await e2e.waitTerminal(e2e.alice, dependant.id, 180_000);
    expect(done).toMatchObject({ state: "rejected", code: "slurm_dependency" });
    expect(done.reason).toMatch(/Dependency|dependency/);
    expect(existsSync(marker)).toBe(false);
  }, 400_000);

  it("counts all 6 tasks of a 6-task array run 2 at a time: all completed, then 2 failed of 6", async () => {
    const spec = (name: string, script: string) => ({
      name,
      cluster: "beta",
      resources: { time: "5m", memPerNode: "64M" },
      array: { indexes: "0-5", maxParallel: 2 },
      command: ["bash", "-c", script],
    });
    const ok = await e2e.submit(e2e.alice, spec("arr-six-ok", "true"));
    const bad = await e2e.submit(e2e.alice, spec("arr-six-bad", "case $SLURM_ARRAY_TASK_ID in 1|4) exit 3 ;; esac"));
    const okDone = await e2e.waitTerminal(e2e.alice, ok.id, 300_000);
    expect(okDone).toMatchObject({ state: "completed", exitCode: 0, reason: "all 6 tasks completed" });
    expect((await tasksOf(ok.id)).counts).toEqual({ completed: 6 });
    const badDone = await e2e.waitTerminal(e2e.alice, bad.id, 300_000);
    expect(badDone).toMatchObject({
      state: "failed",
      exitCode: 3,
      reason: "2 of 6 tasks failed (task 1 exited 3, task 4 exited 3); 4 completed",
    });
    const acct = await sacctTasks("beta", badDone.slurmJobId!, 6);
    expect(acct.map((r) => r.state)).toEqual(["COMPLETED", "FAILED", "COMPLETED", "COMPLETED", "FAILED", "COMPLETED"]);
  }, 400_000);
});

describe("a terminal reason says how the job ended", () => {
  it("names the setup line that failed", async () => {
    const job = await e2e.submit(e2e.alice, {
      name: "setup-fails",
      cluster: "alpha",
      resources: { memPerNode: "64M" },
      setup: ["true", "no-such-command-slurmgate-test"],
      command: ["echo", "never"],
    });
    const done = await e2e.waitTerminal(e2e.alice, job.id, 120_000);
    expect(done).toMatchObject({ state: "failed", exitCode: 127, code: "setup_failed" });
    // The reason quotes what the line said on stderr.
    expect(done.reason).toMatch(
      /^setup line 2 exited 127: \S+: line \d+: no-such-command-slurmgate-test: command not found$/,
    );
    expect(await e2e.logs(e2e.alice, job.id)).toBe("");
  }, 150_000);

  it("says 'exited 3' for a plain failure and never keeps a queue reason", async () => {
    const job = await e2e.submit(e2e.alice, {
      name: "exit-three",
      cluster: "beta",
      resources: { memPerNode: "64M" },
      command: ["bash", "-c", "exit 3"],
    });
    const done = await e2e.waitTerminal(e2e.alice, job.id, 120_000);
    expect(done).toMatchObject({ state: "failed", exitCode: 3, reason: "exited 3", code: "exited_nonzero" });
  }, 150_000);
});
