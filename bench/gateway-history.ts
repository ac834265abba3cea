/**
 * History: does a request cost more when the jobs table holds years of finished jobs? The same
 * requests, sequential, against one in-process gateway (app.request, no sockets), with 10k and 100k
 * jobs in the table (and 1M with BENCH_HISTORY_1M=1: seeding it takes minutes on a busy 2-vCPU box),
 * 1% of them live. Each row is p50 at the largest tier with the smallest tier as its floor, so the
 * ratio is the growth (goal ≈ 1×).
 *
 * BENCH_HISTORY_BASE=<git rev> also runs the same requests against that revision's code and schema
 * (checked out with `git archive` into a temp dir), side by side in the same run: before and after.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { createClient } from "@libsql/client";
import type { Hono } from "hono";
import type { Database } from "../gateway/db/client.ts";
import type { GatewayConfig } from "../gateway/config.ts";
import type { Deps } from "../gateway/deps.ts";
import { unavailableBlobStore } from "../gateway/files/blob-store.ts";
import { INVENTORY, tmpDbUrl } from "./gateway-fixture.ts";
import { HISTORY_OWNERS, seedHistory } from "./history-seed.ts";
import { type BenchOptions, type Row, percentile, sampleMs } from "./types.ts";

const ROOT = resolve(import.meta.dirname, "..");

/** The parts of a gateway source tree the benchmark drives, imported from that tree. */
type Tree = {
  label: string;
  createApp: (deps: Deps) => Hono;
  parseGatewayConfig: (env: Record<string, string>) => GatewayConfig;
  openDatabase: (client: ReturnType<typeof createClient>, options?: { batchWrites?: boolean }) => Database;
  migrateDatabase: (db: Database) => Promise<void>;
  createNotifier: () => Deps["notifier"];
  createRateLimiter: (perSecond: number, burst: number, now: () => number) => Deps["rateLimiter"];
  /** The store's admin functions: one module before the split by table, five after. */
  admin: typeof import("../gateway/store/users.ts") &
    typeof import("../gateway/store/tokens.ts") &
    typeof import("../gateway/store/clusters.ts") &
    typeof import("../gateway/store/grants.ts") &
    typeof import("../gateway/store/agents.ts");
};

async function loadAdmin(
  root: string,
  load: (path: string) => Promise<Record<string, unknown>>,
): Promise<Tree["admin"]> {
  if (existsSync(join(root, "gateway/store/admin.ts"))) {
    return (await load("gateway/store/admin.ts")) as Tree["admin"];
  }
  const parts = await Promise.all(
    ["users", "tokens", "clusters", "grants", "agents"].map((table) => load(`gateway/store/${table}.ts`)),
  );
  return Object.assign({}, ...parts) as Tree["admin"];
}

async function loadTree(root: string, label: string): Promise<Tree> {
  const load = (path: string) => import(pathToFileURL(join(root, path)).href);
  return {
    label,
    createApp: (await load("gateway/app.ts")).createApp,
    parseGatewayConfig: (await load("gateway/config.ts")).parseGatewayConfig,
    openDatabase: (await load("gateway/db/client.ts")).openDatabase,
    migrateDatabase: (await load("gateway/db/migrate.ts")).migrateDatabase,
    createNotifier: (await load("gateway/notifier.ts")).createNotifier,
    createRateLimiter: (await load("gateway/middleware/rate-limit.ts")).createRateLimiter,
    admin: await loadAdmin(root, load),
  };
}

/** `rev`'s files in a temp dir sharing this checkout's node_modules. */
function checkout(rev: string): string {
  const dir = mkdtempSync(join(tmpdir(), "slurmgate-base-"));
  execFileSync("sh", ["-c", `git -C "${ROOT}" archive "${rev}" | tar -x -C "${dir}"`]);
  symlinkSync(join(ROOT, "node_modules"), join(dir, "node_modules"));
  return dir;
}

type Fixture = {
  app: Hono;
  close: () => void;
  user: string;
  userToken: string;
  adminToken: string;
  agentToken: string;
  held: string[];
};

/** A file DB with `tree`'s schema and `total` jobs of history, served in-process by `tree`'s app. */
async function historyGateway(tree: Tree, total: number, log: (line: string) => void): Promise<Fixture> {
  const url = tmpDbUrl(`history-${total}`);
  const now = Date.now();
  const loader = createClient({ url });
  // A throwaway file: no journal while loading, then WAL like the Node gateway.
  await loader.execute("PRAGMA journal_mode = OFF");
  await loader.execute("PRAGMA synchronous = OFF");
  await loader.execute("PRAGMA cache_size = -262144");
  await tree.migrateDatabase(tree.openDatabase(loader));
  const t = performance.now();
  const held = await seedHistory(loader, total, now);
  log(`history: ${tree.label}: seeded ${total} jobs in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  loader.close();

  const client = createClient({ url, concurrency: 1 });
  await client.execute("PRAGMA journal_mode = WAL");
  await client.execute("PRAGMA busy_timeout = 5000");
  await client.execute("PRAGMA synchronous = NORMAL");
  const db = tree.openDatabase(client, { batchWrites: true });
  const config = tree.parseGatewayConfig({
    SLURMGATE_DB_URL: url,
    SLURMGATE_RATE_LIMIT_PER_SECOND: "0",
    SLURMGATE_MAX_QUEUED_PER_USER: "10000000",
    SLURMGATE_LOG_LEVEL: "error",
  });
  const { admin } = tree;
  const user = HISTORY_OWNERS[0]!;
  for (const cluster of ["alpha", "beta"]) {
    await admin.upsertCluster(
      db,
      { name: cluster, description: "", sharedRoots: ["/shared"], allowedSbatchArgs: [], profiles: {} },
      now,
    );
  }
  await admin.upsertUser(db, user, false, now);
  await admin.upsertGrant(db, { user, cluster: "alpha", partitions: ["*"] });
  await admin.upsertUser(db, "root", true, now);
  const userToken = (await admin.createToken(db, { kind: "user", user }, now)).token;
  const adminToken = (await admin.createToken(db, { kind: "admin", user: "root" }, now)).token;
  const agentToken = (await admin.createToken(db, { kind: "agent", cluster: "alpha" }, now)).token;
  await admin.saveInventory(db, "alpha", INVENTORY, now);
  await admin.touchAgent(db, { cluster: "alpha", agentId: "bench-agent" }, now);
  const deps: Deps = {
    db,
    config,
    now: () => Date.now(),
    notifier: tree.createNotifier(),
    rateLimiter: tree.createRateLimiter(0, 1, () => Date.now()),
    log: () => {},
    blobs: unavailableBlobStore,
    recheckMs: 2_000,
  };
  return { app: tree.createApp(deps), close: () => client.close(), user, userToken, adminToken, agentToken, held };
}

type Probe = { metric: string; run: (f: Fixture, i: number) => Promise<unknown> };

async function call(f: Fixture, method: string, path: string, token: string, body?: unknown, expectItems?: number) {
  const res = await f.app.request(path, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body ? { "content-type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const json = (await res.json()) as { items?: unknown[]; leases?: unknown[] };
  if (res.status >= 300 || (expectItems !== undefined && json.items?.length !== expectItems)) {
    throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json).slice(0, 200)}`);
  }
  return json;
}

function probes(total: number): Probe[] {
  // Every probe asks for a page it can fill at every tier, so the answers are the same size.
  // A batch from the middle of history: 1,000 jobs, ~50 of them the user's, none recent.
  const batch = `b${Math.floor(total / 2_000)}`;
  return [
    {
      metric: "GET /v1/jobs first page",
      run: (f) => call(f, "GET", "/v1/jobs?limit=50", f.userToken, undefined, 50),
    },
    {
      metric: "GET /v1/jobs?state=running (the user's 5)",
      run: (f) => call(f, "GET", "/v1/jobs?state=running&limit=50", f.userToken, undefined, 5),
    },
    {
      metric: "GET /v1/jobs?label=batch=… (~50 of the user's 1,000)",
      run: (f) => call(f, "GET", `/v1/jobs?label=batch%3D${batch}&limit=20`, f.userToken, undefined, 20),
    },
    {
      metric: "GET /v1/jobs?state=running as admin",
      run: (f) => call(f, "GET", "/v1/jobs?state=running&limit=20", f.adminToken, undefined, 20),
    },
    {
      metric: "POST /v1/jobs (submit)",
      run: (f, i) =>
        call(f, "POST", "/v1/jobs", f.userToken, {
          name: "submitted",
          command: ["python", "train.py"],
          cluster: "alpha",
          labels: { project: "p1", batch: `new${i}` },
        }),
    },
    {
      metric: "POST /v1/agent/lease, nothing to claim (renews 20)",
      run: async (f) => {
        const body = await call(f, "POST", "/v1/agent/lease", f.agentToken, {
          agentId: "bench-agent",
          max: 10,
          wait: 0,
          holding: f.held,
        });
        // Submits above queue jobs on alpha; each one claimed here is released so the next call has none.
        if (body.leases?.length) {
          throw new Error("lease bench: a lease call claimed a job");
        }
      },
    },
  ];
}

export async function runHistory(opts: BenchOptions): Promise<Row[]> {
  const tiers = opts.quick
    ? [10_000, 50_000]
    : process.env.BENCH_HISTORY_1M === "1"
      ? [10_000, 100_000, 1_000_000]
      : [10_000, 100_000];
  const n = opts.quick ? 50 : 300;
  const trees = [await loadTree(ROOT, "now")];
  const base = process.env.BENCH_HISTORY_BASE;
  if (base) {
    trees.unshift(await loadTree(checkout(base), `base ${base}`));
  }
  // samples[tree][metric][tier] = latencies
  const samples = new Map<string, Map<string, Map<number, number[]>>>();
  for (const tree of trees) {
    const byMetric = new Map<string, Map<number, number[]>>();
    samples.set(tree.label, byMetric);
    for (const total of tiers) {
      const f = await historyGateway(tree, total, opts.log);
      try {
        for (const probe of probes(total)) {
          // Submits queue jobs on alpha; the lease probe must find nothing, so it runs before them.
          if (probe.metric.startsWith("POST /v1/jobs")) {
            continue;
          }
          await sampleMs(20, (i) => probe.run(f, i));
          const ms = await sampleMs(n, (i) => probe.run(f, i));
          byMetric.set(probe.metric, (byMetric.get(probe.metric) ?? new Map()).set(total, ms));
        }
        const submit = probes(total).find((p) => p.metric.startsWith("POST /v1/jobs"))!;
        await sampleMs(20, (i) => submit.run(f, i));
        const ms = await sampleMs(n, (i) => submit.run(f, 1_000 + i));
        byMetric.set(submit.metric, (byMetric.get(submit.metric) ?? new Map()).set(total, ms));
        opts.log(
          `history: ${tree.label} @${total / 1000}k: ${[...byMetric.entries()]
            .map(([m, t]) => `${m.split(" ")[1] ?? m} p50 ${percentile(t.get(total)!, 50).toFixed(2)}`)
            .join("; ")}`,
        );
      } finally {
        f.close();
      }
    }
  }
  const rows: Row[] = [];
  const small = tiers[0]!;
  const large = tiers[tiers.length - 1]!;
  const k = (t: number) => (t >= 1_000_000 ? `${t / 1_000_000}M` : `${t / 1000}k`);
  for (const [label, byMetric] of samples) {
    for (const [metric, byTier] of byMetric) {
      const floor = byTier.get(small)!;
      const ours = byTier.get(large)!;
      const mid = tiers.slice(1, -1).map((t) => `${k(t)} p50 ${percentile(byTier.get(t)!, 50).toFixed(2)} ms`);
      rows.push({
        section: "history",
        metric: `${metric} @${k(large)} vs @${k(small)} jobs (${label})`,
        ours: percentile(ours, 50),
        floor: percentile(floor, 50),
        unit: "ms p50",
        ratio: percentile(ours, 50) / percentile(floor, 50),
        p50: percentile(ours, 50),
        p99: percentile(ours, 99),
        n: ours.length,
        target: ["ratio ≈ 1", ...mid].join("; "),
      });
    }
  }
  return rows;
}
