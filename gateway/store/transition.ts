/**
 * Guarded writes to one job: every change bumps `last_seq` and appends the matching event row, in
 * one atomic batch, only if nobody changed the job since it was read (optimistic concurrency on
 * last_seq). A zero-row update means "lost the race": the caller re-reads and decides again. The two
 * statements must stay adjacent in a batch: the event checks that the update just before it landed.
 */
import type { InStatement } from "@libsql/client";

export type EventInput = {
  actor: string;
  type: "state" | "cancel_requested" | "note";
  state?: string | null;
  detail?: string | null;
};

/** SET fragments with positional values, e.g. `{ state: "running", exit_code: 3 }`. */
export type JobChanges = Record<string, string | number | null>;

export function guardedTransition(
  jobId: string,
  expectedSeq: number,
  changes: JobChanges,
  event: EventInput,
  now: number,
): InStatement[] {
  const columns = Object.keys(changes);
  const assignments = columns.map((column) => `${column} = ?`).join(", ");
  return [
    {
      sql: `UPDATE jobs SET ${assignments}${columns.length ? ", " : ""}last_seq = last_seq + 1, updated_at = ? WHERE id = ? AND last_seq = ?`,
      args: [...columns.map((c) => changes[c] ?? null), now, jobId, expectedSeq],
    },
    {
      // changes(): only after this update itself landed. The seq alone is not enough: a writer that
      // changed the job once since it was read leaves it at exactly expectedSeq + 1, and its event
      // is there already.
      sql: "INSERT INTO job_events (job_id, seq, at, actor, type, state, detail) SELECT id, last_seq, ?, ?, ?, ?, ? FROM jobs WHERE id = ? AND last_seq = ? AND changes() = 1",
      args: [now, event.actor, event.type, event.state ?? null, event.detail ?? null, jobId, expectedSeq + 1],
    },
  ];
}
