/**
 * Tokens: only hashes are stored; a token is found by its SHA-256.
 */
import { and, eq, isNull } from "drizzle-orm";
import type { TokenKind } from "../../schemas/index.ts";
import { forgetPrincipals } from "../db/caches.ts";
import type { Database } from "../db/client.ts";
import { tokens } from "../db/schema.ts";
import { newId } from "../ids.ts";
import { generateToken, hashToken } from "../tokens.ts";
import { iso } from "./job-row.ts";

const nullableNumber = (v: unknown) => (v === null || v === undefined ? null : Number(v));

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
