/**
 * An in-process gateway for tests: in-memory libSQL with the real migrations, the real app, and
 * helpers to seed users, clusters, grants and tokens. Requests go through app.request() — no port.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@libsql/client";
import type { Inventory } from "../../schemas/index.ts";
import { createApp } from "../../gateway/app.ts";
import { parseGatewayConfig } from "../../gateway/config.ts";
import { openDatabase } from "../../gateway/db/client.ts";
import { migrateDatabase } from "../../gateway/db/migrate.ts";
import type { Deps } from "../../gateway/deps.ts";
import type { BlobStore } from "../../gateway/files/blob-store.ts";
import { createFsBlobStore } from "../../gateway/files/fs-blob-store.ts";
import { createRateLimiter } from "../../gateway/middleware/rate-limit.ts";
import { createNotifier } from "../../gateway/notifier.ts";
import { touchAgent } from "../../gateway/store/agents.ts";
import { saveInventory, upsertCluster } from "../../gateway/store/clusters.ts";
import { upsertGrant } from "../../gateway/store/grants.ts";
import { createToken } from "../../gateway/store/tokens.ts";
import { upsertUser } from "../../gateway/store/users.ts";

export type TestClock = { now: () => number; advance: (ms: number) => void; set: (ms: number) => void };

export function testClock(start = Date.UTC(2026, 10, 22, 12)): TestClock {
  let t = start;
  return { now: () => t, advance: (ms) => (t += ms), set: (ms) => (t = ms) };
}

export async function createTestGateway(
  env: Record<string, string> = {},
  options: { clock?: TestClock; url?: string; blobs?: BlobStore } = {},
) {
  const clock = options.clock ?? { now: () => Date.now(), advance: () => {}, set: () => {} };
  // The agents of these suites are requests a test makes: none answers a preflight's estimate ask
  // unless the test does, so estimates are off unless a test turns them on.
  const config = parseGatewayConfig({ SLURMGATE_RATE_LIMIT_PER_SECOND: "0", SLURMGATE_ESTIMATE_SECONDS: "0", ...env });
  const client = createClient({ url: options.url ?? ":memory:" });
  const db = openDatabase(client);
  await migrateDatabase(db);
  const logs: Record<string, unknown>[] = [];
  const deps: Deps = {
    db,
    config,
    now: clock.now,
    notifier: createNotifier(),
    rateLimiter: createRateLimiter(
      config.SLURMGATE_RATE_LIMIT_PER_SECOND,
      config.SLURMGATE_RATE_LIMIT_BURST,
      clock.now,
    ),
    log: (e) => logs.push(e),
    // A fresh directory per gateway: tests that look at the bytes on disk find them via deps.config.
    blobs: options.blobs ?? (await createFsBlobStore(mkdtempSync(join(tmpdir(), "sg-blobs-")))),
    recheckMs: 50,
  };
  const app = createApp(deps);

  const request = (
    method: string,
    path: string,
    init: { token?: string; body?: unknown; headers?: Record<string, string> } = {},
  ) =>
    app.request(path, {
      method,
      headers: {
        ...(init.token ? { authorization: `Bearer ${init.token}` } : {}),
        ...(init.body !== undefined ? { "content-type": "application/json" } : {}),
        ...init.headers,
      },
      body: init.body === undefined ? undefined : typeof init.body === "string" ? init.body : JSON.stringify(init.body),
    });

  const now = () => clock.now();
  return {
    app,
    deps,
    db,
    logs,
    clock,
    request,
    async user(name: string, admin = false) {
      await upsertUser(db, name, admin, now());
      return (await createToken(db, { kind: admin ? "admin" : "user", user: name }, now())).token;
    },
    async cluster(name: string, extra: Partial<Parameters<typeof upsertCluster>[1]> = {}) {
      await upsertCluster(
        db,
        { name, description: "", sharedRoots: ["/shared"], allowedSbatchArgs: [], profiles: {}, ...extra },
        now(),
      );
      return (await createToken(db, { kind: "agent", cluster: name }, now())).token;
    },
    async grant(user: string, cluster: string, partitions: string[] = ["*"]) {
      await upsertGrant(db, { user, cluster, partitions });
    },
    /** Publishes an inventory and marks the cluster's agent as just seen. */
    async inventory(cluster: string, inventory: Inventory, agentId = "agent-1") {
      await saveInventory(db, cluster, inventory, now());
      await touchAgent(db, { cluster, agentId }, now());
    },
  };
}

export type TestGateway = Awaited<ReturnType<typeof createTestGateway>>;

/** A two-cluster inventory like the local test clusters: alpha has A100s, beta has H100s. */
export function sampleInventory(gpuType: "a100" | "h100", agentId = "agent-1"): Inventory {
  return {
    slurmVersion: "22.05.8",
    apptainerVersion: null,
    accounting: true,
    agentVersion: "0.1.0",
    agentId,
    mode: "local",
    partitions: [
      {
        name: "cpu",
        default: true,
        state: "up",
        nodes: 1,
        maxTimeSeconds: 3600,
        maxCpusPerNode: 2,
        maxMemMBPerNode: 4000,
        maxNodes: null,
        gpus: [],
      },
      {
        name: "short",
        default: false,
        state: "up",
        nodes: 1,
        maxTimeSeconds: 600,
        maxCpusPerNode: 2,
        maxMemMBPerNode: 4000,
        maxNodes: null,
        gpus: [],
      },
      {
        name: "gpu",
        default: false,
        state: "up",
        nodes: 1,
        maxTimeSeconds: gpuType === "a100" ? 7200 : 14400,
        maxCpusPerNode: 2,
        maxMemMBPerNode: 4000,
        maxNodes: null,
        gpus: [{ type: gpuType, count: gpuType === "a100" ? 2 : 1 }],
      },
    ],
  };
}
