/**
 * Sweep elements claimed as Slurm arrays (Lease.batch): a freshly claimed element with a group key
 * brings its group's queued elements along, split at the cluster's MaxArraySize; a capped sweep gets
 * one array at a time; a taken-over array comes back whole. See docs/architecture.md.
 */
import type { InStatement } from "@libsql/client";
import { DEFAULT_MAX_ARRAY_SIZE } from "../../schemas/index.ts";
import type { Database } from "../db/client.ts";
import { HELD_STATES_SQL } from "../db/state-sql.ts";
import { newId } from "../ids.ts";
import { scopeCondition } from "./agent-scope.ts";
import { type ClaimInput, type Raw, RETURNING, TAKE, claimEvents, toRaw } from "./claim-rows.ts";
import { getCluster } from "./clusters.ts";
import { iso } from "./job-row.ts";
import { guardedTransition } from "./transition.ts";

const CAPPED = "waiting for the sweep's array in Slurm to end (the sweep has maxParallel: one array at a time)";

async function maxParallelOf(db: Database, sweepIds: string[]): Promise<Map<string, number | null>> {
  const rs = await db.client.execute({
    sql: "SELECT id, max_parallel FROM sweeps WHERE id IN (SELECT value FROM json_each(?))",
    args: [JSON.stringify(sweepIds)],
  });
  return new Map(rs.rows.map((r) => [String(r.id), r.max_parallel === null ? null : Number(r.max_parallel)]));
}

/**
 * The rows of a capped sweep this claim may keep: those of the group of its first element (or, if
 * that one has no group, up to maxParallel plain elements). The rest go back to the queue at once,
 * so two arrays of one capped sweep are never in Slurm together.
 */
function overCap(rows: Raw[], caps: Map<string, number | null>): Raw[] {
  const extra: Raw[] = [];
  const bySweep = new Map<string, Raw[]>();
  for (const row of rows) {
    if (row.fresh && row.sweepId !== null && caps.get(row.sweepId) != null) {
      bySweep.set(row.sweepId, [...(bySweep.get(row.sweepId) ?? []), row]);
    }
  }
  for (const [sweepId, members] of bySweep) {
    members.sort((a, b) => a.sweepIndex - b.sweepIndex);
    const lead = members[0]!;
    const cap = caps.get(sweepId) ?? 1;
    let plain = 0;
    for (const row of members) {
      const keep = lead.group !== null ? row.group === lead.group : row.group === null && plain++ < cap;
      if (!keep) {
        extra.push(row);
      }
    }
  }
  return extra;
}

/** Puts claimed rows back in the queue (guarded: a row that changed meanwhile is left alone). */
async function release(db: Database, rows: Raw[], reason: string, now: number): Promise<void> {
  if (rows.length > 0) {
    await db.write(
      rows.flatMap((row) =>
        guardedTransition(
          row.jobId,
          row.lastSeq,
          { state: "queued", reason, lease_owner: null, lease_expires_at: null, batch_id: null },
          { actor: "gateway", type: "state", state: "queued", detail: reason },
          now,
        ),
      ),
    );
  }
}

/**
 * Every queued element of each claimed group, in element order, taken with the same lease; up to
 * `maxArraySize` per group (what is left stays queued for the next claim).
 */
async function extendGroups(db: Database, input: ClaimInput, groups: Map<string, Raw[]>, maxArraySize: number) {
  const token = newId("claim");
  const expires = input.now + input.leaseMs;
  const owner = scopeCondition(input.scope ?? { kind: "any" });
  const statements: InStatement[] = [];
  for (const members of groups.values()) {
    const lead = members[0]!;
    const room = maxArraySize - members.length;
    if (room > 0) {
      statements.push({
        sql: `UPDATE jobs SET ${TAKE}
              WHERE id IN (SELECT id FROM jobs WHERE sweep_id = ? AND batch_group = ? AND state = 'queued'
                           AND run_after <= ?${owner.sql} ORDER BY sweep_index LIMIT ?)
              ${RETURNING}`,
        args: [input.agentId, expires, token, input.now, lead.sweepId, lead.group, input.now, ...owner.args, room],
      });
    }
  }
  if (statements.length === 0) {
    return;
  }
  const results = await db.write([
    ...statements,
    claimEvents(input.now, `agent:${input.cluster}/${input.agentId}`, token),
  ]);
  for (const result of results.slice(0, statements.length)) {
    for (const row of result.rows) {
      const raw = toRaw(row, iso(expires));
      groups.get(`${raw.sweepId}\n${raw.group}`)?.push(raw);
    }
  }
}

/**
 * A taken-over lease of an array brings every other expired lease of the same array along (beyond
 * `max`, like a fresh array), so the new holder reconciles the whole array with one lookup of its tag.
 */
async function takeOverBatches(db: Database, input: ClaimInput, rows: Raw[]): Promise<Raw[]> {
  const taken = new Set(rows.map((r) => r.jobId));
  const batchIds = [...new Set(rows.flatMap((r) => (!r.fresh && r.stored ? [r.stored.id] : [])))];
  if (batchIds.length === 0) {
    return [];
  }
  const token = newId("claim");
  const expires = input.now + input.leaseMs;
  const owner = scopeCondition(input.scope ?? { kind: "any" });
  const statements: InStatement[] = batchIds.map((batchId) => ({
    sql: `UPDATE jobs SET ${TAKE}
          WHERE id IN (SELECT id FROM jobs WHERE batch_id = ? AND state IN ${HELD_STATES_SQL} AND cluster = ?
                       AND lease_expires_at < ?${owner.sql})
          ${RETURNING}`,
    args: [input.agentId, expires, token, input.now, batchId, input.cluster, input.now, ...owner.args],
  }));
  const results = await db.write([
    ...statements,
    claimEvents(input.now, `agent:${input.cluster}/${input.agentId}`, token),
  ]);
  return results
    .slice(0, statements.length)
    .flatMap((result) => result.rows.map((row) => toRaw(row, iso(expires))))
    .filter((raw) => !taken.has(raw.jobId))
    .sort((a, b) => a.sweepIndex - b.sweepIndex);
}

/**
 * Sweep elements: freshly claimed ones with a group key become arrays (a fresh `bat_…` id, indexes
 * 0..k-1 in element order, k ≤ the cluster's MaxArraySize), stored on their rows so a lease taken
 * over later carries the same batch. A taken-over lease answers its stored batch; a plain job none.
 */
export async function claimBatches(db: Database, input: ClaimInput, claimed: Raw[]): Promise<Raw[]> {
  const sweepIds = [...new Set(claimed.flatMap((r) => (r.sweepId === null ? [] : [r.sweepId])))];
  const caps = await maxParallelOf(db, sweepIds);
  const extra = overCap(claimed, caps);
  await release(db, extra, CAPPED, input.now);
  const rows = claimed.filter((r) => !extra.includes(r));
  rows.push(...(await takeOverBatches(db, input, rows)));
  const groups = new Map<string, Raw[]>();
  for (const row of rows) {
    if (row.fresh && row.group !== null && row.spec.ok) {
      const key = `${row.sweepId}\n${row.group}`;
      groups.set(key, [...(groups.get(key) ?? []), row]);
    } else if (!row.fresh && row.stored && row.sweepId !== null) {
      row.batch = { ...row.stored, maxParallel: caps.get(row.sweepId) ?? null };
    }
  }
  if (groups.size === 0) {
    return rows;
  }
  const inventory = (await getCluster(db, input.cluster))?.inventory;
  const maxArraySize = inventory?.maxArraySize ?? DEFAULT_MAX_ARRAY_SIZE;
  await extendGroups(db, input, groups, maxArraySize);
  const assign: InStatement[] = [];
  const batched: Raw[] = [];
  const waiting: Raw[] = [];
  for (const members of groups.values()) {
    // Only valid specs join an array: a corrupt element is rejected on its own by the lease call.
    const sorted = members.filter((m) => m.spec.ok).sort((a, b) => a.sweepIndex - b.sweepIndex);
    const maxParallel = caps.get(sorted[0]?.sweepId ?? "") ?? null;
    // A capped sweep gets one array now; what does not fit waits for it to end.
    const valid = maxParallel === null ? sorted : sorted.slice(0, maxArraySize);
    waiting.push(...sorted.slice(valid.length));
    for (let start = 0; start < valid.length; start += maxArraySize) {
      const chunk = valid.slice(start, start + maxArraySize);
      const id = newId("bat", input.now);
      chunk.forEach((row, index) => {
        row.batch = { id, index, size: chunk.length, maxParallel };
      });
      assign.push({
        sql: `UPDATE jobs SET batch_id = ?, batch_size = ?, batch_index = b.key
              FROM json_each(?) AS b WHERE jobs.id = b.value`,
        args: [id, chunk.length, JSON.stringify(chunk.map((r) => r.jobId))],
      });
      batched.push(...chunk);
    }
    batched.push(...members.filter((m) => !m.spec.ok));
  }
  await db.write(assign);
  await release(db, waiting, CAPPED, input.now);
  const inGroups = new Set([...batched, ...waiting]);
  return [...rows.filter((r) => !inGroups.has(r)), ...batched];
}
