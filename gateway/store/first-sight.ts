/**
 * Creating a user the first time an identity provider vouches for them. One write batch (one
 * transaction): the grants go in only while the user does not exist yet, then the user row. Two
 * first requests at once serialise on the write lock: the first creates user and grants, the
 * second finds the user and changes nothing. An existing user (say, one an admin made, or whose
 * grants an admin since changed) keeps exactly what they have.
 */
import type { Database } from "../db/client.ts";

/** cluster → partitions (`["*"]` for all). */
export type FirstGrants = Map<string, string[]>;

/** Returns true when this call created the user. */
export async function createUserOnFirstSight(
  db: Database,
  name: string,
  grants: FirstGrants,
  now: number,
): Promise<boolean> {
  const results = await db.client.batch(
    [
      ...[...grants].map(([cluster, partitions]) => ({
        sql: `INSERT INTO grants (user, cluster, partitions, accounts)
              SELECT ?, ?, ?, NULL WHERE NOT EXISTS (SELECT 1 FROM users WHERE name = ?)
              ON CONFLICT DO NOTHING`,
        args: [name, cluster, JSON.stringify(partitions), name],
      })),
      {
        sql: "INSERT INTO users (name, admin, created_at) VALUES (?, 0, ?) ON CONFLICT (name) DO NOTHING",
        args: [name, now],
      },
    ],
    "write",
  );
  return (results.at(-1)?.rowsAffected ?? 0) === 1;
}
