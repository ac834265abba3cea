/**
 * The lifecycle scenarios every agent mode must pass (local: lifecycle.test.ts, SSH:
 * ssh-lifecycle.test.ts). Each registers its own `it` against the E2E world the file set up.
 */
import { expect, it } from "vitest";
import { type AgentProcess, type E2E, slurm, slurmJobsTagged } from "./harness.ts";

export function lifecycleScenarios(world: () => { e2e: E2E; agents: AgentProcess[] }, prefix: string) {
  it("routes by GPU type, runs, and returns state, exit code, logs and result", async () => {
    const { e2e } = world();
    const h100 = await e2e.submit(e2e.alice, {
      name: `${prefix}gpu-h100`,
      partition: "gpu",
      resources: { gpus: { count: 1, type: "h100" }, time: "5m" },
      command: [
        "bash",
        "-c",
        'echo "gpus=$CUDA_VISIBLE_DEVICES job=$SLURMGATE_JOB_ID"; echo warn >&2; printf \'{"loss":0.25}\' > "$SLURMGATE_RESULT"',
      ],
    });
    const a100 = await e2e.submit(e2e.alice, {
      name: `${prefix}gpu-a100`,
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
    // Slurm agrees: exactly one Slurm job carries each job's tag, on the routed cluster.
    expect(slurmJobsTagged("beta", h100.id)).toEqual([done.slurmJobId]);
    expect(slurmJobsTagged("alpha", h100.id)).toEqual([]);
  });

  it("reports a non-zero exit as failed with its exit code", async () => {
    const { e2e } = world();
    const job = await e2e.submit(e2e.alice, {
      name: `${prefix}exit3`,
      cluster: "alpha",
      command: ["bash", "-c", "exit 3"],
    });
    const done = await e2e.waitTerminal(e2e.alice, job.id);
    expect(done.state).toBe("failed");
    expect(done.exitCode).toBe(3);
    expect(done.reason).toBe("exited 3");
  });

  it("reports a job over its memory as out_of_memory", async () => {
    const { e2e } = world();
    const job = await e2e.submit(e2e.alice, {
      name: `${prefix}oom`,
      cluster: "alpha",
      resources: { memPerNode: "64M", time: "2m" },
      command: ["python3", "-c", "x = bytearray(400 * 1024 * 1024); import time; time.sleep(5)"],
    });
    const done = await e2e.waitTerminal(e2e.alice, job.id, 120_000);
    expect(["out_of_memory", "failed"]).toContain(done.state);
    if (e2e.cgroupMode() === "v1") {
      expect(done.state).toBe("out_of_memory");
      expect(done.reason).toBe("killed: out of memory");
      expect(done.code).toBe("out_of_memory");
    }
  });

  it("cancels a running job with scancel and Slurm ends it", async () => {
    const { e2e } = world();
    const job = await e2e.submit(e2e.alice, { name: `${prefix}sleeper`, cluster: "alpha", command: ["sleep", "300"] });
    const running = await e2e.waitFor(e2e.alice, job.id, (j) => j.state === "running");
    const res = await fetch(`${e2e.url}/v1/jobs/${job.id}/cancel`, {
      method: "POST",
      headers: { authorization: `Bearer ${e2e.alice}` },
    });
    expect(res.status).toBe(202);
    const done = await e2e.waitTerminal(e2e.alice, job.id);
    expect(done.state).toBe("cancelled");
    expect(done.reason).toBe("cancelled by user");
    const state = slurm("alpha", "sacct", ["-X", "-P", "-n", "-o", "State", "-j", running.slurmJobId!]).trim();
    expect(state).toMatch(/^CANCELLED/);
  });

  it("keeps agents on their own cluster: beta's agent never ran alpha's jobs", () => {
    expect(world().agents[1]!.logs()).not.toMatch(/"cluster":"alpha"/);
  });
}
