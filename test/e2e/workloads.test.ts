/**
 * The workloads the seed tools describe, run for real: containers with binds and GPU pass-through,
 * secrets by reference, setup lines, array jobs, dependent jobs, per-cluster profiles, and refusals
 * of jobs no cluster can run.
 */
import { createHash } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../cli/support.ts";
import { type AgentProcess, type E2E, REPO, slurm, slurmClusters, slurmJobsTagged, startE2E } from "./harness.ts";

const CANARY = `canary-${Math.random().toString(36).slice(2)}-secret`;
const shared = slurmClusters().alpha.sharedRoot;
let e2e: E2E;
let agent: AgentProcess;

beforeAll(async () => {
  e2e = await startE2E(
    {},
    {
      alpha: {
        profiles: { train: { partition: "gpu", resources: { gpus: { count: 1, type: "a100" }, time: "10m" } } },
      },
    },
  );
  const secrets = join(mkdtempSync(join(tmpdir(), "slurmgate-secrets-")), "secrets.env");
  writeFileSync(secrets, `HF_TOKEN=${CANARY}\n`, { mode: 0o600 });
  chmodSync(secrets, 0o600);
  const env = { SLURMGATE_SECRETS_FILE: secrets, SLURMGATE_APPTAINER: join(REPO, "test/e2e/bin/apptainer") };
  agent = e2e.startAgent("alpha", env);
  e2e.startAgent("beta", env);
  await e2e.waitClustersAlive();
});

afterAll(async () => {
  await e2e?.close();
});

describe("workloads from the seed tools", () => {
  it("runs the payload in a container with read-only binds, GPU pass-through and container env", async () => {
    mkdirSync(join(shared, "images"), { recursive: true });
    mkdirSync(join(shared, "data"), { recursive: true });
    writeFileSync(join(shared, "images", "tool.sif"), "");
    const job = await e2e.submit(e2e.alice, {
      name: "in-container",
      partition: "gpu",
      resources: { gpus: { count: 1, type: "a100" }, time: "5m" },
      container: {
        image: join(shared, "images", "tool.sif"),
        binds: [{ src: join(shared, "data"), dst: "/data", readonly: true }],
        env: { HF_HUB_OFFLINE: "1" },
      },
      command: ["bash", "-c", 'echo "offline=$HF_HUB_OFFLINE"'],
    });
    const done = await e2e.waitTerminal(e2e.alice, job.id);
    expect(done.state).toBe("completed");
    expect(await e2e.logs(e2e.alice, job.id)).toBe("offline=1\n");
    const argv = readFileSync(join(shared, "alice", job.id, "apptainer-argv.nul"), "utf8")
      .split("\0")
      .slice(0, -1);
    expect(argv[0]).toBe("exec");
    expect(argv).toContain("--nv");
    expect(argv.join(" ")).toContain(`--bind ${join(shared, "data")}:/data:ro`);
    expect(argv.slice(-4)).toEqual([
      join(shared, "images", "tool.sif"),
      "bash",
      "-c",
      'echo "offline=$HF_HUB_OFFLINE"',
    ]);
  });

  it("names a container image that vanished before the job ran: image_missing, not 'exited 125'", async () => {
    mkdirSync(join(shared, "images"), { recursive: true });
    const image = join(shared, "images", `vanishing-${Date.now()}.sif`);
    writeFileSync(image, "");
    const first = await e2e.submit(e2e.alice, { name: "holder", cluster: "alpha", command: ["sleep", "6"] });
    const job = await e2e.submit(e2e.alice, {
      name: "vanishing-image",
      cluster: "alpha",
      dependsOn: [{ job: first.id, condition: "afterany" }],
      container: { image },
      command: ["echo", "never"],
    });
    // In Slurm (the agent checked the image then), waiting for the first job: now the image goes.
    await e2e.waitFor(e2e.alice, job.id, (j) => j.slurmJobId !== null, 60_000);
    unlinkSync(image);
    const done = await e2e.waitTerminal(e2e.alice, job.id, 120_000);
    expect(done).toMatchObject({ state: "failed", exitCode: 125, code: "image_missing" });
    expect(done.reason).toMatch(new RegExp(`^container image ${image} does not exist or cannot be read on \\S+$`));
  }, 150_000);

  it("publishes each partition's idle nodes and free GPUs from the real sinfo", async () => {
    const res = await fetch(`${e2e.url}/v1/clusters`, { headers: { authorization: `Bearer ${e2e.alice}` } });
    type Part = {
      name: string;
      nodes: number;
      idleNodes?: number;
      gpuAvailability?: { type: string; total: number; free: number }[];
    };
    const items = (await res.json()) as { items: { name: string; inventory: { partitions: Part[] } }[] };
    const gpu = items.items.find((c) => c.name === "alpha")?.inventory.partitions.find((p) => p.name === "gpu");
    expect(gpu?.idleNodes).toBeGreaterThanOrEqual(0);
    expect(gpu?.idleNodes).toBeLessThanOrEqual(gpu?.nodes ?? 0);
    expect(gpu?.gpuAvailability).toEqual([{ type: "a100", total: 2, free: expect.any(Number) }]);
    expect(gpu?.gpuAvailability?.[0]?.free).toBeLessThanOrEqual(2);
    // The CLI shows the same: idle/total nodes, free/total GPUs per type, and what the profile sets.
    const cli = await runCli(["clusters", "alpha"], { env: { SLURMGATE_URL: e2e.url, SLURMGATE_TOKEN: e2e.alice } });
    expect(cli.code, cli.stderr).toBe(0);
    expect(cli.stdout).toMatch(/\ngpu\s+up\s+[01]\/1\s+a100 [0-2]\/2 free\s+≤ 120m/);
    expect(cli.stdout).toContain(
      'profile train: {"partition":"gpu","resources":{"gpus":{"count":1,"type":"a100"},"time":"10m"}}',
    );
    // A user granted fewer partitions is told which are not on offer to them, and why.
    await e2e.gw.grant("bob", "alpha", ["cpu", "gpu"]);
    try {
      const bob = await runCli(["clusters", "alpha"], { env: { SLURMGATE_URL: e2e.url, SLURMGATE_TOKEN: e2e.bob } });
      expect(bob.code, bob.stderr).toBe(0);
      expect(bob.stdout).toContain("not on offer: short: not in your grant for this cluster (yours: cpu, gpu)");
      expect(bob.stdout).not.toMatch(/\nshort\s/);
    } finally {
      await e2e.gw.grant("bob", "alpha");
    }
  });

  it("hands secrets to the job by name and leaves them nowhere else", async () => {
    const job = await e2e.submit(e2e.alice, {
      name: "uses-secret",
      cluster: "alpha",
      secrets: ["HF_TOKEN"],
      command: ["bash", "-c", 'printf %s "$HF_TOKEN" | sha256sum | cut -c1-64'],
    });
    const done = await e2e.waitTerminal(e2e.alice, job.id);
    expect(done.state).toBe("completed");
    const expected = createHash("sha256").update(CANARY).digest("hex");
    expect(await e2e.logs(e2e.alice, job.id)).toBe(`${expected}\n`);
    const jobDir = join(shared, "alice", job.id);
    expect(existsSync(join(jobDir, "secrets.nul"))).toBe(false);
    expect(readFileSync(join(jobDir, "job.sbatch"), "utf8")).not.toContain(CANARY);
    const scontrol = slurm("alpha", "scontrol", ["show", "job", done.slurmJobId!]);
    expect(scontrol).not.toContain(CANARY);
    expect(
      slurm("alpha", "sacct", ["-X", "-P", "-n", "-o", "SubmitLine,WorkDir", "-j", done.slurmJobId!]),
    ).not.toContain(CANARY);
    for (const table of ["jobs", "job_events", "job_logs", "tokens", "clusters"]) {
      const rows = await e2e.gw.db.client.execute(`SELECT * FROM ${table}`);
      expect(
        JSON.stringify(rows.rows, (_k, v) => (v instanceof ArrayBuffer ? Buffer.from(v).toString() : v)),
      ).not.toContain(CANARY);
    }
    expect(agent.logs()).not.toContain(CANARY);
  });

  it("refuses a job that names a secret the cluster does not have", async () => {
    const job = await e2e.submit(e2e.alice, {
      name: "no-secret",
      cluster: "alpha",
      secrets: ["MISSING_ONE"],
      command: ["true"],
    });
    const done = await e2e.waitTerminal(e2e.alice, job.id);
    expect(done).toMatchObject({ state: "rejected", code: "secret_missing" });
    expect(slurmJobsTagged("alpha", job.id)).toEqual([]);
  });

  it("runs setup lines (module load, conda activate) before the payload, which starts in its workdir", async () => {
    const job = await e2e.submit(e2e.alice, {
      name: "with-setup",
      cluster: "alpha",
      setup: ["export GREETING='hello from setup'", "cd /tmp"],
      command: ["bash", "-c", 'echo "$GREETING in $PWD"'],
    });
    const done = await e2e.waitTerminal(e2e.alice, job.id);
    expect(done.state).toBe("completed");
    expect(await e2e.logs(e2e.alice, job.id)).toBe(`hello from setup in ${join(shared, "alice", job.id)}\n`);
  });

  it("runs an array job as one Slurm array with a parallelism cap", async () => {
    const job = await e2e.submit(e2e.alice, {
      name: "sweep",
      cluster: "alpha",
      array: { indexes: "0-3", maxParallel: 2 },
      command: [
        "bash",
        "-c",
        'echo "task $SLURM_ARRAY_TASK_ID" > "$SLURMGATE_JOB_DIR/out.$SLURM_ARRAY_TASK_ID"; echo "{\\"score\\": $SLURM_ARRAY_TASK_ID}" > "$SLURMGATE_RESULT"',
      ],
    });
    const done = await e2e.waitTerminal(e2e.alice, job.id, 120_000);
    expect(done.state).toBe("completed");
    const parents = new Set(slurmJobsTagged("alpha", job.id).map((id) => id.split("_")[0]));
    expect([...parents]).toEqual([done.slurmJobId]);
    // Each task wrote its own result; they come back gathered by task id.
    expect(done.result).toEqual({ tasks: { 0: { score: 0 }, 1: { score: 1 }, 2: { score: 2 }, 3: { score: 3 } } });
    for (const i of [0, 1, 2, 3]) {
      expect(readFileSync(join(shared, "alice", job.id, `out.${i}`), "utf8")).toBe(`task ${i}\n`);
    }
  });

  it("starts a dependent job only after the job it depends on succeeded", async () => {
    const marker = join(shared, "alice", `marker-${Date.now()}`);
    const first = await e2e.submit(e2e.alice, {
      name: "first",
      cluster: "alpha",
      command: ["bash", "-c", `sleep 3; echo made > ${marker}`],
    });
    const second = await e2e.submit(e2e.alice, {
      name: "second",
      dependsOn: [{ job: first.id, condition: "afterok" }],
      command: ["cat", marker],
    });
    expect(second.cluster).toBe("alpha");
    const done = await e2e.waitTerminal(e2e.alice, second.id, 120_000);
    expect(done.state).toBe("completed");
    expect(await e2e.logs(e2e.alice, second.id)).toBe("made\n");
  });

  it("refuses a dependent job once Slurm says its dependency can never be satisfied", async () => {
    const first = await e2e.submit(e2e.alice, {
      name: "fails",
      cluster: "alpha",
      command: ["bash", "-c", "sleep 8; exit 1"],
    });
    await e2e.waitFor(e2e.alice, first.id, (j) => j.state === "running");
    const second = await e2e.submit(e2e.alice, {
      name: "never",
      dependsOn: [{ job: first.id, condition: "afterok" }],
      command: ["true"],
    });
    const submitted = await e2e.waitFor(e2e.alice, second.id, (j) => j.slurmJobId !== null);
    const done = await e2e.waitTerminal(e2e.alice, second.id, 120_000);
    expect(done).toMatchObject({ state: "rejected", code: "slurm_dependency" });
    expect(slurm("alpha", "squeue", ["-h", "-j", submitted.slurmJobId!, "-o", "%T"]).trim()).not.toBe("PENDING");
  });

  it("applies a cluster profile and routes by it", async () => {
    const job = await e2e.submit(e2e.alice, { name: "profiled", profile: "train", command: ["true"] });
    expect(job).toMatchObject({ cluster: "alpha", partition: "gpu" });
    expect(job.spec?.resources).toMatchObject({ gpus: { count: 1, type: "a100" }, time: "10m" });
    expect((await e2e.waitTerminal(e2e.alice, job.id)).state).toBe("completed");
  });

  it("refuses at submission what no cluster can run, naming the field and what is on offer", async () => {
    const refuse = async (spec: object) => {
      const res = await fetch(`${e2e.url}/v1/jobs`, {
        method: "POST",
        headers: { authorization: `Bearer ${e2e.alice}`, "content-type": "application/json" },
        body: JSON.stringify({ name: "nope", command: ["true"], ...spec }),
      });
      expect(res.status).toBe(422);
      expect(res.headers.get("content-type")).toContain("application/problem+json");
      return (await res.json()) as { field: string; detail: string; code: string };
    };
    const gpu = await refuse({ resources: { gpus: { count: 1, type: "v100" } } });
    expect(gpu).toMatchObject({ code: "unsatisfiable", field: "body.resources.gpus.type" });
    expect(gpu.detail).toMatch(/a100/);
    expect(gpu.detail).toMatch(/h100/);
    const time = await refuse({ cluster: "alpha", partition: "short", resources: { time: "30m" } });
    expect(time).toMatchObject({ field: "body.resources.time" });
    expect(time.detail).toContain("10m");
  });
});
