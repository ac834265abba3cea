/**
 * Agents: who is alive on which cluster, whom they serve, when they said goodbye.
 */
import { forgetRouting } from "../db/caches.ts";
import type { Database } from "../db/client.ts";
import { agents } from "../db/schema.ts";

export async function touchAgent(
  db: Database,
  input: {
    cluster: string;
    agentId: string;
    version?: string;
    mode?: string;
    cycleMs?: number | null;
    user?: string | null;
    serves?: string[] | null;
  },
  now: number,
) {
  const set: Partial<typeof agents.$inferInsert> = { lastSeenAt: now, stoppedAt: null };
  if (input.user !== undefined) {
    set.user = input.user;
  }
  if (input.serves !== undefined) {
    set.serves = input.serves;
  }
  if (input.version !== undefined) {
    set.version = input.version;
  }
  if (input.mode !== undefined) {
    set.mode = input.mode;
  }
  if (input.cycleMs !== undefined) {
    set.cycleMs = input.cycleMs;
  }
  await db.orm
    .insert(agents)
    .values({
      cluster: input.cluster,
      agentId: input.agentId,
      lastSeenAt: now,
      version: input.version ?? "",
      mode: input.mode ?? "local",
      cycleMs: input.cycleMs ?? null,
      user: input.user ?? null,
      serves: input.serves ?? null,
    })
    .onConflictDoUpdate({ target: [agents.cluster, agents.agentId], set });
  // Whom an agent serves (published with its inventory) changes what routing offers at once; a lease
  // call's heartbeat is seen within the routing view's TTL, so a busy agent does not empty the cache.
  if (input.serves !== undefined) {
    forgetRouting(db.caches);
  }
}

/** Agent rows as the rest of the gateway sees them. */
export type AgentRow = {
  cluster: string;
  agentId: string;
  version: string;
  mode: string;
  cycleMs: number | null;
  lastSeenAt: number;
  /** When the agent said goodbye; null while it runs. */
  stoppedAt: number | null;
  user: string | null;
  serves: string[] | null;
};

export async function listAgents(db: Database): Promise<AgentRow[]> {
  return db.orm.select().from(agents).orderBy(agents.cluster, agents.agentId);
}

/**
 * Records that an agent stopped. Idempotent: a repeated goodbye keeps the first time. Returns the
 * recorded stop time, or null when this cluster has no agent of that id (nothing is created).
 */
export async function markAgentStopped(
  db: Database,
  input: { cluster: string; agentId: string },
  now: number,
): Promise<number | null> {
  // A repeated goodbye keeps the first one's time (and the last-seen time it set).
  const rs = await db.client.execute({
    sql: `UPDATE agents SET last_seen_at = CASE WHEN stopped_at IS NULL THEN ? ELSE last_seen_at END,
            stopped_at = coalesce(stopped_at, ?)
          WHERE cluster = ? AND agent_id = ? RETURNING stopped_at`,
    args: [now, now, input.cluster, input.agentId],
  });
  forgetRouting(db.caches);
  const row = rs.rows[0];
  return row ? Number(row.stopped_at) : null;
}
