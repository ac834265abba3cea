/**
 * The lifecycle scenarios of lifecycle.test.ts with both agents in SSH mode: every Slurm command
 * and every job-file operation goes through a real OpenSSH sshd on loopback (test/ssh/sshd.sh),
 * with a pinned host key and a throwaway client key. Plus one exactly-once crash case over SSH.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AgentProcess, type E2E, slurmJobsTagged, sshAgentEnv, startE2E } from "./harness.ts";
import { lifecycleScenarios } from "./scenarios.ts";

let e2e: E2E;
let agents: AgentProcess[];
let ssh: Record<string, string>;

beforeAll(async () => {
  ssh = sshAgentEnv();
  e2e = await startE2E({ SLURMGATE_LEASE_SECONDS: "10" });
  agents = [e2e.startAgent("alpha", ssh), e2e.startAgent("beta", ssh)];
  await e2e.waitClustersAlive();
});

afterAll(async () => {
  await e2e?.close();
});

describe("a job's whole life on real Slurm, agents over SSH", () => {
  it("the agents say they run in SSH mode", async () => {
    const res = await fetch(`${e2e.url}/v1/clusters`, { headers: { authorization: `Bearer ${e2e.admin}` } });
    const { items } = (await res.json()) as { items: { name: string; inventory: { mode: string } | null }[] };
    expect(items.map((c) => c.inventory?.mode)).toEqual(["ssh", "ssh"]);
    expect(agents[0]!.logs()).toMatch(/"msg":"ssh connected"/);
    // SIGUSR1: a status line on stderr.
    agents[0]!.child.kill("SIGUSR1");
    await new Promise((r) => setTimeout(r, 500));
    expect(agents[0]!.logs()).toMatch(/\{"status":\{"agentId":"[^"]+","cluster":"alpha","mode":"ssh"/);
  });

  lifecycleScenarios(() => ({ e2e, agents }), "ssh-");
});

describe("exactly once over SSH", () => {
  it("agent SIGKILLed right after sbatch, restarted on its state file: 0 lost, 0 duplicates", async () => {
    await agents[0]!.stop(); // the crash-prone agent is alpha's only agent for this case
    const job = await e2e.submit(e2e.alice, {
      name: "ssh-crash-after-sbatch",
      cluster: "alpha",
      command: ["bash", "-c", "sleep 1; echo done"],
    });
    const first = e2e.startAgent("alpha", { ...ssh, SLURMGATE_TEST_CRASH_AT: "after-sbatch" });
    const signal = await new Promise<string | null>((resolve) =>
      first.child.once("exit", (_code, sig) => resolve(sig)),
    );
    expect(signal).toBe("SIGKILL");
    const second = e2e.startAgent("alpha", { ...ssh, SLURMGATE_STATE_FILE: first.stateFile });
    const done = await e2e.waitTerminal(e2e.alice, job.id, 90_000);
    await second.stop();
    expect(done.state).toBe("completed");
    expect(await e2e.logs(e2e.alice, job.id)).toBe("done\n");
    expect(slurmJobsTagged("alpha", job.id)).toEqual([done.slurmJobId]);
    expect(second.logs()).toMatch(/found by its tag|"mode":"ssh"/);
  });
});
