/**
 * Asks for agents (schema.ts `agent_asks`, migration 0010): put by the gateway, taken by one agent
 * of the cluster in its lease call, answered once. Rows live seconds: the asker deletes its ask when
 * it stops waiting, and asks whose asker died are swept on each new ask through the expiry index.
 */
import type { Row } from "@libsql/client";
import { ANSWER_VALUE, AgentAsk, type AskKind, MAX_ASKS_PER_LEASE } from "../../schemas/asks.ts";
import type { Database } from "../db/client.ts";

export type NewAsk = { id: string; cluster: string; owner: string; kind: AskKind; body: object; expiresAt: number };

export async function insertAsk(db: Database, ask: NewAsk, now: number): Promise<void> {
  await db.write([
    { sql: "DELETE FROM agent_asks WHERE expires_at < ?", args: [now] },
    {
      sql: `INSERT INTO agent_asks (id, cluster, owner, kind, body, created_at, expires_at)
            VALUES (?, ?, ?, ?, ?, ?, ?)`,
      args: [ask.id, ask.cluster, ask.owner, ask.kind, JSON.stringify(ask.body), now, ask.expiresAt],
    },
  ]);
}

function rowToAsk(row: Row): AgentAsk | undefined {
  try {
    const parsed = AgentAsk.safeParse({
      ...JSON.parse(String(row.body)),
      id: row.id,
      kind: row.kind,
      owner: row.owner,
    });
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

const OPEN_ASK = `SELECT 1 FROM agent_asks
  WHERE cluster = ? AND taken_by IS NULL AND expires_at > ? AND (? IS NULL OR owner = ?) LIMIT 1`;

/**
 * Hands this cluster's open asks to one agent, oldest first; a personal agent (`user`) gets only
 * its own user's. A row that no longer parses is taken too (so it is not offered again) and dropped.
 */
export async function takeAsks(
  db: Database,
  query: { cluster: string; agentId: string; user: string | null; now: number },
): Promise<AgentAsk[]> {
  const { cluster, agentId, user, now } = query;
  // Every held lease call checks this each second or so: a read through the partial index costs
  // nothing, where an UPDATE would be a write transaction (an fsync on the embedded file) each time.
  const open = await db.client.execute({ sql: OPEN_ASK, args: [cluster, now, user, user] });
  if (open.rows.length === 0) {
    return [];
  }
  const [result] = await db.write([
    {
      sql: `UPDATE agent_asks SET taken_by = ?
            WHERE id IN (SELECT id FROM agent_asks
                         WHERE cluster = ? AND taken_by IS NULL AND expires_at > ? AND (? IS NULL OR owner = ?)
                         ORDER BY created_at LIMIT ?)
            RETURNING id, kind, owner, body`,
      args: [agentId, cluster, now, user, user, MAX_ASKS_PER_LEASE],
    },
  ]);
  return (result?.rows ?? []).flatMap((row) => rowToAsk(row) ?? []);
}

/** Records an agent's answer to an ask it took; false when it is not this agent's to answer or was answered. */
export async function answerAsk(
  db: Database,
  answer: { id: string; cluster: string; agentId: string; text: string },
): Promise<boolean> {
  const [result] = await db.write([
    {
      sql: `UPDATE agent_asks SET answer = ?
            WHERE id = ? AND cluster = ? AND taken_by = ? AND answer IS NULL`,
      args: [answer.text, answer.id, answer.cluster, answer.agentId],
    },
  ]);
  return (result?.rowsAffected ?? 0) === 1;
}

/** The kind of an ask this agent took and has not answered yet. */
export async function heldAskKind(
  db: Database,
  query: { id: string; cluster: string; agentId: string },
): Promise<AskKind | undefined> {
  const result = await db.client.execute({
    sql: "SELECT kind FROM agent_asks WHERE id = ? AND cluster = ? AND taken_by = ? AND answer IS NULL",
    args: [query.id, query.cluster, query.agentId],
  });
  const kind = String(result.rows[0]?.kind ?? "");
  return Object.hasOwn(ANSWER_VALUE, kind) ? (kind as AskKind) : undefined;
}

/** The answer's JSON text once there is one. */
export async function readAnswer(db: Database, id: string): Promise<string | null> {
  const result = await db.client.execute({ sql: "SELECT answer FROM agent_asks WHERE id = ?", args: [id] });
  const answer = result.rows[0]?.answer;
  return typeof answer === "string" ? answer : null;
}

/** Ends an ask whose asker stopped waiting: an agent that still holds it can no longer answer. */
export async function dropAsk(db: Database, id: string): Promise<void> {
  await db.write([{ sql: "DELETE FROM agent_asks WHERE id = ?", args: [id] }]);
}
