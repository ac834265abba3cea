/**
 * Users: who may sign in, whether they administer, whether they are switched off.
 */
import { eq, sql } from "drizzle-orm";
import { forgetPrincipals } from "../db/caches.ts";
import type { Database } from "../db/client.ts";
import { users } from "../db/schema.ts";
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
