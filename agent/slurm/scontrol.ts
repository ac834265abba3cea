/**
 * `scontrol show job -o`: the fallback status source when accounting is off. One call without
 * an id lists every job the controller still remembers (until MinJobAge), one job per line.
 */
import type { JobState } from "../../schemas/job.ts";
import { checkJobIds, lines, nullable, parseExitCode } from "./fields.ts";
import { toJobState } from "./states.ts";

/** One `scontrol show job -o` record. */
export interface ScontrolJob {
  /** `123`, or `123_4` for an array task. */
  slurmJobId: string;
  rawJobId: string;
  state: string;
  jobState: JobState | null;
  reason: string | null;
  exitCode: number | null;
  signal: number | null;
  comment: string | null;
  submitTime: string | null;
  startTime: string | null;
  endTime: string | null;
  /** Every key as printed, for fields not lifted above (WorkDir, StdOut, Command, …). */
  fields: Record<string, string>;
}

/**
 * argv for `scontrol show job -o [id]`; without an id it lists every job in one RPC.
 * @example
 * buildScontrolShowJobArgs("123") // => ["show", "job", "-o", "123"]
 */
export function buildScontrolShowJobArgs(id?: string): string[] {
  if (id === undefined) {
    return ["show", "job", "-o"];
  }
  checkJobIds([id]);
  return ["show", "job", "-o", id];
}

/**
 * Parses `scontrol show job -o` output. Values may contain spaces, so a new field starts only
 * at ` Key=` where Key looks like a scontrol key (`NumCPUs`, `AllocNode:Sid`, `CPUs/Task`).
 * A free-text value that itself contains ` Word=` (a user's comment) can be split wrongly;
 * slurmgate's own tags contain no spaces.
 */
export function parseScontrolShowJob(stdout: string): ScontrolJob[] {
  const jobs: ScontrolJob[] = [];
  for (const line of lines(stdout)) {
    if (!line.startsWith("JobId=")) {
      continue;
    }
    const fields = parseKeyValues(line);
    const jobId = fields.JobId ?? "";
    const arrayJob = nullable(fields.ArrayJobId);
    const arrayTask = nullable(fields.ArrayTaskId);
    const code = parseExitCode(fields.ExitCode);
    const state = fields.JobState ?? "";
    jobs.push({
      slurmJobId: arrayJob !== null && arrayTask !== null ? `${arrayJob}_${arrayTask}` : jobId,
      rawJobId: jobId,
      state,
      jobState: toJobState(state),
      reason: nullable(fields.Reason),
      exitCode: code?.exitCode ?? null,
      signal: code?.signal ?? null,
      comment: nullable(fields.Comment),
      submitTime: nullable(fields.SubmitTime),
      startTime: nullable(fields.StartTime),
      endTime: nullable(fields.EndTime),
      fields,
    });
  }
  return jobs;
}

/** argv for `scontrol show config`: the controller's configuration, one `Key = value` per line. */
export function buildScontrolShowConfigArgs(): string[] {
  return ["show", "config"];
}

/**
 * Slurm's MaxArraySize from `scontrol show config` (array indexes must be below it); null when
 * the line is missing or not a number in Slurm's range.
 * @example parseMaxArraySize("MaxArraySize            = 1001\n") // => 1001
 */
export function parseMaxArraySize(stdout: string): number | null {
  const m = /^MaxArraySize\s*=\s*(\d{1,8})\s*$/m.exec(stdout);
  const value = m ? Number(m[1]) : Number.NaN;
  return Number.isSafeInteger(value) && value >= 1 && value <= 4_000_001 ? value : null;
}

/** scontrol's answer for an id it no longer knows. */
export function isUnknownJobError(stderr: string): boolean {
  return /Invalid job id specified/i.test(stderr);
}

function parseKeyValues(line: string): Record<string, string> {
  const out: Record<string, string> = {};
  const keyAt = /(?:^| )([A-Za-z][A-Za-z0-9_:/]*)=/g;
  const starts: { key: string; valueStart: number; keyStart: number }[] = [];
  for (const m of line.matchAll(keyAt)) {
    const key = m[1] ?? "";
    const keyStart = (m.index ?? 0) + (m[0].startsWith(" ") ? 1 : 0);
    starts.push({ key, keyStart, valueStart: keyStart + key.length + 1 });
  }
  starts.forEach((s, i) => {
    const end = i + 1 < starts.length ? (starts[i + 1]?.keyStart ?? line.length) - 1 : line.length;
    out[s.key] = line.slice(s.valueStart, Math.max(s.valueStart, end)).trim();
  });
  return out;
}
