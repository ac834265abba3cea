/**
 * The lifecycle scenarios of lifecycle.test.ts with both agents in SSH mode: every Slurm command
 * and every job-file operation goes through a real OpenSSH sshd on loopback (test/ssh/sshd.sh),
 * with a pinned host key and a throwaway client key. Plus one exactly-once crash case over SSH.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AgentProcess, type E2E, slurm, slurmJobsTagged, sshAgentEnv, startE2E } from "./harness.ts";

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

  it("routes by GPU type, runs, and returns state, exit code, logs and result", async () => {
    const h100 = await e2e.submit(e2e.alice, {
      name: "ssh-gpu-h100",
      partition: "gpu",
      resources: { gpus: { count: 1, type: "h100" }, time: "5m" },
      command: [
        "bash",
        "-c",
        'echo "gpus=$CUDA_VISIBLE_DEVICES job=$SLURMGATE_JOB_ID"; echo warn >&2; printf \'{"loss":0.25}\' > "$SLURMGATE_RESULT"',
      ],
    });
    const a100 = await e2e.submit(e2e.alice, {
      name: "ssh-gpu-a100",
      partition: "gpu",
      resources: { gpus: { count: 2, type: "a100" }, time: "5m" },
      command: ["printf", "%s\\n", "it's $HOME `id`", "a  b"],
    });
    expect(h100.cluster).toBe("beta");
    expect(a100.cluster).toBe("alpha");
    const done = await e2e.waitTerminal(e2e.alice, h100.id);
    expect(done.state).toBe("completed");
    expect(done.exitCode).toBe(0);
    expect(done.slurmJobId).toMatch(/^\d+$/);
    expect(done.result).toEqual({ loss: 0.25 });
    expect(await e2e.logs(e2e.alice, h100.id)).toMatch(new RegExp(`^gpus=\\d job=${h100.id}\\n$`));
    expect(await e2e.logs(e2e.alice, h100.id, "stderr")).toBe("warn\n");
    expect((await e2e.waitTerminal(e2e.alice, a100.id)).state).toBe("completed");
    expect(await e2e.logs(e2e.alice, a100.id)).toBe("it's $HOME `id`\na  b\n");
    expect(slurmJobsTagged("beta", h100.id)).toEqual([done.slurmJobId]);
    expect(slurmJobsTagged("alpha", h100.id)).toEqual([]);
  });

  it("reports a non-zero exit as failed with its exit code", async () => {
    const job = await e2e.submit(e2e.alice, { name: "ssh-exit3", cluster: "alpha", command: ["bash", "-c", "exit 3"] });
    const done = await e2e.waitTerminal(e2e.alice, job.id);
    expect(done.state).toBe("failed");
    expect(done.exitCode).toBe(3);
  });

  it("reports a job over its memory as out_of_memory", async () => {
    const job = await e2e.submit(e2e.alice, {
      name: "ssh-oom",
      cluster: "alpha",
      resources: { memPerNode: "64M", time: "2m" },
      command: ["python3", "-c", "x = bytearray(400 * 1024 * 1024); import time; time.sleep(5)"],
    });
    const done = await e2e.waitTerminal(e2e.alice, job.id, 120_000);
    expect(["out_of_memory", "failed"]).toContain(done.state);
    if (e2e.cgroupMode() === "v1") {
      expect(done.state).toBe("out_of_memory");
    }
  });

  it("cancels a running job with scancel and Slurm ends it", async () => {
    const job = await e2e.submit(e2e.alice, { name: "ssh-sleeper", cluster: "alpha", command: ["sleep", "300"] });
    const running = await e2e.waitFor(e2e.alice, job.id, (j) => j.state === "running");
    const res = await fetch(`${e2e.url}/v1/jobs/${job.id}/cancel`, {
      method: "POST",
      headers: { authorization: `Bearer ${e2e.alice}` },
    });
    expect(res.status).toBe(202);
    const done = await e2e.waitTerminal(e2e.alice, job.id);
    expect(done.state).toBe("cancelled");
    const state = slurm("alpha", "sacct", ["-X", "-P", "-n", "-o", "State", "-j", running.slurmJobId!]).trim();
    expect(state).toMatch(/^CANCELLED/);
  });

  it("keeps agents on their own cluster: beta's agent never ran alpha's jobs", () => {
    expect(agents[1]!.logs()).not.toMatch(/"cluster":"alpha"/);
  });
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
