/**
 * Test helper: write a rendered job into a directory and run its batch script with plain bash
 * (no sbatch), with a simulated Slurm environment.
 */
import { execFile } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import type { RenderedJob } from "../../../agent/render/render-batch-script.ts";
import { JOB_FILES } from "../../../agent/render/data-files.ts";
import { createLocalExecutor } from "../../../agent/executor/local.ts";

const run = promisify(execFile);
const local = createLocalExecutor();

/** Absolute path of the probe payload. */
export const PROBE = new URL("./probe.cjs", import.meta.url).pathname;
/** The node binary running the tests: the probe's interpreter. */
export const NODE = process.execPath;
/** A canary in the starting environment that must never reach the payload. */
export const CANARY = { AGENT_TOKEN: "canary-agent-token", SBATCH_ACCOUNT: "canary-account" };

/** What the probe saw. */
export interface ProbeOutput {
  argv: string[];
  env: Record<string, string>;
  cwd: string;
}

/** Writes the script and data files into jobDir. */
export async function writeJob(jobDir: string, job: RenderedJob): Promise<string> {
  await mkdir(jobDir, { recursive: true });
  for (const f of job.files) {
    await writeFile(join(jobDir, f.name), f.data, { mode: f.mode });
  }
  const script = join(jobDir, JOB_FILES.script);
  await writeFile(script, job.script, { mode: 0o600 });
  return script;
}

/** `bash -n` on a script; resolves when the syntax is valid. */
export async function bashSyntaxCheck(script: string): Promise<void> {
  await run("bash", ["-n", script]);
}

/** Runs the batch script like slurmd would (bash, Slurm variables set); returns stdout/stderr/code. */
export async function runBatchScript(
  script: string,
  extraEnv: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: process.env.HOME ?? "/root",
    SLURM_JOB_ID: "4242",
    SLURM_JOBID: "4242",
    SLURM_CLUSTER_NAME: "test",
    ...CANARY,
    ...extraEnv,
  };
  // stdin is /dev/null as under slurmd (a socket there would make bash source ~/.bashrc).
  const r = await local.run("bash", [script], { env, timeoutMs: 30_000 });
  return { code: r.code ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Environment names the wrapper or bash may legitimately add on top of what was asked. */
export function isBaselineEnv(name: string): boolean {
  return (
    /^(SLURM_|SLURMGATE_)/.test(name) ||
    [
      "HOME",
      "PATH",
      "PWD",
      "OLDPWD",
      "SHLVL",
      "_",
      "USER",
      "LOGNAME",
      "SHELL",
      "TMPDIR",
      "LANG",
      "TZ",
      "TERM",
    ].includes(name) ||
    /^LC_/.test(name)
  );
}
