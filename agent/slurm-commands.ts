/**
 * The one place that runs Slurm commands: builders and parsers from agent/slurm, run through the
 * Executor (local or SSH) with a scrubbed environment and a timeout. Each method is one command,
 * so the number of calls per cycle is visible here (DESIGN invariant 3).
 */
import type { GpuAvailability, PartitionInfo } from "../schemas/agent.ts";
import type { Estimate } from "../schemas/asks.ts";
import type { AgentConfig } from "./config.ts";
import { buildSlurmEnv } from "./slurm/env.ts";
import type { ExecResult, Executor } from "./executor/types.ts";
import {
  type CommonCode,
  type FailedCode,
  type SacctCode,
  type SacctmgrCode,
  type SbatchCode,
  type SlurmResult,
  failed,
  succeeded,
  thrownFailure,
  timedOutFailure,
} from "./slurm/result.ts";
import { type SacctRow, buildSacctArgs, parseSacct } from "./slurm/sacct.ts";
import { buildSacctmgrAssocArgs, parseSacctmgrAssoc } from "./slurm/sacctmgr.ts";
import { SBATCH_RETRYING, buildSbatchArgs, classifySbatchError, parseSbatchOutput } from "./slurm/sbatch.ts";
import { buildScancelArgs, parseScancelStderr } from "./slurm/scancel.ts";
import { type TestOnlyCode, sbatchTestOnly } from "./slurm/test-only.ts";
import {
  type ScontrolJob,
  buildScontrolShowConfigArgs,
  buildScontrolShowJobArgs,
  parseMaxArraySize,
  parseScontrolShowJob,
} from "./slurm/scontrol.ts";
import { buildSinfoArgs, buildSinfoGpuArgs, parseSinfo, parseSinfoGpus } from "./slurm/sinfo.ts";
import { type SqueueRow, buildSqueueArgs, parseSqueue } from "./slurm/squeue.ts";
import { parseApptainerVersion, parseSlurmVersion } from "./slurm/versions.ts";
import { restSlurmCommands } from "./slurm-rest/from-config.ts";

/** A job sbatch queued; `warning` is its stderr when it also exited non-zero. */
export type Submitted = { slurmJobId: string; warning?: string };

/** Every method returns a {@link SlurmResult} and never throws, whatever the executor does. */
export type SlurmCommands = {
  /**
   * `script` is the file's text when the caller has just written it: a backend that sends the text
   * itself (slurmrestd) takes it from there instead of reading the file back.
   */
  sbatch(scriptPath: string, args: string[], script?: string): Promise<SlurmResult<Submitted, SbatchCode>>;
  /** All of this user's jobs Slurm still holds in memory (one squeue). A failure means "don't know", never "gone". */
  squeue(): Promise<SlurmResult<SqueueRow[]>>;
  sacct(query: { since: Date; ids?: string[] }): Promise<SlurmResult<SacctRow[], SacctCode>>;
  scontrolAll(): Promise<SlurmResult<ScontrolJob[]>>;
  /** The accounts `user` may charge on `cluster` (one sacctmgr), lower-cased and sorted. */
  accountsOf(user: string, cluster: string): Promise<SlurmResult<string[], SacctmgrCode>>;
  /** Ids Slurm no longer knew count as cancelled (idempotent); `gone` lists them. */
  scancel(ids: string[]): Promise<SlurmResult<{ gone: string[] }>>;
  sinfo(): Promise<SlurmResult<PartitionInfo[]>>;
  /** Free and total GPUs per partition and type (one sinfo per node). Optional for other backends. */
  gpuAvailability?(): Promise<SlurmResult<Map<string, GpuAvailability[]>>>;
  /** Slurm's MaxArraySize (`scontrol show config`); null when it does not say. Optional for other backends. */
  maxArraySize?(): Promise<SlurmResult<number | null>>;
  /** Slurm's estimate of when and where a job with these options would start (`sbatch --test-only`). */
  testOnly?(options: readonly string[]): Promise<SlurmResult<Estimate, TestOnlyCode>>;
  /** `unknown` when sbatch answers in a format we do not read. */
  slurmVersion(): Promise<SlurmResult<string>>;
  /** Not a Slurm command: null when the runtime is absent or does not answer. */
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
  const cli = createSlurmCommands({
    executor,
    env: buildSlurmEnv(env, config.SLURM_CONF ? { SLURM_CONF: config.SLURM_CONF } : {}),
    binDir: config.SLURMGATE_SLURM_BIN,
    apptainer: config.SLURMGATE_APPTAINER,
    timeoutMs: config.SLURMGATE_COMMAND_TIMEOUT_SECONDS * 1000,
    allUsers: Boolean(config.SLURMGATE_USER_MAP),
  });
  return config.SLURMGATE_SLURMRESTD ? restSlurmCommands(config, cli) : cli;
}

type SlurmCommandOptions = {
  executor: Executor;
  env: Record<string, string>;
  binDir: string;
  apptainer: string;
  timeoutMs: number;
  /** A site agent tracks the jobs it submitted as its users: every user's, not only its own. */
  allUsers?: boolean;
};

type Exec = (name: string, build: () => string[], stopOn?: RegExp) => Promise<SlurmResult<ExecResult, CommonCode>>;

/**
 * Builds the argv and runs it: a builder's refusal or an executor's throw become a failure here,
 * so no command below can throw. A timed-out result is returned as is: sbatch reads its stdout first.
 */
/** Where a Slurm command is: in the configured bin directory, else on PATH. */
function binPath(options: SlurmCommandOptions, name: string): string {
  return options.binDir ? `${options.binDir.replace(/\/$/, "")}/${name}` : name;
}

function execFor(options: SlurmCommandOptions): Exec {
  const { executor, env, timeoutMs } = options;
  const bin = (name: string) => binPath(options, name);
  return async (name, build, stopOn) => {
    let args: string[];
    try {
      args = build();
    } catch (err) {
      return failed("invalid_argument", `${name}: ${(err as Error).message}`, false);
    }
    try {
      return succeeded(await executor.run(bin(name), args, { env, timeoutMs, ...(stopOn ? { stopOn } : {}) }));
    } catch (err) {
      return thrownFailure(name, err);
    }
  };
}

async function sbatch(exec: Exec, scriptPath: string, args: string[]): Promise<SlurmResult<Submitted, SbatchCode>> {
  // On a full controller sbatch would sleep and retry for two minutes: stop it at its first notice.
  const ran = await exec("sbatch", () => buildSbatchArgs(scriptPath, args), SBATCH_RETRYING);
  if (!ran.ok) {
    // A lost command may have reached slurmctld first: `unreachable` is an unknown outcome, and
    // the caller must look the tag up, never resubmit. A sudo refusal ran nothing.
    return ran;
  }
  const result = ran.value;
  // A job id on stdout means Slurm queued it, whatever the exit status says.
  const submitted = parseSbatchOutput(result.stdout);
  if (submitted) {
    return succeeded({
      slurmJobId: submitted.slurmJobId,
      warning: result.code === 0 ? undefined : result.stderr.trim(),
    });
  }
  const { code, message } = classifySbatchError(result.stderr, result);
  if (result.timedOut) {
    return failed("timeout", message, true);
  }
  return failed(code, message, code === "backpressure" || code === "transient");
}

async function scancel(exec: Exec, ids: string[]): Promise<SlurmResult<{ gone: string[] }>> {
  const ran = await exec("scancel", () => buildScancelArgs(ids));
  if (!ran.ok) {
    return ran;
  }
  const result = ran.value;
  if (result.timedOut) {
    return timedOutFailure("scancel", result);
  }
  const { gone, other } = parseScancelStderr(result.stderr);
  // A non-zero exit only for ids already gone is success: cancelling is idempotent.
  return result.code === 0 || other.length === 0 ? succeeded({ gone }) : failed("failed", other.join("; "), true);
}

export function createSlurmCommands(options: SlurmCommandOptions): SlurmCommands {
  const exec = execFor(options);
  /** The usual reading: a timeout, a non-zero exit (with its stderr), or parse stdout. */
  const simple = async <T>(name: string, build: () => string[], parse: (stdout: string) => T) => {
    const ran = await exec(name, build);
    return ran.ok ? readExit(name, ran.value, parse) : ran;
  };
  return {
    testOnly: (args) => sbatchTestOnly({ ...options, sbatch: binPath(options, "sbatch") }, args),
    sbatch: (scriptPath, args) => sbatch(exec, scriptPath, args),
    squeue() {
      return simple("squeue", () => buildSqueueArgs(options.allUsers ? { all: true } : { me: true }), parseSqueue);
    },
    async sacct(query) {
      const ran = await exec("sacct", () => {
        const args = buildSacctArgs(query);
        return options.allUsers ? [...args, "--allusers"] : args;
      });
      if (!ran.ok) {
        return ran;
      }
      return ran.value.timedOut ? timedOutFailure("sacct", ran.value) : parseSacct(ran.value);
    },
    scontrolAll() {
      return simple("scontrol", () => buildScontrolShowJobArgs(), parseScontrolShowJob);
    },
    async accountsOf(user, cluster) {
      const ran = await exec("sacctmgr", () => buildSacctmgrAssocArgs(user, cluster));
      if (!ran.ok) {
        return ran;
      }
      return ran.value.timedOut ? timedOutFailure("sacctmgr", ran.value) : parseSacctmgrAssoc(ran.value);
    },
    scancel: (ids) => scancel(exec, ids),
    sinfo() {
      return simple("sinfo", buildSinfoArgs, parseSinfo);
    },
    gpuAvailability() {
      return simple("sinfo", buildSinfoGpuArgs, parseSinfoGpus);
    },
    maxArraySize() {
      return simple("scontrol", buildScontrolShowConfigArgs, parseMaxArraySize);
    },
    async slurmVersion() {
      const ran = await exec("sbatch", () => ["--version"]);
      if (!ran.ok) {
        return ran;
      }
      return ran.value.timedOut
        ? timedOutFailure("sbatch --version", ran.value)
        : succeeded(parseSlurmVersion(ran.value.stdout) ?? "unknown");
    },
    async apptainerVersion() {
      try {
        const result = await options.executor.run(options.apptainer, ["--version"], {
          env: options.env,
          timeoutMs: options.timeoutMs,
        });
        const parsed = parseApptainerVersion(result.stdout);
        return parsed ? `${parsed.runtime} ${parsed.version}` : null;
      } catch {
        return null;
      }
    },
  };
}

/** A finished command read the usual way: a timeout and a non-zero exit are failures, else parse stdout. */
function readExit<T>(name: string, result: ExecResult, parse: (stdout: string) => T): SlurmResult<T, FailedCode> {
  if (result.timedOut) {
    return timedOutFailure(name, result);
  }
  if (result.code !== 0) {
    return failed("failed", `${name} failed: ${result.stderr.trim() || `exit ${result.code}`}`, true);
  }
  return succeeded(parse(result.stdout));
}
