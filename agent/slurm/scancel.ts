/**
 * scancel: one call cancels many jobs.
 */
import { checkJobIds } from "./fields.ts";

/**
 * argv for cancelling `ids` (plain ids or array tasks `123_4`) in one call.
 * @example
 * buildScancelArgs(["12", "13_2"]) // => ["12", "13_2"]
 */
export function buildScancelArgs(ids: readonly string[]): string[] {
  checkJobIds(ids);
  if (ids.length === 0) {
    throw new Error("scancel: nothing to cancel");
  }
  return [...new Set(ids)];
}

/**
 * scancel exits non-zero when some id is already gone; that is success for us (idempotent cancel).
 * Returns the ids scancel reported as unknown / already finished.
 */
export function parseScancelStderr(stderr: string): { gone: string[]; other: string[] } {
  const gone: string[] = [];
  const other: string[] = [];
  for (const line of stderr.split(/\r?\n/).filter((l) => l.trim() !== "")) {
    const m =
      /Kill job error on job id (\d+(?:_\d+)?): (Invalid job id specified|Job\/step already completing or completed)/i.exec(
        line,
      );
    if (m?.[1]) {
      gone.push(m[1]);
    } else {
      other.push(line.trim());
    }
  }
  return { gone, other };
}
