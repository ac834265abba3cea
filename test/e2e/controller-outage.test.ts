/**
 * RELIABILITY S3, small: slurmctld goes away while jobs are queued and running. Nothing may fail
 * because the controller was unreachable; once it is back, every job is submitted exactly once and
 * runs to completion.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type E2E, REPO, slurmJobsTagged, startE2E } from "./harness.ts";

const TEST_DIR = process.env.SLURMGATE_TEST_DIR ?? "/var/tmp/slurmgate-test";
let e2e: E2E;

const stopController = () => {
  const pid = Number(readFileSync(join(TEST_DIR, "alpha/run/slurmctld.pid"), "utf8"));
  process.kill(pid, "SIGTERM");
};
const restartClusters = () => execFileSync("bash", [join(REPO, "test/slurm/cluster.sh"), "up"], { stdio: "ignore" });

beforeAll(async () => {
  e2e = await startE2E();
});

afterAll(async () => {
  restartClusters();
  await e2e?.close();
});

describe("slurmctld outage", () => {
  it("delays jobs while the controller is down and loses or duplicates none", async () => {
    const agent = e2e.startAgent("alpha", { SLURMGATE_COMMAND_TIMEOUT_SECONDS: "5" });
    await e2e.waitClustersAlive(60_000, ["alpha"]);
    const before = await e2e.submit(e2e.alice, {
      name: "before-outage",
      cluster: "alpha",
      command: ["bash", "-c", "sleep 20; echo survived"],
    });
    await e2e.waitFor(e2e.alice, before.id, (j) => j.state === "running");
    stopController();
    const during = await Promise.all(
      Array.from({ length: 5 }, (_, i) =>
        e2e.submit(e2e.alice, { name: `during-outage-${i}`, cluster: "alpha", command: ["true"] }),
      ),
    );
    // The agent meets the dead controller: its sbatch times out, and the jobs behind it are given
    // back with the reason instead of each waiting out a timeout. Nothing fails meanwhile.
    const deadline = Date.now() + 120_000;
    let waiting: { state: string; reason: string | null }[] = [];
    while (Date.now() < deadline) {
      waiting = await Promise.all(
        [before, ...during].map(async (job) => {
          const res = await fetch(`${e2e.url}/v1/jobs/${job.id}`, {
            headers: { authorization: `Bearer ${e2e.alice}` },
          });
          return (await res.json()) as { state: string; reason: string | null };
        }),
      );
      if (waiting.some((j) => j.state === "queued" && /Slurm did not answer sbatch/.test(j.reason ?? ""))) {
        break;
      }
      await new Promise((r) => setTimeout(r, 1_000));
    }
    expect(waiting.some((j) => j.state === "queued" && /Slurm did not answer sbatch/.test(j.reason ?? ""))).toBe(true);
    expect(
      waiting.map((j) => j.state).every((s) => ["queued", "leased", "submitted", "pending", "running"].includes(s)),
    ).toBe(true);
    // The agent did meet the outage (its sbatch/squeue calls failed) and carried on. The jobs' reason
    // is reported mid-cycle; the cycle's summary line comes only once its squeue has timed out too.
    const logDeadline = Date.now() + 60_000;
    while (!/cycle finished with errors/.test(agent.logs()) && Date.now() < logDeadline) {
      await new Promise((r) => setTimeout(r, 500));
    }
    expect(agent.logs()).toMatch(/cycle finished with errors/);
    restartClusters();
    const done = await Promise.all([before, ...during].map((job) => e2e.waitTerminal(e2e.alice, job.id, 180_000)));
    await agent.stop();
    expect(done.map((j) => j.state)).toEqual(done.map(() => "completed"));
    expect(await e2e.logs(e2e.alice, before.id)).toBe("survived\n");
    for (const job of done) {
      expect(slurmJobsTagged("alpha", job.id)).toEqual([job.slurmJobId]);
    }
  });
});
