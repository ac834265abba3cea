/**
 * Exactly one Slurm job per attempt, whatever happens to the agent around sbatch: the agent is
 * SIGKILLed before sbatch, right after sbatch returned (before it wrote the id down), and after it
 * wrote the id down but before it reported. Then it restarts (same state file), or another agent
 * takes over after the lease expires. Every job must complete, and Slurm must hold exactly one job
 * with its tag.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type E2E, slurmJobsTagged, startE2E } from "./harness.ts";

let e2e: E2E;

beforeAll(async () => {
  e2e = await startE2E({ SLURMGATE_LEASE_SECONDS: "10" });
});

afterAll(async () => {
  await e2e?.close();
});

const exitOf = (child: import("node:child_process").ChildProcess) =>
  new Promise<string | null>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      resolve(child.signalCode);
      return;
    }
    child.once("exit", (_code, signal) => resolve(signal));
  });

describe.each(["before-sbatch", "after-sbatch", "before-report"])("agent killed %s", (step) => {
  it("restarted on the same state file: 0 lost, 0 duplicates", async () => {
    const job = await e2e.submit(e2e.alice, {
      name: `crash-${step}`,
      cluster: "alpha",
      command: ["bash", "-c", "sleep 1; echo done"],
    });
    const first = e2e.startAgent("alpha", { SLURMGATE_TEST_CRASH_AT: step });
    expect(await exitOf(first.child)).toBe("SIGKILL");
    const second = e2e.startAgent("alpha", { SLURMGATE_STATE_FILE: first.stateFile });
    const done = await e2e.waitTerminal(e2e.alice, job.id, 90_000);
    await second.stop();
    expect(done.state).toBe("completed");
    expect(await e2e.logs(e2e.alice, job.id)).toBe("done\n");
    expect(slurmJobsTagged("alpha", job.id)).toEqual([done.slurmJobId]);
  });

  it("taken over by another agent after the lease expired: 0 lost, 0 duplicates", async () => {
    const job = await e2e.submit(e2e.alice, { name: `takeover-${step}`, cluster: "alpha", command: ["true"] });
    const first = e2e.startAgent("alpha", { SLURMGATE_TEST_CRASH_AT: step });
    expect(await exitOf(first.child)).toBe("SIGKILL");
    const other = e2e.startAgent("alpha");
    const done = await e2e.waitTerminal(e2e.alice, job.id, 90_000);
    await other.stop();
    expect(done.state).toBe("completed");
    expect(slurmJobsTagged("alpha", job.id)).toEqual([done.slurmJobId]);
  });
});

describe("several submissions in flight", () => {
  it("an agent with SLURMGATE_SUBMIT_CONCURRENCY=4 still submits every job exactly once", async () => {
    const agent = e2e.startAgent("alpha", { SLURMGATE_SUBMIT_CONCURRENCY: "4", SLURMGATE_MAX_LEASE: "20" });
    const jobs = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        e2e.submit(e2e.alice, { name: `parallel-${i}`, cluster: "alpha", command: ["true"] }),
      ),
    );
    const done = await Promise.all(jobs.map((job) => e2e.waitTerminal(e2e.alice, job.id, 120_000)));
    await agent.stop();
    expect(done.map((j) => j.state)).toEqual(jobs.map(() => "completed"));
    for (const job of done) {
      expect(slurmJobsTagged("alpha", job.id)).toEqual([job.slurmJobId]);
    }
  });
});

describe("two agents on one cluster", () => {
  it("a frozen agent's lease is taken over and its late reports are refused", async () => {
    const frozen = e2e.startAgent("alpha");
    const job = await e2e.submit(e2e.alice, {
      name: "long",
      cluster: "alpha",
      command: ["bash", "-c", "sleep 25; echo finished"],
    });
    const running = await e2e.waitFor(e2e.alice, job.id, (j) => j.state === "running", 60_000);
    frozen.child.kill("SIGSTOP");
    const rescuer = e2e.startAgent("alpha");
    // The rescuer can only get the job once the frozen agent's 10 s lease has expired.
    const takeover = await e2e.waitFor(e2e.alice, job.id, (j) => j.lastSeq > running.lastSeq, 60_000);
    frozen.child.kill("SIGCONT");
    const done = await e2e.waitTerminal(e2e.alice, job.id, 90_000);
    expect(done.state).toBe("completed");
    expect(done.slurmJobId).toBe(running.slurmJobId);
    expect(slurmJobsTagged("alpha", job.id)).toEqual([running.slurmJobId]);
    const history = (await (
      await fetch(`${e2e.url}/v1/jobs/${job.id}`, { headers: { authorization: `Bearer ${e2e.alice}` } })
    ).json()) as {
      events: { actor: string; detail?: string }[];
    };
    expect(history.events.some((e) => e.detail?.startsWith("previous lease expired"))).toBe(true);
    expect(takeover.lastSeq).toBeGreaterThan(running.lastSeq);
    // The woken agent learns it lost the lease and stops reporting on the job.
    await new Promise((r) => setTimeout(r, 4_000));
    expect(frozen.logs()).toMatch(/lease lost/);
    await Promise.all([frozen.stop(), rescuer.stop()]);
  });
});
