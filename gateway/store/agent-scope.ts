/**
 * Whose jobs an agent may take. A personal agent's scope is its token's user; a site agent's is the
 * list of slurmgate names its inventory published (its mapping file's left-hand side); an agent
 * with neither runs every job of its cluster as itself. The scope becomes part of the claim
 * statement itself, so no other user's row is ever updated, let alone returned.
 */
import type { AgentIdentity } from "../../schemas/index.ts";
import type { Database } from "../db/client.ts";

export type AgentScope = { kind: "any" } | { kind: "user"; user: string } | { kind: "users"; users: string[] };

/**
 * The SQL condition for a scope and its argument. `owner = ?` reads jobs_claim_owner (cluster,
 * owner, state, id), so a personal agent's claim reads only its user's rows, in queue order, however
 * long other users' queues are. `owner IN (json_each(?))` is planned on jobs_claim_queue (the
 * cluster's queued rows in queue order, filtered by owner): bounded by the live queue, never by
 * history (test/gateway/query-plans.test.ts).
 */
export function scopeCondition(scope: AgentScope): { sql: string; args: string[] } {
  switch (scope.kind) {
    case "any":
      return { sql: "", args: [] };
    case "user":
      return { sql: " AND owner = ?", args: [scope.user] };
    case "users":
      return { sql: " AND owner IN (SELECT value FROM json_each(?))", args: [JSON.stringify(scope.users)] };
  }
}

export function scopeAllows(scope: AgentScope, owner: string): boolean {
  return scope.kind === "any" || (scope.kind === "user" ? scope.user === owner : scope.users.includes(owner));
}

/** What an agents row says (token user, published site mapping) as a scope. */
export function scopeOf(row: { user: string | null; serves: string[] | null }): AgentScope {
  if (row.user !== null) {
    return { kind: "user", user: row.user };
  }
  return row.serves ? { kind: "users", users: row.serves } : { kind: "any" };
}

/** The `serves` column for a published identity: only a site agent narrows an unbound token. */
export function servesOf(identity: AgentIdentity | undefined): string[] | null {
  return identity?.mode === "site" ? [...new Set(identity.users)].sort() : null;
}

/** The scope of one agent process of an unbound token, from what its last inventory published. */
export async function readAgentScope(db: Database, cluster: string, agentId: string): Promise<AgentScope> {
  const rs = await db.client.execute({
    sql: "SELECT user, serves FROM agents WHERE cluster = ? AND agent_id = ?",
    args: [cluster, agentId],
  });
  const row = rs.rows[0];
  if (!row) {
    return { kind: "any" };
  }
  return scopeOf({
    user: row.user === null ? null : String(row.user),
    serves: row.serves === null ? null : (JSON.parse(String(row.serves)) as string[]),
  });
}

/**
 * The id a personal agent's process is known by: prefixed with its token's user, so one user's
 * agent can never name itself after another agent and renew, report on or see cancels of its jobs.
 */
export function effectiveAgentId(user: string | null, agentId: string): string {
  return user === null ? agentId : `${user}@${agentId}`;
}
