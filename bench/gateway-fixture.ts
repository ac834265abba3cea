/**
 * A gateway database on a file, seeded the way a real deployment would be (user, cluster, grant,
 * tokens, inventory, live agent), and a Node gateway process serving it.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@libsql/client";
import { type Database, openDatabase } from "../gateway/db/client.ts";
import { migrateDatabase } from "../gateway/db/migrate.ts";
import { touchAgent } from "../gateway/store/agents.ts";
import { saveInventory, upsertCluster } from "../gateway/store/clusters.ts";
import { upsertGrant } from "../gateway/store/grants.ts";
import { createToken } from "../gateway/store/tokens.ts";
import { upsertUser } from "../gateway/store/users.ts";
import type { Inventory } from "../schemas/index.ts";
import { startGatewayProcess as startGatewayOnDb } from "../test/helpers/gateway-process.ts";

export const INVENTORY: Inventory = {
  slurmVersion: "22.05.8",
  apptainerVersion: null,
  accounting: false,
  agentVersion: "bench",
  agentId: "bench-agent",
  mode: "local",
  partitions: [
    {
      name: "cpu",
      default: true,
      state: "up",
      nodes: 4,
      maxTimeSeconds: 86_400,
      maxCpusPerNode: 64,
      maxMemMBPerNode: 256_000,
      maxNodes: null,
      gpus: [],
    },
  ],
};

export function tmpDbUrl(name: string): string {
  return `file:${join(mkdtempSync(join(tmpdir(), "slurmgate-bench-")), `${name}.db`)}`;
}

/** Opens (and migrates) a file database with the pragmas the Node gateway uses. */
export async function openFileDb(url: string, batchWrites = false): Promise<Database> {
  const client = createClient({ url, concurrency: 1 });
  await client.execute("PRAGMA journal_mode = WAL");
  await client.execute("PRAGMA busy_timeout = 5000");
  await client.execute("PRAGMA synchronous = NORMAL");
  const db = openDatabase(client, { batchWrites });
  await migrateDatabase(db);
  return db;
}

export type Seeded = { userTokens: Record<string, string>; agentToken: string };

export async function seed(db: Database, users: string[]): Promise<Seeded> {
  const now = Date.now();
  await upsertCluster(
    db,
    { name: "alpha", description: "", sharedRoots: ["/shared"], allowedSbatchArgs: [], profiles: {} },
    now,
  );
  const userTokens: Record<string, string> = {};
  for (const user of users) {
    await upsertUser(db, user, false, now);
    await upsertGrant(db, { user, cluster: "alpha", partitions: ["*"] });
    userTokens[user] = (await createToken(db, { kind: "user", user }, now)).token;
  }
  const agentToken = (await createToken(db, { kind: "agent", cluster: "alpha" }, now)).token;
  await saveInventory(db, "alpha", INVENTORY, now);
  await touchAgent(db, { cluster: "alpha", agentId: "bench-agent" }, now);
  return { userTokens, agentToken };
}

export type GatewayProcess = { baseUrl: string; stop: () => Promise<void> };

/** Starts `gateway/node.ts` in its own process so the load generator does not share its event loop. */
export async function startGatewayProcess(dbUrl: string): Promise<GatewayProcess> {
  const gateway = await startGatewayOnDb({ SLURMGATE_MAX_QUEUED_PER_USER: "10000000" }, { dbUrl, stderr: "inherit" });
  return { baseUrl: gateway.url, stop: gateway.stop };
}
