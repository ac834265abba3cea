/**
 * The one place that runs Slurm commands: builders and parsers from agent/slurm, run through the
 * Executor (local or SSH) with a scrubbed environment and a timeout. Each method is one command,
 * so the number of calls per cycle is visible here (DESIGN invariant 3).
 */
import type { PartitionInfo } from "../schemas/agent.ts";
import type { AgentConfig } from "./config.ts";
import { IdentityRefusal } from "./identity/guard.ts";
import { buildSlurmEnv } from "./slurm/env.ts";
import type { ExecResult, Executor } from "./executor/types.ts";
import { type SacctResult, buildSacctArgs, parseSacct } from "./slurm/sacct.ts";
import { type AssocResult, buildSacctmgrAssocArgs, parseSacctmgrAssoc } from "./slurm/sacctmgr.ts";
import { buildSbatchArgs, classifySbatchError, parseSbatchOutput, type SbatchFailure } from "./slurm/sbatch.ts";
import { buildScancelArgs, parseScancelStderr } from "./slurm/scancel.ts";
import { type ScontrolJob, buildScontrolShowJobArgs, parseScontrolShowJob } from "./slurm/scontrol.ts";
import { buildSinfoArgs, parseSinfo } from "./slurm/sinfo.ts";
import { type SqueueRow, buildSqueueArgs, parseSqueue } from "./slurm/squeue.ts";
import { parseApptainerVersion, parseSlurmVersion } from "./slurm/versions.ts";

export type SubmitOutcome = { ok: true; slurmJobId: string; warning?: string } | ({ ok: false } & SbatchFailure);

export type SlurmCommands = {
  sbatch(scriptPath: string, args: string[]): Promise<SubmitOutcome>;
  /** All of this user's jobs Slurm still holds in memory (one squeue). Null when squeue failed. */
  squeue(): Promise<SqueueRow[] | null>;
  sacct(query: { since: Date; ids?: string[] }): Promise<SacctResult>;
  scontrolAll(): Promise<ScontrolJob[] | null>;
  /** The accounts `user` may charge on `cluster` (one sacctmgr). */
  accountsOf(user: string, cluster: string): Promise<AssocResult>;
  scancel(ids: string[]): Promise<{ ok: boolean; message: string }>;
  sinfo(): Promise<PartitionInfo[]>;
  slurmVersion(): Promise<string>;
  apptainerVersion(): Promise<string | null>;
};

/**
 * The Slurm commands an agent with this config runs, through `executor`, with Slurm's environment
 * built from `env` (this machine's, or the login node's in SSH mode).
 */
export function slurmCommandsFor(
  config: AgentConfig,
  executor: Executor,
  env: Record<string, string | undefined>,
): SlurmCommands {
  return createSlurmCommands({
    executor,
    env: buildSlurmEnv(env, config.SLURM_CONF ? { SLURM_CONF: config.SLURM_CONF } : {}),
    binDir: config.SLURMGATE_SLURM_BIN,
    apptainer: config.SLURMGATE_APPTAINER,
    timeoutMs: config.SLURMGATE_COMMAND_TIMEOUT_SECONDS * 1000,
    allUsers: Boolean(config.SLURMGATE_USER_MAP),
  });
}

export function createSlurmCommands(options: {
  executor: Executor;
  env: Record<string, string>;
  binDir: string;
  apptainer: string;
  timeoutMs: number;
  /** A site agent tracks the jobs it submitted as its users: every user's, not only its own. */
  allUsers?: boolean;
}): SlurmCommands {
  const { executor, env, timeoutMs } = options;
  const bin = (name: string) => (options.binDir ? `${options.binDir.replace(/\/$/, "")}/${name}` : name);
  const run = (name: string, args: string[]): Promise<ExecResult> => executor.run(bin(name), args, { env, timeoutMs });

  return {
    async sbatch(scriptPath, args) {
      const argv = buildSbatchArgs(scriptPath, args);
      let result: ExecResult;
      try {
        result = await run("sbatch", argv);
      } catch (err) {
        if (err instanceof IdentityRefusal) {
          // sudo refused before sbatch ever ran: nothing was submitted, and it will refuse again.
          return { ok: false, code: err.code, message: err.message };
        }
        // sbatch may have reached slurmctld before the failure (an SSH connection that dropped
        // mid-command): the outcome is unknown, so the caller must look the tag up, never resubmit.
        return { ok: false, code: "transient", message: `sbatch did not complete: ${(err as Error).message}` };
      }
      // A job id on stdout means Slurm queued it, whatever the exit status says.
      const submitted = parseSbatchOutput(result.stdout);
      if (submitted) {
        return {
          ok: true,
          slurmJobId: submitted.slurmJobId,
          warning: result.code === 0 ? undefined : result.stderr.trim(),
        };
      }
      return { ok: false, ...classifySbatchError(result.stderr, result) };
    },
    async squeue() {
      const result = await run("squeue", buildSqueueArgs(options.allUsers ? { all: true } : { me: true })).catch(
        () => null,
      );
      return result?.code === 0 ? parseSqueue(result.stdout) : null;
    },
    async sacct(query) {
      try {
        const args = buildSacctArgs(query);
        return parseSacct(await run("sacct", options.allUsers ? [...args, "--allusers"] : args));
      } catch (err) {
        return { ok: false, reason: "error", message: `sacct did not complete: ${(err as Error).message}` };
      }
    },
    async scontrolAll() {
      const result = await run("scontrol", buildScontrolShowJobArgs());
      return result.code === 0 ? parseScontrolShowJob(result.stdout) : null;
    },
    async accountsOf(user, cluster) {
      try {
        return parseSacctmgrAssoc(await run("sacctmgr", buildSacctmgrAssocArgs(user, cluster)));
      } catch (err) {
        return { ok: false, message: `sacctmgr did not complete: ${(err as Error).message}` };
      }
    },
    async scancel(ids) {
      let result: ExecResult;
      try {
        result = await run("scancel", buildScancelArgs(ids));
      } catch (err) {
        return { ok: false, message: (err as Error).message };
      }
      const { other } = parseScancelStderr(result.stderr);
      return { ok: result.code === 0 || other.length === 0, message: other.join("; ") };
    },
    async sinfo() {
      const result = await run("sinfo", buildSinfoArgs());
      if (result.code !== 0) {
        throw new Error(`sinfo failed: ${result.stderr.trim() || `exit ${result.code}`}`);
      }
      return parseSinfo(result.stdout);
    },
    async slurmVersion() {
      const result = await run("sbatch", ["--version"]);
      return parseSlurmVersion(result.stdout) ?? "unknown";
    },
    async apptainerVersion() {
      try {
        const result = await executor.run(options.apptainer, ["--version"], { env, timeoutMs });
        const parsed = parseApptainerVersion(result.stdout);
        return parsed ? `${parsed.runtime} ${parsed.version}` : null;
      } catch {
        return null;
      }
    },
  };
}
