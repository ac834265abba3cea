/**
 * sacct: one call for the jobs that left the queue, bounded by a start time because Slurm reuses
 * job ids (desispec #2049). Accounting may be off: that is "unavailable", never "absent".
 */
import type { JobState } from "../../schemas/job.ts";
import { checkJobIds, lines, nullable, parseExitCode, splitFields } from "./fields.ts";
import { type SacctCode, type SlurmResult, failed, succeeded } from "./result.ts";
import { toJobState } from "./states.ts";

/** Columns, comment last (free text, may contain `|`). Needs AccountingStoreFlags=job_comment for Comment. */
export const SACCT_FIELDS = [
  "JobID",
  "JobIDRaw",
  "State",
  "ExitCode",
  "Submit",
  "Start",
  "End",
  "Partition",
  "Comment",
] as const;

/** One sacct allocation record (`-X`: no step lines). */
export interface SacctRow {
  /** `123`, or `123_4` for an array task. */
  slurmJobId: string;
  rawJobId: string;
  /** Slurm's state word (`CANCELLED by 0` → `CANCELLED by 0` kept; see jobState). */
  state: string;
  jobState: JobState | null;
  exitCode: number | null;
  signal: number | null;
  submitTime: string | null;
  startTime: string | null;
  endTime: string | null;
  partition: string | null;
  comment: string | null;
}

/** Result of a sacct call: rows, or why there are none that can be trusted. */
export type SacctResult = SlurmResult<SacctRow[], SacctCode>;

/** What to ask sacct for. */
export interface SacctQuery {
  /** Lower bound on the records' time (sacct `--starttime`): the oldest tracked submit time minus skew. */
  since: Date;
  /** Job ids; omit to list all of the user's jobs since `since` (lookup by tag). */
  ids?: readonly string[];
}

/**
 * sacct argv.
 * @example
 * buildSacctArgs({ since: new Date("2026-11-22T10:00:00Z"), ids: ["12", "13"] })
 * // => ["-X", "-P", "-n", "-o", "JobID,…,Comment", "--starttime=2026-11-22T10:00:00", "--jobs=12,13"]
 */
export function buildSacctArgs(query: SacctQuery): string[] {
  const args = ["-X", "-P", "-n", "-o", SACCT_FIELDS.join(","), `--starttime=${slurmTime(query.since)}`];
  if (query.ids !== undefined) {
    checkJobIds(query.ids);
    if (query.ids.length === 0) {
      throw new Error("sacct: empty id list would list every job");
    }
    args.push(`--jobs=${query.ids.join(",")}`);
  }
  return args;
}

/**
 * Parses a finished sacct call.
 * @example
 * parseSacct({ code: 1, stdout: "", stderr: "sacct: error: Slurm accounting storage is disabled\n" })
 * // => { ok: false, retryable: false, code: "unavailable", message: "Slurm accounting storage is disabled" }
 */
export function parseSacct(result: { code: number | null; stdout: string; stderr: string }): SacctResult {
  if (
    /accounting storage is disabled|Problem talking to the database|slurmdbd.*(not responding|connection)|Connection refused/i.test(
      result.stderr,
    )
  ) {
    // Switched off stays off until an admin turns it on; a database that did not answer may next time.
    const disabled = /accounting storage is disabled/i.test(result.stderr);
    return failed("unavailable", firstError(result.stderr), !disabled);
  }
  if (result.code !== 0) {
    return failed("failed", firstError(result.stderr) || `sacct exited ${result.code}`, true);
  }
  return succeeded(parseSacctRows(result.stdout));
}

/** Parses `-P -n` rows in {@link SACCT_FIELDS} order; malformed lines are skipped. */
export function parseSacctRows(stdout: string): SacctRow[] {
  const rows: SacctRow[] = [];
  for (const line of lines(stdout)) {
    const f = splitFields(line, SACCT_FIELDS.length);
    if (!f) {
      continue;
    }
    const [id = "", raw = "", state = "", exit, submit, start, end, partition, comment] = f;
    const code = parseExitCode(exit);
    rows.push({
      slurmJobId: id.trim(),
      rawJobId: raw.trim(),
      state: state.trim(),
      jobState: toJobState(state),
      exitCode: code?.exitCode ?? null,
      signal: code?.signal ?? null,
      submitTime: nullable(submit),
      startTime: nullable(start),
      endTime: nullable(end),
      partition: nullable(partition),
      comment: nullable(comment),
    });
  }
  return rows;
}

/** sacct wants local wall-clock time without a zone; we pass UTC and make sacct run with TZ=UTC. */
function slurmTime(d: Date): string {
  return d.toISOString().slice(0, 19);
}

function firstError(stderr: string): string {
  const line = stderr.split(/\r?\n/).find((l) => l.trim() !== "") ?? "";
  return line.replace(/^sacct:\s*(error|fatal):\s*/i, "").trim();
}
