/**
 * How a job ended, in words, for the `reason` of a terminal job. Only facts the agent has evidence
 * for go in (Slurm's state and exit code, the wrapper's setup-status file, the spec's time limit):
 * a terminal reason is never a queue reason such as `Priority`.
 */
import type { EndingCode } from "../schemas/agent.ts";
import type { JobState, TerminalState } from "../schemas/job.ts";
import { durationSeconds } from "../schemas/patterns.ts";

export type Ending = {
  state: JobState;
  exitCode?: number | null;
  signal?: number | null;
  /**
   * 1-based setup line that failed, with its status, as the wrapper recorded it, and the last line
   * it wrote to stderr.
   */
  setup?: { line: number; status: number; stderrTail?: string } | null;
  /** The wrapper's own failure (exit 125 with its failure file): what it could not do. */
  wrapper?: { code: EndingCode; message: string } | null;
  /** The time limit the job asked for (`10m`, `1:00:00`); the partition's otherwise. */
  timeLimit?: string | null;
  /** slurmgate sent the scancel (the user asked for it). */
  cancelledByUser?: boolean;
};

/**
 * A compact duration: `600` s → `10m`, `5400` → `1h30m`, `172800` → `2d`.
 * @example formatSeconds(90) // => "1m30s"
 */
export function formatSeconds(total: number): string {
  const units: [string, number][] = [
    ["d", 86_400],
    ["h", 3_600],
    ["m", 60],
    ["s", 1],
  ];
  let rest = Math.max(0, Math.floor(total));
  let out = "";
  for (const [unit, size] of units) {
    if (rest >= size) {
      out += `${Math.floor(rest / size)}${unit}`;
      rest %= size;
    }
  }
  return out || "0s";
}

/** `exited 3`, `killed by signal 9`, `setup line 2 exited 127`: how the process itself ended. */
function howItExited(e: Ending): string | undefined {
  if (e.setup) {
    const tail = e.setup.stderrTail ? `: ${e.setup.stderrTail}` : "";
    return `setup line ${e.setup.line} exited ${e.setup.status}${tail}`;
  }
  if (e.wrapper) {
    return e.wrapper.message;
  }
  if (e.signal) {
    return `killed by signal ${e.signal}`;
  }
  if (e.exitCode !== undefined && e.exitCode !== null) {
    // The wrapper exits 128+N when its payload died of signal N (bash's convention).
    return e.exitCode > 128 && e.exitCode < 160
      ? `exited ${e.exitCode} (killed by signal ${e.exitCode - 128})`
      : `exited ${e.exitCode}`;
  }
  return undefined;
}

/**
 * One terminal job's (or array task's) ending in words.
 * @example
 * describeEnding({ state: "failed", exitCode: 3 }) // => "exited 3"
 * describeEnding({ state: "timeout", timeLimit: "10" }) // => "time limit 10m reached"
 */
export function describeEnding(e: Ending): string {
  switch (e.state as TerminalState) {
    case "completed":
      return "exited 0";
    case "failed":
      return howItExited(e) ?? "failed (Slurm recorded no exit code)";
    case "out_of_memory":
      return "killed: out of memory";
    case "timeout": {
      const seconds = e.timeLimit ? durationSeconds(e.timeLimit) : undefined;
      return seconds === undefined ? "time limit reached" : `time limit ${formatSeconds(seconds)} reached`;
    }
    case "cancelled":
      return e.cancelledByUser ? "cancelled by user" : "cancelled in Slurm, not through slurmgate";
    case "node_fail":
      return "a node it ran on failed";
    case "preempted":
      return "preempted by a higher-priority job";
    default:
      return String(e.state);
  }
}

/**
 * The stable code of an ending that is not a success; undefined for `completed`, and for a failure
 * with no evidence of how (no exit code).
 * @example endingCode({ state: "failed", exitCode: 2, setup: { line: 1, status: 2 } }) // => "setup_failed"
 */
export function endingCode(e: Ending): EndingCode | undefined {
  switch (e.state as TerminalState) {
    case "failed":
      if (e.setup) {
        return "setup_failed";
      }
      if (e.wrapper) {
        return e.wrapper.code;
      }
      if (e.signal || (e.exitCode != null && e.exitCode > 128 && e.exitCode < 160)) {
        return "killed_by_signal";
      }
      return e.exitCode != null ? "exited_nonzero" : undefined;
    case "out_of_memory":
      return "out_of_memory";
    case "timeout":
      return "time_limit";
    case "node_fail":
      return "node_fail";
    case "preempted":
      return "preempted";
    case "cancelled":
      return e.cancelledByUser ? "cancelled_by_user" : "cancelled_in_slurm";
    default:
      return undefined;
  }
}

/** Words for a count of tasks that ended one way: `failed`, `timed out`, … */
export const TASK_ENDING_WORDS: Readonly<Record<TerminalState, string>> = {
  completed: "completed",
  failed: "failed",
  cancelled: "cancelled",
  timeout: "timed out",
  out_of_memory: "ran out of memory",
  node_fail: "lost to a node failure",
  preempted: "preempted",
  rejected: "rejected",
  lost: "lost",
};
