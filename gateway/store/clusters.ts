/**
 * Clusters: the admin's config and the inventory their agents publish.
 */
import { eq } from "drizzle-orm";
import type { ClusterConfig, Inventory } from "../../schemas/index.ts";
import { forgetRouting } from "../db/caches.ts";
import type { Database } from "../db/client.ts";
import { clusters } from "../db/schema.ts";

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
