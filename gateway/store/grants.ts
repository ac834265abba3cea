/**
 * Grants: which partitions (and Slurm accounts) a user may use on a cluster.
 */
import { and, eq } from "drizzle-orm";
import { Grant } from "../../schemas/index.ts";
import { forgetRouting } from "../db/caches.ts";
import type { Database } from "../db/client.ts";
import { grants } from "../db/schema.ts";

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
