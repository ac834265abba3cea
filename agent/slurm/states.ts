/**
 * Slurm job states mapped onto slurmgate's JobState, by one exhaustive switch.
 *
 * Unknown strings map to null ("unknown"), never to a terminal state: a job is only reported
 * completed on positive evidence (RELIABILITY §1.7; Parsl's and Galaxy's wrong defaults).
 */
import type { JobState } from "../../schemas/job.ts";

/** Every base state Slurm 22.05–25.x prints in squeue `%T` and sacct `State`. */
export const SLURM_STATES = [
  "PENDING",
  "CONFIGURING",
  "RUNNING",
  "COMPLETING",
  "SUSPENDED",
  "STAGE_OUT",
  "SIGNALING",
  "RESIZING",
  "REQUEUED",
  "REQUEUE_FED",
  "REQUEUE_HOLD",
  "RESV_DEL_HOLD",
  "SPECIAL_EXIT",
  "STOPPED",
  "REVOKED",
  "COMPLETED",
  "FAILED",
  "TIMEOUT",
  "DEADLINE",
  "OUT_OF_MEMORY",
  "CANCELLED",
  "NODE_FAIL",
  "BOOT_FAIL",
  "PREEMPTED",
] as const;
export type SlurmState = (typeof SLURM_STATES)[number];

/**
 * Normalises a state as printed: `CANCELLED by 0` → `CANCELLED`, `CA` → `CANCELLED`, trailing `+` dropped.
 * Returns null for strings that are not a known Slurm state.
 */
export function normalizeSlurmState(raw: string): SlurmState | null {
  const word = raw.trim().split(/\s+/, 1)[0]?.replace(/\+$/, "").toUpperCase() ?? "";
  const full = SHORT_CODES[word] ?? word;
  return (SLURM_STATES as readonly string[]).includes(full) ? (full as SlurmState) : null;
}

/**
 * Maps a Slurm state to a slurmgate JobState; null when the string is not a known state.
 * @example
 * toJobState("CANCELLED by 0") // => "cancelled"
 * toJobState("WEIRD") // => null
 */
export function toJobState(raw: string): JobState | null {
  const state = normalizeSlurmState(raw);
  return state === null ? null : mapState(state);
}

function mapState(state: SlurmState): JobState {
  switch (state) {
    case "PENDING":
    case "REQUEUED": // back in the queue (requeue by admin or by Slurm)
    case "REQUEUE_FED":
    case "REQUEUE_HOLD":
    case "RESV_DEL_HOLD":
    case "SPECIAL_EXIT": // held in the queue after an exit code the site marked special
    case "REVOKED": // federation: this sibling was revoked; the job lives on another cluster
      return "pending";
    case "CONFIGURING":
    case "RUNNING":
    case "COMPLETING":
    case "SUSPENDED":
    case "STAGE_OUT":
    case "SIGNALING":
    case "RESIZING":
    case "STOPPED":
      return "running";
    case "COMPLETED":
      return "completed";
    case "FAILED":
      return "failed";
    case "TIMEOUT":
    case "DEADLINE":
      return "timeout";
    case "OUT_OF_MEMORY":
      return "out_of_memory";
    case "CANCELLED":
      return "cancelled";
    case "NODE_FAIL":
    case "BOOT_FAIL":
      return "node_fail";
    case "PREEMPTED":
      return "preempted";
    default: {
      const unreachable: never = state;
      return unreachable;
    }
  }
}

/** squeue's compact `%t` codes. */
const SHORT_CODES: Readonly<Record<string, SlurmState>> = {
  PD: "PENDING",
  CF: "CONFIGURING",
  R: "RUNNING",
  CG: "COMPLETING",
  S: "SUSPENDED",
  SO: "STAGE_OUT",
  SI: "SIGNALING",
  RS: "RESIZING",
  RQ: "REQUEUED",
  RF: "REQUEUE_FED",
  RH: "REQUEUE_HOLD",
  RD: "RESV_DEL_HOLD",
  SE: "SPECIAL_EXIT",
  ST: "STOPPED",
  RV: "REVOKED",
  CD: "COMPLETED",
  F: "FAILED",
  TO: "TIMEOUT",
  DL: "DEADLINE",
  OOM: "OUT_OF_MEMORY",
  CA: "CANCELLED",
  NF: "NODE_FAIL",
  BF: "BOOT_FAIL",
  PR: "PREEMPTED",
};
