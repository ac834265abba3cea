/**
 * sbatch: argv builder, `--parsable` output parser, and error classification.
 *
 * sbatch has no idempotency key: a timeout or a transient error does not prove the job was not
 * queued (sisyphus #281, #156). The caller must look the job up by its tag (squeue/sacct) before
 * any retry, and must check stdout for a job id even when sbatch exited non-zero.
 */
import type { RejectCode } from "../../schemas/agent.ts";
import type { ExecResult } from "../executor/types.ts";

/**
 * The argv for sbatch: `--parsable`, the renderer's command-line options, the script path.
 * @example
 * buildSbatchArgs("/scratch/alice/job_x/job.sbatch", ["--export=NONE"])
 * // => ["--parsable", "--export=NONE", "/scratch/alice/job_x/job.sbatch"]
 */
export function buildSbatchArgs(scriptPath: string, extra: readonly string[] = []): string[] {
  if (!scriptPath.startsWith("/")) {
    throw new Error("sbatch script path must be absolute");
  }
  return ["--parsable", ...checkedSbatchOptions(extra), scriptPath];
}

/** Long options with plain values only: nothing a shell or sbatch could read as more than one option. */
export function checkedSbatchOptions(options: readonly string[]): readonly string[] {
  for (const arg of options) {
    if (!/^--[a-z][a-z-]*(=[A-Za-z0-9_.,:@%+/=-]*)?$/.test(arg)) {
      throw new Error(`refusing sbatch argument ${JSON.stringify(arg)}`);
    }
  }
  return options;
}

/** A submitted job as sbatch reports it. */
export interface SbatchSubmission {
  slurmJobId: string;
  /** Set when sbatch printed `<id>;<cluster>` (federation / multi-cluster). */
  cluster: string | null;
}

/**
 * Parses sbatch stdout: `--parsable` (`123` or `123;cluster`) or the classic
 * `Submitted batch job 123`. Returns null when no job id is present.
 * @example
 * parseSbatchOutput("4242;alpha\n") // => { slurmJobId: "4242", cluster: "alpha" }
 */
export function parseSbatchOutput(stdout: string): SbatchSubmission | null {
  for (const line of stdout.split(/\r?\n/).map((l) => l.trim())) {
    const parsable = /^(\d+)(?:;([A-Za-z0-9_.-]+))?$/.exec(line);
    if (parsable?.[1]) {
      return { slurmJobId: parsable[1], cluster: parsable[2] ?? null };
    }
    const classic = /^Submitted batch job (\d+)(?: on cluster ([A-Za-z0-9_.-]+))?$/.exec(line);
    if (classic?.[1]) {
      return { slurmJobId: classic[1], cluster: classic[2] ?? null };
    }
  }
  return null;
}

/** What a failed sbatch means for the job. */
export interface SbatchFailure {
  /**
   * A RejectCode: Slurm refused this job and will refuse it again.
   * `backpressure`: a submit limit or a full controller; give the job back and retry later.
   * `transient`: the controller did not answer (or answered ambiguously); the job MAY have been
   * queued, so look it up by tag before any retry.
   */
  code: RejectCode | "backpressure" | "transient";
  message: string;
}

/**
 * Ordered: the first matching rule wins. Specific limit names come before Slurm's generic
 * "Job violates accounting/QOS policy (job submit limit, user's size and/or time limits)",
 * which mostly means a submit-count limit (per-job size limits pend instead, unless DenyOnLimit).
 */
const RULES: readonly [RegExp, SbatchFailure["code"]][] = [
  [
    /Socket timed out|Unable to contact slurm controller|Zero Bytes were transmitted|Connection refused|Connection timed out|Transport endpoint|Communication connection failure|Munge|authentication error|Could not establish a configuration source|backup controller in standby|Slurmctld is not responding/i,
    "transient",
  ],
  [
    /MaxSubmitJob|GrpSubmitJob|SubmitJobsLimit|MaxJobCount|job queue full|Unable to create job record|temporarily unable to accept job|Resource temporarily unavailable/i,
    "backpressure",
  ],
  [
    /QOSMaxWall|AssocMaxWall|GrpWall|Requested time limit is invalid|time limit exceeds|Invalid --time/i,
    "slurm_time_limit",
  ],
  [/\bQOS(Max|Grp|Min)\w*Limit|Job exceeds QOS/, "slurm_qos_limit"],
  [/\bAssoc(Max|Grp)\w*Limit/, "slurm_assoc_limit"],
  [/accounting\/QOS policy/i, "backpressure"],
  [/invalid partition|Invalid partition name/i, "slurm_invalid_partition"],
  [/invalid account|account\/partition combination|Invalid user id|association/i, "slurm_invalid_account"],
  [/invalid qos|qos specification/i, "slurm_invalid_qos"],
  [/Memory required by task is not available|memory specification/i, "slurm_memory_limit"],
  [/Invalid generic resource|Invalid Trackable RESource|TRES specification|Invalid GRES/i, "slurm_gres_unavailable"],
  [
    /Requested node configuration is not available|Node count specification invalid|More processors requested than permitted|Invalid feature specification|Requested partition configuration not available/i,
    "slurm_node_config",
  ],
  [/dependency/i, "slurm_dependency"],
];

/**
 * Classifies a failed sbatch from its stderr (and exit result).
 * @example
 * classifySbatchError("sbatch: error: Batch job submission failed: Invalid partition name specified\n")
 * // => { code: "slurm_invalid_partition", message: "Invalid partition name specified" }
 */
export function classifySbatchError(stderr: string, result?: Pick<ExecResult, "timedOut">): SbatchFailure {
  const message = sbatchErrorMessage(stderr);
  if (result?.timedOut) {
    return { code: "transient", message: `sbatch timed out${message ? `: ${message}` : ""}` };
  }
  for (const [pattern, code] of RULES) {
    if (pattern.test(stderr)) {
      return { code, message: code === "backpressure" ? waitingReason(stderr, message) : message };
    }
  }
  // The controller answered with a refusal we do not know: permanent. No answer at all: transient.
  return /Batch job submission failed/i.test(stderr)
    ? { code: "slurm_rejected", message }
    : { code: "transient", message: message || "sbatch failed without a message" };
}

/**
 * What sbatch prints, on its first refusal, when the controller cannot take a job now; it then
 * sleeps and asks again, up to 15 times over two minutes (sbatch.c, MAX_RETRIES). The agent stops
 * it there and gives the job back instead: the controller said no, so nothing was queued.
 */
export const SBATCH_RETRYING = /job queue full, sleeping and retrying|temporarily unable to accept job, sleeping/i;

/**
 * The reason a job shows while Slurm refuses new jobs for now: which limit, in words, then Slurm's.
 * @example
 * waitingReason("sbatch: error: Slurm job queue full, sleeping and retrying", "Slurm job queue full, sleeping and retrying")
 * // => "Slurm's queue is full (MaxJobCount): waiting (Slurm job queue full, sleeping and retrying)"
 */
export function waitingReason(stderr: string, message: string): string {
  const limit = /\b(?:QOS|Assoc)\w*Submit\w*/.exec(stderr)?.[0];
  const words = /job queue full|Unable to create job record|MaxJobCount/i.test(stderr)
    ? "Slurm's queue is full (MaxJobCount)"
    : /temporarily unable to accept job|Resource temporarily unavailable/i.test(stderr)
      ? "Slurm is not accepting jobs for the moment"
      : `${SUBMIT_LIMIT_WORDS} (${limit ?? "MaxSubmitJobs of a QOS or association"})`;
  return `${words}: waiting${message ? ` (${message})` : ""}`.slice(0, 1_000);
}

const SUBMIT_LIMIT_WORDS = "Slurm's queue is full for this user";

/**
 * The submit limit a back-pressure reason (from {@link waitingReason}) names, or null when the
 * refusal was a full controller or a pause. A submit limit counts every element of an array, so a
 * smaller array may fit where the whole one does not; a full controller counts the array as one.
 * @example
 * submitLimitOf("Slurm's queue is full for this user (QOSMaxSubmitJobPerUserLimit): waiting (…)") // => "QOSMaxSubmitJobPerUserLimit"
 */
export function submitLimitOf(reason: string): string | null {
  return reason.startsWith(`${SUBMIT_LIMIT_WORDS} (`)
    ? reason.slice(SUBMIT_LIMIT_WORDS.length + 2, reason.indexOf(")", SUBMIT_LIMIT_WORDS.length))
    : null;
}

/** The most useful line of sbatch's stderr, without the `sbatch: error:` prefix. */
export function sbatchErrorMessage(stderr: string): string {
  const lines = stderr
    .split(/\r?\n/)
    .map((l) => l.replace(/^sbatch:\s*(error|fatal):\s*/i, "").trim())
    .filter((l) => l !== "" && !/^sbatch:\s*(warning|info)/i.test(l));
  const failed = lines.find((l) => /Batch job submission failed/i.test(l));
  const detail = lines.filter((l) => l !== failed).join("; ");
  const main = failed?.replace(/^Batch job submission failed:\s*/i, "");
  return [detail, main].filter(Boolean).join(": ").slice(0, 1_000);
}
