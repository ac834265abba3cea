/**
 * Small helpers shared by the Slurm output parsers.
 */

/** Splits a `|`-delimited line into `count` fields; the last field keeps any further `|` (free text goes last). */
export function splitFields(line: string, count: number): string[] | null {
  const parts = line.split("|");
  if (parts.length < count) {
    return null;
  }
  return [...parts.slice(0, count - 1), parts.slice(count - 1).join("|")];
}

/** Slurm prints `(null)`, `N/A`, `None`, `Unknown` or nothing for absent values. */
export function nullable(value: string | undefined): string | null {
  const v = value?.trim() ?? "";
  return v === "" || v === "(null)" || v === "N/A" || v === "None" || v === "Unknown" ? null : v;
}

/** Non-empty, trimmed lines. */
export function lines(stdout: string): string[] {
  return stdout
    .split(/\r?\n/)
    .map((l) => l.trimEnd())
    .filter((l) => l.trim() !== "");
}

/** A Slurm job id as slurmgate stores it: `123` or an array task `123_4`. */
export const SLURM_JOB_ID = /^\d{1,12}(_\d{1,7})?$/;

/** Throws unless every id is a plain Slurm job id (they become command-line arguments). */
export function checkJobIds(ids: readonly string[]): void {
  for (const id of ids) {
    if (!SLURM_JOB_ID.test(id)) {
      throw new Error(`not a Slurm job id: ${JSON.stringify(id)}`);
    }
  }
}

/** `exit:signal` as in sacct/scontrol `ExitCode` (`3:0`, `0:9`, `0:125`). */
export function parseExitCode(value: string | undefined): { exitCode: number; signal: number } | null {
  const m = /^(\d+):(\d+)$/.exec(value?.trim() ?? "");
  return m ? { exitCode: Number(m[1]), signal: Number(m[2]) } : null;
}
