/**
 * The `#SBATCH` block: only allow-listed options, each value re-validated before it is emitted.
 *
 * sbatch reads directives until the first non-comment line, and no value may contain whitespace,
 * quotes or a newline, so every value here matches a strict pattern (the same ones the gateway
 * applies; validate twice). Anything else throws a RenderError.
 */
import { LeaseBatch } from "../../schemas/agent.ts";
import { DependencyCondition, type JobSpec } from "../../schemas/job.ts";
import {
  ABSOLUTE_PATH,
  ARRAY_INDEXES,
  JOB_NAME,
  MEMORY,
  SBATCH_ARG,
  SLURM_NAME,
  durationSeconds,
} from "../../schemas/patterns.ts";
import { ownedReason, sbatchOptionName } from "../../schemas/sbatch.ts";
import { RenderError, requireMatch } from "./errors.ts";

const JOB_ID = /^job_[0-9a-z]{20,40}$/;
const SLURM_JOB_ID = /^\d{1,12}(_\d{1,7})?$/;

/** Inputs the directive block needs beyond the spec. */
export interface DirectiveInput {
  spec: JobSpec;
  jobId: string;
  attempt: number;
  jobDir: string;
  workdir: string;
  dependsOnSlurmIds: readonly { slurmJobId: string; condition: string }[];
  /** Option names (`--constraint`) this cluster lets users pass through `extraSbatchArgs`. */
  allowedSbatchArgs: readonly string[];
  /**
   * A sweep batch: one array whose task `i` is the element at batch index `i`. `jobDir` is then the
   * batch directory (Slurm's own output per task goes there; the wrapper moves the element's logs
   * to its own job directory), and the tag is the batch's.
   */
  batch?: { id: string; indexes: readonly number[]; maxParallel: number | null };
}

/**
 * Builds the `#SBATCH` lines in a fixed order.
 * @example
 * buildDirectives({ spec, jobId, attempt: 1, jobDir, workdir: jobDir, dependsOnSlurmIds: [], allowedSbatchArgs: [] })
 * // => ["#SBATCH --job-name=train", "#SBATCH --comment=slurmgate:job_…:1", …]
 */
export function buildDirectives(input: DirectiveInput): string[] {
  const { spec } = input;
  const opts: string[] = [];
  const add = (option: string, value: string | number) => opts.push(`${option}=${value}`);

  const { batch } = input;
  if (batch && (spec.array !== undefined || input.dependsOnSlurmIds.length > 0)) {
    throw new RenderError("invalid_spec", "a sweep batch element cannot be an array or depend on jobs", "array");
  }
  add("--job-name", requireMatch(spec.name, JOB_NAME, "name"));
  add("--comment", batch ? batchTag(batch.id) : slurmgateTag(input.jobId, input.attempt));
  // Nothing from the submitting process (the agent, its token) may reach the job; see README in render.ts.
  add("--export", "NONE");
  // Retries are the gateway's business (a new attempt, a new tag); Slurm must not rerun a job itself.
  opts.push("--no-requeue");
  add("--chdir", requireMatch(input.workdir, ABSOLUTE_PATH, "workdir", "path_outside_roots"));
  const jobDir = requireMatch(input.jobDir, ABSOLUTE_PATH, "jobDir", "path_outside_roots");
  const suffix = spec.array || batch ? ".%a" : "";
  add("--output", `${jobDir}/stdout${suffix}`);
  add("--error", `${jobDir}/stderr${suffix}`);

  if (spec.partition !== undefined) {
    add("--partition", requireMatch(spec.partition, SLURM_NAME, "partition"));
  }
  if (spec.account !== undefined) {
    add("--account", requireMatch(spec.account, SLURM_NAME, "account"));
  }
  if (spec.qos !== undefined) {
    add("--qos", requireMatch(spec.qos, SLURM_NAME, "qos"));
  }

  const r = spec.resources;
  if (r.nodes !== undefined) {
    add("--nodes", positiveInt(r.nodes, "resources.nodes"));
  }
  if (r.ntasksPerNode !== undefined) {
    add("--ntasks-per-node", positiveInt(r.ntasksPerNode, "resources.ntasksPerNode"));
  }
  if (r.cpusPerTask !== undefined) {
    add("--cpus-per-task", positiveInt(r.cpusPerTask, "resources.cpusPerTask"));
  }
  if (r.memPerNode !== undefined && r.memPerCpu !== undefined) {
    throw new RenderError("invalid_spec", "resources: give memPerNode or memPerCpu, not both", "resources.memPerCpu");
  }
  if (r.memPerNode !== undefined) {
    add("--mem", requireMatch(r.memPerNode, MEMORY, "resources.memPerNode"));
  }
  if (r.memPerCpu !== undefined) {
    add("--mem-per-cpu", requireMatch(r.memPerCpu, MEMORY, "resources.memPerCpu"));
  }
  if (r.gpus !== undefined) {
    const type = r.gpus.type === undefined ? "" : `${requireMatch(r.gpus.type, SLURM_NAME, "resources.gpus.type")}:`;
    add("--gres", `gpu:${type}${positiveInt(r.gpus.count, "resources.gpus.count")}`);
  }
  if (r.time !== undefined) {
    add("--time", timeMinutes(r.time));
  }
  if (spec.checkpoint !== undefined) {
    // B: signals the batch shell (the wrapper), which passes it on to the payload; steps are not ours.
    const { signal, secondsBeforeLimit } = spec.checkpoint;
    if (signal !== "USR1" && signal !== "USR2") {
      throw new RenderError("invalid_spec", "checkpoint.signal: USR1 or USR2", "checkpoint.signal");
    }
    const seconds = positiveInt(secondsBeforeLimit, "checkpoint.secondsBeforeLimit");
    if (seconds > 65_535) {
      throw new RenderError(
        "invalid_spec",
        "checkpoint.secondsBeforeLimit: at most 65535",
        "checkpoint.secondsBeforeLimit",
      );
    }
    add("--signal", `B:${signal}@${seconds}`);
  }

  if (spec.array !== undefined) {
    const indexes = requireMatch(spec.array.indexes, ARRAY_INDEXES, "array.indexes");
    const max =
      spec.array.maxParallel === undefined ? "" : `%${positiveInt(spec.array.maxParallel, "array.maxParallel")}`;
    add("--array", `${indexes}${max}`);
  }
  if (batch) {
    const max = batch.maxParallel === null ? "" : `%${positiveInt(batch.maxParallel, "batch.maxParallel")}`;
    add("--array", `${formatIndexes(batch.indexes)}${max}`);
  }
  const dependency = dependencyValue(input.dependsOnSlurmIds);
  if (dependency !== undefined) {
    add("--dependency", dependency);
  }

  for (const [index, arg] of spec.extraSbatchArgs.entries()) {
    opts.push(checkExtraArg(arg, index, input.allowedSbatchArgs));
  }
  return opts.map((o) => `#SBATCH ${o}`);
}

/** The exactly-once tag put in `--comment`: `slurmgate:<jobId>:<attempt>`. */
export function slurmgateTag(jobId: string, attempt: number): string {
  requireMatch(jobId, JOB_ID, "jobId");
  return `slurmgate:${jobId}:${positiveInt(attempt, "attempt", 0)}`;
}

/** The tag of a sweep batch's array: `slurmgate:batch:<batch id>`; each task is one element. */
export function batchTag(batchId: string): string {
  if (!LeaseBatch.shape.id.safeParse(batchId).success) {
    throw new RenderError("invalid_spec", `batch.id: ${JSON.stringify(batchId)} is not a batch id`, "batch.id");
  }
  return `slurmgate:batch:${batchId}`;
}

/**
 * Distinct array indexes as Slurm's `--array` list, runs folded into ranges.
 * @example formatIndexes([0, 1, 2, 5, 7, 8]) // => "0-2,5,7-8"
 */
export function formatIndexes(indexes: readonly number[]): string {
  const sorted = [...new Set(indexes)].sort((a, b) => a - b);
  if (sorted.length === 0 || !sorted.every((i) => Number.isSafeInteger(i) && i >= 0 && i <= 9_999_999)) {
    throw new RenderError("invalid_spec", "batch indexes: a non-empty list of integers 0..9999999", "batch.index");
  }
  const parts: string[] = [];
  let start = sorted[0]!;
  for (let k = 1; k <= sorted.length; k++) {
    const prev = sorted[k - 1]!;
    if (k === sorted.length || sorted[k] !== prev + 1) {
      parts.push(start === prev ? `${start}` : `${start}-${prev}`);
      start = sorted[k]!;
    }
  }
  return parts.join(",");
}

/** Converts a spec duration to whole minutes for `--time`, rounded up, at least 1. */
export function timeMinutes(value: string): number {
  const seconds = durationSeconds(value);
  if (seconds === undefined) {
    throw new RenderError(
      "invalid_spec",
      `resources.time: ${JSON.stringify(value)} is not a duration`,
      "resources.time",
    );
  }
  return Math.max(1, Math.ceil(seconds / 60));
}

/** `afterok:1:2,afterany:3`: one group per condition, in first-seen order. */
function dependencyValue(deps: DirectiveInput["dependsOnSlurmIds"]): string | undefined {
  const groups = new Map<string, string[]>();
  for (const dep of deps) {
    const condition = DependencyCondition.safeParse(dep.condition);
    if (!condition.success) {
      throw new RenderError(
        "slurm_dependency",
        `dependency condition ${JSON.stringify(dep.condition)} is not allowed`,
        "dependsOn",
      );
    }
    requireMatch(dep.slurmJobId, SLURM_JOB_ID, "dependsOn.slurmJobId", "slurm_dependency");
    const ids = groups.get(condition.data) ?? [];
    ids.push(dep.slurmJobId);
    groups.set(condition.data, ids);
  }
  if (groups.size === 0) {
    return undefined;
  }
  return [...groups].map(([condition, ids]) => [condition, ...ids].join(":")).join(",");
}

function checkExtraArg(arg: string, index: number, allowed: readonly string[]): string {
  const field = `extraSbatchArgs.${index}`;
  requireMatch(arg, SBATCH_ARG, field, "policy_rejected");
  const name = sbatchOptionName(arg);
  // The same list the gateway refuses at submission (schemas/sbatch.ts), whatever the allow-list says.
  const owned = ownedReason(name);
  if (owned) {
    throw new RenderError("policy_rejected", `${field}: ${owned}`, field);
  }
  if (!allowed.includes(name)) {
    throw new RenderError("policy_rejected", `${field}: ${name} is not allowed on this cluster`, field);
  }
  return arg;
}

function positiveInt(n: number, field: string, min = 1): number {
  if (!Number.isSafeInteger(n) || n < min) {
    throw new RenderError("invalid_spec", `${field}: must be an integer >= ${min}`, field);
  }
  return n;
}
