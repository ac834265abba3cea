/**
 * One-shot agents (`--once`, for cron / scrontab) beside each other and beside a daemon, for one
 * cluster: each run leases some jobs, submits, tracks and exits; the next run on the same state
 * file carries on. Leases and the exactly-once reconciliation must keep every job at exactly one
 * Slurm job. The one-shot runs go over SSH (test/ssh/sshd.sh), the others run locally, as a site
 * with a cron job on one login node and an agent on another would.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Job } from "../../schemas/index.ts";
import { isTerminal } from "../../schemas/index.ts";
import { type E2E, slurmJobsTagged, sshAgentEnv, startE2E } from "./harness.ts";

let e2e: E2E;
let ssh: Record<string, string>;
let dir: string;

beforeAll(async () => {
  ssh = sshAgentEnv();
  e2e = await startE2E();
  dir = mkdtempSync(join(tmpdir(), "slurmgate-once-"));
});

afterAll(async () => {
  await e2e?.close();
});

const small = { SLURMGATE_MAX_LEASE: "2" };

async function submitMany(tag: string, n: number): Promise<Job[]> {
  return Promise.all(
    Array.from({ length: n }, (_, i) =>
      e2e.submit(e2e.alice, {
        name: `${tag}-${i}`,
        cluster: "alpha",
        command: ["bash", "-c", `sleep 1; echo ${tag}-${i}`],
      }),
    ),
  );
}

async function allTerminal(jobs: Job[]): Promise<Job[]> {
  return Promise.all(
    jobs.map(async (j) => {
      const res = await fetch(`${e2e.url}/v1/jobs/${j.id}`, { headers: { authorization: `Bearer ${e2e.alice}` } });
      return (await res.json()) as Job;
    }),
  );
}

async function expectExactlyOnce(jobs: Job[]) {
  const final = await allTerminal(jobs);
  for (const job of final) {
    expect(job.state, `${job.id}: ${job.reason ?? ""}`).toBe("completed");
    expect(await e2e.logs(e2e.alice, job.id)).toBe(`${job.name}\n`);
    expect(slurmJobsTagged("alpha", job.id)).toEqual([job.slurmJobId]);
  }
}

describe("--once runs for one cluster", () => {
  it("two concurrent one-shot runs (different state files): every job submitted exactly once", async () => {
    const jobs = await submitMany("pair", 8);
    const a = { ...ssh, ...small, SLURMGATE_STATE_FILE: join(dir, "once-a.json") };
    const b = { ...small, SLURMGATE_STATE_FILE: join(dir, "once-b.json") };
    const runs: { code: number | null; output: string }[] = [];
    for (let round = 0; round < 40; round++) {
      runs.push(...(await Promise.all([e2e.runAgentOnce("alpha", a), e2e.runAgentOnce("alpha", b)])));
      if ((await allTerminal(jobs)).every((j) => isTerminal(j.state))) {
        break;
      }
      await new Promise((r) => setTimeout(r, 500));
    }
    for (const run of runs) {
      expect(run.code, run.output).toBe(0);
    }
    await expectExactlyOnce(jobs);
    // Both did work: leases of 2 jobs at a time, so neither could take all 8 in one go.
    const submitted = (side: number) =>
      runs
        .filter((_, i) => i % 2 === side)
        .reduce((n, r) => n + Number(/"msg":"cycle".*?"submitted":(\d+)/.exec(r.output)?.[1] ?? 0), 0);
    expect(submitted(0)).toBeGreaterThan(0);
    expect(submitted(1)).toBeGreaterThan(0);
    expect(submitted(0) + submitted(1)).toBe(8);
    expect(runs[0]!.output).toMatch(/ssh connected/);
  });

  it("a one-shot run beside a long-running agent: every job submitted exactly once", async () => {
    const daemon = e2e.startAgent("alpha", small);
    const jobs = await submitMany("beside", 8);
    const once = { ...ssh, ...small, SLURMGATE_STATE_FILE: join(dir, "once-beside.json") };
    const runs: { code: number | null; output: string }[] = [];
    for (let round = 0; round < 40; round++) {
      runs.push(await e2e.runAgentOnce("alpha", once));
      if ((await allTerminal(jobs)).every((j) => isTerminal(j.state))) {
        break;
      }
      await new Promise((r) => setTimeout(r, 300));
    }
    // The one-shot run may leave jobs it submitted for its next run to finish tracking.
    for (let round = 0; round < 20 && !(await allTerminal(jobs)).every((j) => isTerminal(j.state)); round++) {
      runs.push(await e2e.runAgentOnce("alpha", once));
    }
    await daemon.stop();
    for (const run of runs) {
      expect(run.code, run.output).toBe(0);
    }
    await expectExactlyOnce(jobs);
  });
});
