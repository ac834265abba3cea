/**
 * `spec.launcher`: how the wrapper runs the payload on every node of the allocation.
 *
 * Only typed numbers leave this module (as `--flag=<digits>` options); the wrapper finds the head
 * node itself (`scontrol show hostnames "$SLURM_JOB_NODELIST"`, the first), exports it, and builds
 * the `srun` line as an argv array around the payload's argv. The one per-node value torchrun needs,
 * `--node_rank`, is put in by a fixed shim on each node from `$SLURM_NODEID`, never by shell text
 * that holds user strings.
 */
import type { JobSpec } from "../../schemas/job.ts";
import { RenderError } from "./errors.ts";

/**
 * Every job has its own range of `size` ports, chosen by its Slurm job id, so two jobs on one node
 * (services, a torchrun rendezvous, a Ray head) do not pick the same one. Ids `slots` apart share a
 * range; the wrapper still checks that a service's port is free.
 */
export const JOB_PORT_RANGE = { first: 20_000, slots: 1_400, size: 32 } as const;

/**
 * The ports of the job with this Slurm job id: services count up from `low`, the launcher's head
 * port is `high`.
 * @example jobPortRange(37394) // => { low: 20000 + (37394 % 1400) * 32, high: low + 31 }
 */
export function jobPortRange(slurmJobId: number): { low: number; high: number } {
  const low = JOB_PORT_RANGE.first + (Math.trunc(slurmJobId) % JOB_PORT_RANGE.slots) * JOB_PORT_RANGE.size;
  return { low, high: low + JOB_PORT_RANGE.size - 1 };
}

/** The same rule as {@link jobPortRange}, as the wrapper's shell functions (job id from Slurm). */
export function portRangeShell(): string {
  const { first, slots, size } = JOB_PORT_RANGE;
  return [
    `sg_port_base() { printf '%d' "$((${first} + \${SLURM_JOB_ID:-$$} % ${slots} * ${size}))"; }`,
    `sg_port_head() { printf '%d' "$(($(sg_port_base) + ${size - 1}))"; }`,
  ].join("\n");
}

/** What the wrapper's parameter block carries for a launcher: its kind and its typed options. */
export interface LauncherParams {
  kind: "" | "srun" | "torchrun" | "ray";
  options: string[];
}

const int = (value: number, field: string, min: number, max: number): string => {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RenderError("invalid_spec", `${field}: an integer from ${min} to ${max}`, field);
  }
  return String(value);
};

/**
 * The launcher's kind and flags (empty kind without a launcher); throws {@link RenderError}.
 * @example launcherParams({ launcher: { kind: "torchrun", nprocPerNode: 4 } }) // => { kind: "torchrun", options: ["--nproc_per_node=4"] }
 */
export function launcherParams(spec: Pick<JobSpec, "launcher" | "array" | "services">): LauncherParams {
  const l = spec.launcher;
  if (l === undefined) {
    return { kind: "", options: [] };
  }
  if (spec.array !== undefined) {
    throw new RenderError("invalid_spec", "launcher: cannot be combined with an array job", "launcher");
  }
  if ((spec.services ?? []).length > 0) {
    throw new RenderError("invalid_spec", "launcher: cannot be combined with services", "launcher");
  }
  switch (l.kind) {
    case "srun":
      return { kind: "srun", options: [] };
    case "torchrun": {
      const options: string[] = [];
      if (l.nprocPerNode !== undefined) {
        options.push(`--nproc_per_node=${int(l.nprocPerNode, "launcher.nprocPerNode", 1, 1_024)}`);
      }
      if (l.maxRestarts !== undefined) {
        options.push(`--max_restarts=${int(l.maxRestarts, "launcher.maxRestarts", 0, 100)}`);
      }
      return { kind: "torchrun", options };
    }
    case "ray": {
      const options: string[] = [];
      if (l.numCpus !== undefined) {
        options.push(`--num-cpus=${int(l.numCpus, "launcher.numCpus", 0, 4_096)}`);
      }
      if (l.numGpus !== undefined) {
        options.push(`--num-gpus=${int(l.numGpus, "launcher.numGpus", 0, 64)}`);
      }
      return { kind: "ray", options };
    }
    default:
      throw new RenderError("invalid_spec", "launcher.kind: not a known launcher", "launcher.kind");
  }
}
