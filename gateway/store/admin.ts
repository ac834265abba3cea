/**
 * Users, tokens, clusters, grants and agents: the small, rarely written tables.
 */
import { and, eq, isNull, sql } from "drizzle-orm";
import { type ClusterConfig, Grant, type Inventory, type TokenKind } from "../../schemas/index.ts";
import { forgetPrincipals, forgetRouting } from "../db/caches.ts";
import type { Database } from "../db/client.ts";
import { agents, clusters, grants, tokens, users } from "../db/schema.ts";
import { newId } from "../ids.ts";
import { generateToken, hashToken } from "../tokens.ts";
import { iso } from "./job-row.ts";

const nullableNumber = (v: unknown) => (v === null || v === undefined ? null : Number(v));

/**
 * Creates or updates a user. `disabled` left undefined keeps the current state, so re-saving a
 * user (say, to make them an admin) never re-enables one an admin disabled; disabling twice keeps
 * the first time.
 */
export async function upsertUser(db: Database, name: string, admin: boolean, now: number, disabled?: boolean) {
  const set =
    disabled === undefined
      ? { admin }
      : { admin, disabledAt: disabled ? sql`coalesce(${users.disabledAt}, ${now})` : null };
  const [row] = await db.orm
    .insert(users)
    .values({ name, admin, createdAt: now, disabledAt: disabled ? now : null })
    .onConflictDoUpdate({ target: users.name, set })
    .returning();
  // Role and disabled state are part of every cached principal of this user.
  forgetPrincipals(db.caches);
  return { name, admin, disabled: row?.disabledAt != null };
}

export type UserRow = { name: string; admin: boolean; createdAt: number; disabledAt: number | null };

export async function getUser(db: Database, name: string): Promise<UserRow | undefined> {
  const rs = await db.client.execute({
    sql: "SELECT name, admin, created_at, disabled_at FROM users WHERE name = ?",
    args: [name],
  });
  const row = rs.rows[0];
  return row
    ? {
        name: String(row.name),
        admin: Boolean(Number(row.admin)),
        createdAt: Number(row.created_at),
        disabledAt: nullableNumber(row.disabled_at),
      }
    : undefined;
}

export async function listUsers(db: Database) {
  const rows = await db.orm.select().from(users).orderBy(users.name);
  return rows.map((u) => ({
    name: u.name,
    admin: u.admin,
    disabled: u.disabledAt !== null,
    createdAt: iso(u.createdAt),
  }));
}

export async function hasAdmin(db: Database): Promise<boolean> {
  const row = await db.orm.query.users.findFirst({ where: eq(users.admin, true) });
  return Boolean(row);
}

export type TokenRow = typeof tokens.$inferSelect;

export function tokenInfo(row: TokenRow) {
  return {
    id: row.id,
    kind: row.kind,
    user: row.user,
    cluster: row.cluster,
    label: row.label,
    prefix: row.prefix,
    createdAt: iso(row.createdAt),
    expiresAt: row.expiresAt ? iso(row.expiresAt) : null,
    revokedAt: row.revokedAt ? iso(row.revokedAt) : null,
    lastUsedAt: row.lastUsedAt ? iso(row.lastUsedAt) : null,
  };
}

/** Stores the hash of `secret` (a fresh token when omitted) and returns the secret once. */
export async function createToken(
  db: Database,
  input: {
    kind: TokenKind;
    user?: string | null;
    cluster?: string | null;
    label?: string;
    expiresAt?: number | null;
    secret?: string;
  },
  now: number,
) {
  const secret = input.secret ?? generateToken(input.kind);
  const row: TokenRow = {
    id: newId("tok", now),
    hash: await hashToken(secret),
    kind: input.kind,
    user: input.user ?? null,
    cluster: input.cluster ?? null,
    label: input.label ?? "",
    prefix: secret.slice(0, 8),
    createdAt: now,
    expiresAt: input.expiresAt ?? null,
    revokedAt: null,
    lastUsedAt: null,
  };
  await db.orm.insert(tokens).values(row);
  return { ...tokenInfo(row), token: secret };
}

/** On every request: plain SQL, since building drizzle's relational query cost ~10× the lookup itself. */
export async function findToken(db: Database, secret: string): Promise<TokenRow | undefined> {
  const hash = await hashToken(secret);
  const rs = await db.client.execute({
    sql: `SELECT id, hash, kind, user, cluster, label, prefix, created_at, expires_at, revoked_at, last_used_at
          FROM tokens WHERE hash = ?`,
    args: [hash],
  });
  const row = rs.rows[0];
  if (!row) {
    return undefined;
  }
  return {
    id: String(row.id),
    hash: String(row.hash),
    kind: String(row.kind) as TokenKind,
    user: row.user === null ? null : String(row.user),
    cluster: row.cluster === null ? null : String(row.cluster),
    label: String(row.label),
    prefix: String(row.prefix),
    createdAt: Number(row.created_at),
    expiresAt: nullableNumber(row.expires_at),
    revokedAt: nullableNumber(row.revoked_at),
    lastUsedAt: nullableNumber(row.last_used_at),
  };
}

export async function listTokens(db: Database, user?: string) {
  const rows = await db.orm
    .select()
    .from(tokens)
    .where(user ? eq(tokens.user, user) : undefined)
    .orderBy(tokens.id);
  return rows.map(tokenInfo);
}

export async function revokeToken(db: Database, id: string, now: number): Promise<boolean> {
  const existing = await db.orm.query.tokens.findFirst({ where: eq(tokens.id, id) });
  if (!existing) {
    return false;
  }
  await db.orm
    .update(tokens)
    .set({ revokedAt: now })
    .where(and(eq(tokens.id, id), isNull(tokens.revokedAt)));
  forgetPrincipals(db.caches);
  return true;
}

export async function touchToken(db: Database, id: string, now: number) {
  await db.orm.update(tokens).set({ lastUsedAt: now }).where(eq(tokens.id, id));
}

export type ClusterRecord = {
  config: ClusterConfig;
  inventory: Inventory | null;
  inventoryAt: number | null;
};

export async function upsertCluster(db: Database, config: ClusterConfig, now: number) {
  await db.orm
    .insert(clusters)
    .values({ name: config.name, config, createdAt: now })
    .onConflictDoUpdate({ target: clusters.name, set: { config } });
  forgetRouting(db.caches);
}

export async function listClusters(db: Database): Promise<Map<string, ClusterRecord>> {
  const rows = await db.orm.select().from(clusters).orderBy(clusters.name);
  return new Map(
    rows.map((r) => [
      r.name,
      {
        config: r.config as ClusterConfig,
        inventory: (r.inventory as Inventory | null) ?? null,
        inventoryAt: r.inventoryAt,
      },
    ]),
  );
}

export async function getCluster(db: Database, name: string): Promise<ClusterRecord | undefined> {
  const r = await db.orm.query.clusters.findFirst({ where: eq(clusters.name, name) });
  return r
    ? {
        config: r.config as ClusterConfig,
        inventory: (r.inventory as Inventory | null) ?? null,
        inventoryAt: r.inventoryAt,
      }
    : undefined;
}

export async function saveInventory(db: Database, cluster: string, inventory: Inventory, now: number) {
  await db.orm.update(clusters).set({ inventory, inventoryAt: now }).where(eq(clusters.name, cluster));
  forgetRouting(db.caches);
}

export async function upsertGrant(db: Database, grant: Grant) {
  const row = {
    user: grant.user,
    cluster: grant.cluster,
    partitions: grant.partitions,
    accounts: grant.accounts
      ? JSON.stringify({ accounts: grant.accounts, defaultAccount: grant.defaultAccount })
      : null,
  };
  await db.orm
    .insert(grants)
    .values(row)
    .onConflictDoUpdate({
      target: [grants.user, grants.cluster],
      set: { partitions: row.partitions, accounts: row.accounts },
    });
  forgetRouting(db.caches);
}

export async function deleteGrant(db: Database, user: string, cluster: string): Promise<boolean> {
  const rs = await db.orm
    .delete(grants)
    .where(and(eq(grants.user, user), eq(grants.cluster, cluster)))
    .returning();
  forgetRouting(db.caches);
  return rs.length > 0;
}

export async function listGrants(db: Database, user?: string): Promise<Grant[]> {
  const rows = await db.orm
    .select()
    .from(grants)
    .where(user ? eq(grants.user, user) : undefined)
    .orderBy(grants.user, grants.cluster);
  return rows.flatMap(({ accounts, ...g }) => {
    const grant = accounts === null ? Grant.safeParse(g) : Grant.safeParse({ ...g, ...parseJson(accounts) });
    // A row whose accounts do not parse grants nothing: charging an account it never offered is worse.
    return grant.success ? [grant.data] : [];
  });
}

function parseJson(text: string): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === "object" && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : { accounts: null };
  } catch {
    return { accounts: null };
  }
}

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
