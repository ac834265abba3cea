/**
 * A jobs table with years of history, written fast: one transaction of multi-row INSERTs on a temp
 * file DB. 1% of the rows are live (half running on alpha, held by agents; half queued on beta, which
 * has no agent, so a lease on alpha finds nothing to claim); the rest are finished, as a centre's
 * table is after a while. Every row has a label shared by 1,000 jobs (`batch=b<n>`) and one shared
 * by a tenth of all jobs (`project=p<n>`).
 */
import type { Client, InArgs } from "@libsql/client";
import { newId } from "../gateway/ids.ts";
import { JobSpec } from "../schemas/index.ts";

export const HISTORY_OWNERS = Array.from({ length: 20 }, (_, i) => `u${i}`);
/** The agent whose lease calls are measured holds this many running jobs; the rest are another agent's. */
export const HELD_BY_BENCH_AGENT = 20;

const FINISHED = ["completed", "completed", "completed", "completed", "failed", "completed", "cancelled", "timeout"];
const ROWS_PER_INSERT = 400;

export type HistoryRow = { state: string; cluster: string; owner: string; batch: string; leaseOwner: string | null };

/**
 * What row `k` of `total` looks like. The measured user, u0, has history like everyone else and
 * exactly 5 running jobs, the newest: `?state=running` answers the same 5 at every tier, and
 * proving there is no sixth is what used to read all of u0's history.
 */
export function historyRow(k: number, total: number): HistoryRow {
  const m = Math.floor(k / 200);
  const owner = HISTORY_OWNERS[(k + m) % HISTORY_OWNERS.length]!;
  // Live rows go to u1…u19, except the newest five running ones.
  const liveOwner = m >= Math.floor(total / 200) - 5 ? HISTORY_OWNERS[0]! : HISTORY_OWNERS[1 + (m % 19)]!;
  const batch = `b${Math.floor(k / 1_000)}`;
  if (k % 200 === 199) {
    const leaseOwner = m < HELD_BY_BENCH_AGENT ? "bench-agent" : "other-agent";
    return { state: "running", cluster: "alpha", owner: liveOwner, batch, leaseOwner };
  }
  if (k % 200 === 99) {
    return { state: "queued", cluster: "beta", owner: HISTORY_OWNERS[1 + (m % 19)]!, batch, leaseOwner: null };
  }
  return { state: FINISHED[k % FINISHED.length]!, cluster: k % 3 ? "alpha" : "beta", owner, batch, leaseOwner: null };
}

/**
 * Inserts `total` jobs (and, when the schema has it, their job_labels rows) created over the
 * `total` milliseconds before `now`. Returns the ids of the running jobs `bench-agent` holds.
 */
export async function seedHistory(client: Client, total: number, now: number): Promise<string[]> {
  const spec = JSON.stringify(
    JobSpec.parse({ name: "history", command: ["python", "train.py"], labels: { project: "p0", batch: "b0" } }),
  );
  const sideTable =
    (await client.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'job_labels'")).rows.length > 0;
  const held: string[] = [];
  const leaseUntil = now + 3_600_000;
  // Secondary indexes are dropped for the load and built again after it: one sort per index instead
  // of a million random index inserts (the schema's own CREATE INDEX text, so nothing changes).
  const indexes = (
    await client.execute(
      "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name IN ('jobs', 'job_labels') AND sql IS NOT NULL",
    )
  ).rows.map((r) => ({ name: String(r.name), sql: String(r.sql) }));
  const tx = await client.transaction("write");
  try {
    for (const index of indexes) {
      await tx.execute(`DROP INDEX ${index.name}`);
    }
    for (let i = 0; i < total; i += ROWS_PER_INSERT) {
      const jobArgs: InArgs = [];
      const labelArgs: InArgs = [];
      const end = Math.min(total, i + ROWS_PER_INSERT);
      for (let k = i; k < end; k++) {
        const row = historyRow(k, total);
        const at = now - total + k;
        const id = newId("job", at);
        const labels = { project: `p${k % 10}`, batch: row.batch };
        if (row.leaseOwner === "bench-agent") {
          held.push(id);
        }
        jobArgs.push(
          id,
          row.owner,
          row.state,
          row.cluster,
          row.state === "running" ? String(k) : null,
          row.leaseOwner,
          row.leaseOwner ? leaseUntil : null,
          spec,
          JSON.stringify(labels),
          at,
          at,
        );
        labelArgs.push(id, row.owner, "project", labels.project, id, row.owner, "batch", labels.batch);
      }
      const rows = end - i;
      await tx.execute({
        sql: `INSERT INTO jobs (id, owner, name, state, cluster, partition, slurm_job_id, lease_owner, lease_expires_at,
                spec, labels, last_seq, created_at, updated_at)
              VALUES ${Array(rows).fill("(?, ?, 'history', ?, ?, 'cpu', ?, ?, ?, ?, ?, 5, ?, ?)").join(", ")}`,
        args: jobArgs,
      });
      if (sideTable) {
        await tx.execute({
          sql: `INSERT INTO job_labels (job_id, owner, key, value) VALUES ${Array(rows * 2)
            .fill("(?, ?, ?, ?)")
            .join(", ")}`,
          args: labelArgs,
        });
      }
    }
    for (const index of indexes) {
      await tx.execute(index.sql);
    }
    await tx.commit();
  } finally {
    tx.close();
  }
  return held;
}
