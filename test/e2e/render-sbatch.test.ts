/**
 * Real-sbatch round trip (RELIABILITY S12, small): a rendered job submitted to a local test
 * cluster must show the asked name/comment/paths in Slurm and deliver exact argv/env/cwd.
 * Needs the local test clusters (test/slurm/cluster.sh up); fails, never skips, without them.
 */
import { mkdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { createLocalExecutor } from "../../agent/executor/local.ts";
import { JOB_FILES, encodeEnvEntries } from "../../agent/render/data-files.ts";
import { slurmgateTag } from "../../agent/render/directives.ts";
import { renderBatchScript } from "../../agent/render/render-batch-script.ts";
import { buildSlurmEnv } from "../../agent/slurm/env.ts";
import { buildSbatchArgs, parseSbatchOutput } from "../../agent/slurm/sbatch.ts";
import { buildScontrolShowJobArgs, parseScontrolShowJob } from "../../agent/slurm/scontrol.ts";
import { buildSqueueArgs, findByTag, parseSqueue } from "../../agent/slurm/squeue.ts";
import { JobSpec } from "../../schemas/job.ts";
import { slurmClusters } from "./harness.ts";
import { NODE, PROBE, type ProbeOutput } from "../agent/helpers/run-rendered.ts";

const alpha = slurmClusters().alpha;
const root = alpha.sharedRoot;

describe("rendered job through real sbatch", () => {
  it("delivers exactly what was asked and is findable by its tag", async () => {
    const exec = createLocalExecutor();
    const env = buildSlurmEnv(
      { ...process.env, SLURM_CONF: alpha.slurmConf, AGENT_TOKEN: "canary-agent-token" },
      { SBATCH_ACCOUNT: "canary" },
    );
    const jobId = `job_${Date.now().toString(36).padStart(20, "0")}`;
    const jobDir = join(root ?? "/nonexistent", "agent-tests", jobId);
    await mkdir(jobDir, { recursive: true });
    const args = ["a b", "'$(id)`x`'", "", "é 🎉", "--x=1"];
    const spec = JobSpec.parse({
      name: "sg-probe.1",
      command: [NODE, PROBE, ...args],
      env: { FOO: "bar $HOME `id`", RANDOM: "7", _: "u" },
      secrets: ["API_TOKEN"],
      resources: { time: "2m" },
    });
    const secretsFile = join(jobDir, "secrets.nul");
    const job = renderBatchScript({
      lease: { jobId, attempt: 1, spec },
      jobDir,
      secretsFile,
      apptainerBin: "apptainer",
    });
    for (const f of job.files) {
      await exec.writeFile(join(jobDir, f.name), f.data, f.mode);
    }
    await exec.writeFile(secretsFile, encodeEnvEntries({ API_TOKEN: "s3cr3t 'v'" }), 0o600);
    const script = join(jobDir, JOB_FILES.script);
    await exec.writeFile(script, job.script, 0o700);

    const submitted = await exec.run("sbatch", buildSbatchArgs(script, job.sbatchArgs), { env, cwd: jobDir });
    expect(submitted.code, submitted.stderr).toBe(0);
    const slurmJobId = parseSbatchOutput(submitted.stdout)?.slurmJobId;
    expect(slurmJobId).toMatch(/^\d+$/);

    const queued = parseSqueue((await exec.run("squeue", buildSqueueArgs({ me: true }), { env })).stdout);
    expect(findByTag(queued, slurmgateTag(jobId, 1)).map((r) => r.slurmJobId)).toEqual([slurmJobId]);

    let exitcode: string | null = null;
    for (let i = 0; i < 120 && exitcode === null; i++) {
      await new Promise((r) => setTimeout(r, 500));
      exitcode = (await exec.readFile(join(jobDir, "exitcode")))?.toString("utf8") ?? null;
    }
    expect(exitcode?.trim()).toBe("0");
    const probe = JSON.parse(await readFile(join(jobDir, "stdout"), "utf8")) as ProbeOutput;
    expect(probe.argv).toEqual(args);
    expect(probe.cwd).toBe(jobDir);
    expect(probe.env).toMatchObject({
      FOO: "bar $HOME `id`",
      RANDOM: "7",
      _: "u",
      API_TOKEN: "s3cr3t 'v'",
      SLURMGATE_JOB_ID: jobId,
    });
    expect(probe.env.AGENT_TOKEN).toBeUndefined();
    expect(probe.env.SLURM_JOB_ACCOUNT).not.toBe("canary");
    expect(await exec.stat(secretsFile)).toBeNull();

    const shown = parseScontrolShowJob(
      (await exec.run("scontrol", buildScontrolShowJobArgs(slurmJobId), { env })).stdout,
    )[0];
    expect(shown?.fields).toMatchObject({
      JobName: "sg-probe.1",
      WorkDir: jobDir,
      StdOut: join(jobDir, "stdout"),
      Comment: slurmgateTag(jobId, 1),
    });
    await rm(jobDir, { recursive: true, force: true });
  }, 90_000);
});
