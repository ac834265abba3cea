/**
 * A full controller is back-pressure, not failure, on real Slurm (alpha) with a real gateway and
 * agent. The test clusters run AccountingStorageEnforce=none and MaxJobCount=30000 for everyone
 * else's tests, so neither limit can really be reached here: the agent's sbatch is a wrapper that,
 * while a mode file says so, behaves as sbatch 22.05 does at each limit (the exact texts of sbatch.c
 * and slurm_errno.c, and sbatch's own sleep-and-retry on a full queue), and otherwise runs the real
 * sbatch. Every other Slurm command is the real one.
 */
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type E2E, slurmJobsTagged, startE2E } from "./harness.ts";

const bin = mkdtempSync(join(tmpdir(), "sg-bp-bin-"));
const modeFile = join(bin, "mode");
const callLog = join(bin, "calls");

const WRAPPER = `#!/bin/bash
[[ $1 == --version ]] && exec /usr/bin/sbatch "$@"
echo "$$" >> '${callLog}'
case "$(cat '${modeFile}' 2>/dev/null)" in
  full)
    # slurmctld answered ESLURM_ERROR_ON_DESC_TO_RECORD_COPY: sbatch says so once, then sleeps and retries.
    echo 'sbatch: error: Slurm job queue full, sleeping and retrying' >&2
    for i in $(seq 1 15); do sleep "$i"; done
    echo 'sbatch: error: Batch job submission failed: Unable to create job record, try again' >&2
    exit 1 ;;
  qos)
    echo "sbatch: error: Batch job submission failed: Job violates accounting/QOS policy (job submit limit, user's size and/or time limits)" >&2
    exit 1 ;;
esac
exec /usr/bin/sbatch "$@"
`;

let e2e: E2E;
beforeAll(async () => {
  for (const cmd of ["squeue", "sacct", "scontrol", "scancel", "sinfo", "sacctmgr"]) {
    symlinkSync(`/usr/bin/${cmd}`, join(bin, cmd));
  }
  writeFileSync(join(bin, "sbatch"), WRAPPER);
  chmodSync(join(bin, "sbatch"), 0o755);
  e2e = await startE2E();
}, 60_000);

afterAll(async () => {
  await e2e?.close();
  rmSync(bin, { recursive: true, force: true });
});

const job = (name: string) => ({ name, cluster: "alpha", partition: "cpu", command: ["true"] });
const calls = () => (existsSync(callLog) ? readFileSync(callLog, "utf8").split("\n").filter(Boolean).length : 0);

describe("Slurm refuses new jobs for now", () => {
  it("a full queue (MaxJobCount): jobs wait with the reason, sbatch is stopped, then they run", async () => {
    writeFileSync(modeFile, "full");
    writeFileSync(callLog, "");
    const agent = e2e.startAgent("alpha", { SLURMGATE_SLURM_BIN: bin, SLURMGATE_MAX_LEASE: "10" });
    await e2e.waitClustersAlive(60_000, ["alpha"]);
    const jobs = await Promise.all(["bp-1", "bp-2", "bp-3"].map((n) => e2e.submit(e2e.alice, job(n))));
    const started = Date.now();
    for (const j of jobs) {
      const waiting = await e2e.waitFor(e2e.alice, j.id, (x) => /queue is full/.test(x.reason ?? ""), 30_000);
      expect(waiting.state).toBe("queued");
      expect(waiting.reason).toMatch(/^Slurm's queue is full \(MaxJobCount\): waiting/);
    }
    // Well before sbatch's own two minutes of retries or the agent's 60 s command timeout.
    expect(Date.now() - started).toBeLessThan(20_000);
    // One refusal is enough for the jobs leased with it: not one sbatch per job.
    expect(calls()).toBeLessThanOrEqual(jobs.length);
    // No sbatch process left sleeping, and nothing reached Slurm.
    for (const pid of readFileSync(callLog, "utf8").split("\n").filter(Boolean)) {
      expect(existsSync(`/proc/${pid}`), `sbatch ${pid} still running`).toBe(false);
    }
    for (const j of jobs) {
      expect(slurmJobsTagged("alpha", j.id)).toEqual([]);
    }

    // The queue drains: the same jobs are submitted once each when the gateway offers them again.
    writeFileSync(modeFile, "");
    for (const j of jobs) {
      const done = await e2e.waitTerminal(e2e.alice, j.id, 150_000);
      expect(done.state, done.reason ?? "").toBe("completed");
      expect(slurmJobsTagged("alpha", j.id)).toHaveLength(1);
    }
    await agent.stop();
  }, 240_000);

  it("a submit limit (QOS/association MaxSubmitJobs): the job waits with the reason, never rejected", async () => {
    writeFileSync(modeFile, "qos");
    const agent = e2e.startAgent("alpha", { SLURMGATE_SLURM_BIN: bin });
    await e2e.waitClustersAlive(60_000, ["alpha"]);
    const j = await e2e.submit(e2e.alice, job("bp-qos"));
    const waiting = await e2e.waitFor(e2e.alice, j.id, (x) => /queue is full/.test(x.reason ?? ""), 30_000);
    expect(waiting.state).toBe("queued");
    expect(waiting.reason).toMatch(/^Slurm's queue is full for this user \(MaxSubmitJobs of a QOS or association\)/);
    expect(waiting.code ?? null).toBeNull();
    expect(slurmJobsTagged("alpha", j.id)).toEqual([]);
    await agent.stop();
    await fetch(`${e2e.url}/v1/jobs/${j.id}/cancel`, {
      method: "POST",
      headers: { authorization: `Bearer ${e2e.alice}` },
    });
  }, 120_000);
});
