/**
 * squeue: one call lists every job the agent tracks (DESIGN invariant 3: O(1) RPCs per cycle).
 *
 * Format `%i|%A|%F|%K|%T|%r|%P|%V|%k`: display id (`123` or `123_4`), real job id, array job id,
 * array task id, full state, reason, partition, submit time, comment. The comment is last because
 * it is free text and may contain `|`. `-r` prints one line per array task.
 */
import { checkJobIds, lines, nullable, splitFields } from "./fields.ts";
import { toJobState } from "./states.ts";
import type { JobState } from "../../schemas/job.ts";

export const SQUEUE_FORMAT = "%i|%A|%F|%K|%T|%r|%P|%V|%k";

/** One squeue line. */
export interface SqueueRow {
  /** As squeue prints it: `123`, or `123_4` for an array task. */
  slurmJobId: string;
  /** The unique numeric id of this job or task (`%A`). */
  rawJobId: string;
  arrayJobId: string | null;
  arrayTaskId: string | null;
  /** Slurm's state, e.g. `PENDING`. */
  state: string;
  /** slurmgate's state; null when Slurm printed a state we do not know. */
  jobState: JobState | null;
  reason: string | null;
  partition: string | null;
  submitTime: string | null;
  comment: string | null;
}

/** Which jobs to list. */
export type SqueueSelector = { ids: readonly string[] } | { user: string } | { me: true } | { all: true };

/**
 * squeue argv listing jobs in every state (recently finished ones too, until MinJobAge).
 * With `ids`, squeue (22.05) skips ids it no longer knows, but exits 1 with "Invalid job id
 * specified" when it knows none of them: treat that as an empty list ({@link isInvalidJobIdError}).
 * Listing by user (or `--me`) avoids the case and also finds untracked jobs carrying our tag.
 * @example
 * buildSqueueArgs({ user: "alice" }) // => ["-h", "--states=all", "-r", "-o", SQUEUE_FORMAT, "--user=alice"]
 */
export function buildSqueueArgs(selector: SqueueSelector): string[] {
  const args = ["-h", "--states=all", "-r", "-o", SQUEUE_FORMAT];
  if ("ids" in selector) {
    checkJobIds(selector.ids);
    if (selector.ids.length === 0) {
      throw new Error("squeue: empty id list would list every job");
    }
    args.push(`--jobs=${selector.ids.join(",")}`);
  } else if ("user" in selector) {
    if (!/^[a-z_][a-z0-9_.-]{0,31}$/i.test(selector.user)) {
      throw new Error(`not a user name: ${JSON.stringify(selector.user)}`);
    }
    args.push(`--user=${selector.user}`);
  } else if ("me" in selector) {
    args.push("--me");
  }
  return args;
}

/** Parses squeue output in {@link SQUEUE_FORMAT}; malformed lines are skipped. */
export function parseSqueue(stdout: string): SqueueRow[] {
  const rows: SqueueRow[] = [];
  for (const line of lines(stdout)) {
    const f = splitFields(line, 9);
    if (!f) {
      continue;
    }
    const [id = "", raw = "", arrayJob, arrayTask, state = "", reason, partition, submit, comment] = f;
    rows.push({
      slurmJobId: id.trim(),
      rawJobId: raw.trim(),
      arrayJobId: nullable(arrayJob),
      arrayTaskId: nullable(arrayTask),
      state: state.trim(),
      jobState: toJobState(state),
      reason: nullable(reason),
      partition: nullable(partition),
      submitTime: nullable(submit),
      comment: nullable(comment),
    });
  }
  return rows;
}

/** squeue's error when an id in `--jobs` is unknown (already purged after MinJobAge). */
export function isInvalidJobIdError(stderr: string): boolean {
  return /Invalid job id specified/i.test(stderr);
}

/**
 * Rows whose comment is exactly the exactly-once tag `slurmgate:<jobId>:<attempt>`.
 * @example
 * findByTag(parseSqueue(out), "slurmgate:job_0123456789abcdefghij:1")
 */
export function findByTag<T extends { comment: string | null }>(rows: readonly T[], tag: string): T[] {
  return rows.filter((row) => row.comment === tag);
}
