/**
 * Bench section: job submit throughput and p50/p99 latency of the Worker in local workerd next to
 * the Node gateway, in the same run, on the same machine, driven by the same HTTP client.
 *
 * Targets:
 * - `node (file)`: gateway/node.ts (startGateway) in a child process on an embedded libSQL file
 *   with write batching: the default self-hosted setup, and the baseline.
 * - `node (hrana)`: the same Node gateway over libSQL HTTP, against the test Hrana endpoint.
 * - `worker (workerd)`: gateway/worker.ts in `wrangler dev --local` against the test Hrana endpoint.
 *
 * `node (hrana)` vs `worker` isolates the runtime (same database path); `node (file)` vs `worker`
 * is what a user sees moving from self-hosted to the edge. The Hrana endpoint is a single-threaded
 * test server, not sqld or Turso, so absolute worker numbers say little about production.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runMigrations } from "../gateway/scripts/migrate.ts";
import { generateToken } from "../gateway/tokens.ts";
import { sampleInventory } from "../test/helpers/gateway.ts";
import { type HranaServer, startHranaServer } from "../test/helpers/hrana-server.ts";
import { freePort, ROOT, startWorkerTarget } from "../test/helpers/worker-target.ts";

export type BenchRow = { name: string; value: number; unit: string; baseline?: number; ratio?: number; note?: string };

type Target = { label: string; baseUrl: string; adminToken: string; close(): Promise<void> };

const CONCURRENCY = 32;

/** The Node gateway as users run it: `tsx gateway/node.ts`, which calls startGateway(process.env). */
async function startNodeGateway(label: string, dbUrl: string, dbToken?: string): Promise<Target> {
  const port = await freePort();
  const adminToken = generateToken("admin");
  const child: ChildProcess = spawn("npx", ["tsx", "gateway/node.ts"], {
    cwd: ROOT,
    detached: true,
    stdio: ["ignore", "ignore", "pipe"],
    env: {
      ...process.env,
      PORT: String(port),
      SLURMGATE_DB_URL: dbUrl,
      ...(dbToken ? { SLURMGATE_DB_AUTH_TOKEN: dbToken } : {}),
      SLURMGATE_BOOTSTRAP_TOKEN: adminToken,
      SLURMGATE_RATE_LIMIT_PER_SECOND: "0",
      SLURMGATE_MAX_QUEUED_PER_USER: "10000000",
      SLURMGATE_LOG_LEVEL: "error",
    },
  });
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const close = async () => {
    if (child.exitCode === null && child.pid !== undefined) {
      process.kill(-child.pid, "SIGTERM");
      await exited;
    }
  };
  const baseUrl = `http://127.0.0.1:${port}`;
  await waitReady(
    baseUrl,
    () => child.exitCode !== null,
    () => stderr,
    close,
  );
  return { label, baseUrl, adminToken, close };
}

async function waitReady(baseUrl: string, dead: () => boolean, output: () => string, close: () => Promise<void>) {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline && !dead()) {
    try {
      if ((await fetch(`${baseUrl}/healthz`)).ok) {
        return;
      }
    } catch {
      // not up yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await close();
  throw new Error(`gateway at ${baseUrl} did not start:\n${output()}`);
}

/** Admin API calls over HTTP, so every target is seeded the same way. Returns a user token. */
async function seed(target: Target): Promise<string> {
  const call = async (method: string, path: string, body: unknown, token = target.adminToken) => {
    const res = await fetch(target.baseUrl + path, {
      method,
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    if (!res.ok) {
      throw new Error(`${target.label}: ${method} ${path} → ${res.status} ${await res.text()}`);
    }
    return (await res.json()) as { token?: string };
  };
  await call("POST", "/v1/admin/users", { name: "bench" });
  await call("POST", "/v1/admin/clusters", { name: "alpha", sharedRoots: ["/shared"] });
  await call("POST", "/v1/admin/grants", { user: "bench", cluster: "alpha" });
  const agent = (await call("POST", "/v1/admin/tokens", { kind: "agent", cluster: "alpha" })).token!;
  await call("PUT", "/v1/agent/inventory", sampleInventory("a100"), agent);
  return (await call("POST", "/v1/admin/tokens", { kind: "user", user: "bench" })).token!;
}

/** CONCURRENCY closed-loop clients submitting for `ms`; returns per-request latencies. */
async function load(target: Target, token: string, ms: number): Promise<{ latencies: number[]; seconds: number }> {
  const body = JSON.stringify({ name: "bench", command: ["true"] });
  const headers = { authorization: `Bearer ${token}`, "content-type": "application/json" };
  const latencies: number[] = [];
  const started = performance.now();
  const end = started + ms;
  const client = async () => {
    while (performance.now() < end) {
      const t0 = performance.now();
      const res = await fetch(`${target.baseUrl}/v1/jobs`, { method: "POST", headers, body });
      await res.arrayBuffer();
      if (res.status !== 201) {
        throw new Error(`${target.label}: submit → ${res.status}`);
      }
      latencies.push(performance.now() - t0);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, client));
  return { latencies, seconds: (performance.now() - started) / 1000 };
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

async function measure(target: Target, quick: boolean) {
  const token = await seed(target);
  await load(target, token, quick ? 500 : 2_000); // warm-up: JIT, connections, SQL caches
  const { latencies, seconds } = await load(target, token, quick ? 2_000 : 8_000);
  const sorted = latencies.sort((a, b) => a - b);
  return {
    rps: latencies.length / seconds,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    n: latencies.length,
  };
}

const round = (x: number, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;

export async function run(opts: { quick: boolean }): Promise<BenchRow[]> {
  const dir = mkdtempSync(join(tmpdir(), "slurmgate-bench-worker-"));
  const targets: (() => Promise<Target>)[] = [];
  let hrana: HranaServer | undefined;
  const results = new Map<string, Awaited<ReturnType<typeof measure>>>();
  try {
    targets.push(() => startNodeGateway("node (file)", `file:${join(dir, "node.db")}`));
    targets.push(async () => {
      hrana = await startHranaServer({ path: join(dir, "node-hrana.db"), authToken: "bench" });
      await runMigrations(hrana.url, "bench");
      const target = await startNodeGateway("node (hrana)", hrana.url, "bench");
      const server = hrana;
      const close = async () => {
        await target.close();
        await server.close();
      };
      return { ...target, close };
    });
    targets.push(async () => {
      const worker = await startWorkerTarget({
        vars: {
          SLURMGATE_RATE_LIMIT_PER_SECOND: "0",
          SLURMGATE_MAX_QUEUED_PER_USER: "10000000",
          SLURMGATE_LOG_LEVEL: "error",
        },
      });
      return { label: "worker (workerd)", ...worker };
    });
    // One target at a time, so they do not compete for the CPU.
    for (const start of targets) {
      const target = await start();
      try {
        results.set(target.label, await measure(target, opts.quick));
      } finally {
        await target.close();
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  const base = results.get("node (file)")!;
  const rows: BenchRow[] = [];
  for (const [label, r] of results) {
    const isBase = label === "node (file)";
    const note = `${r.n} submits, ${CONCURRENCY} concurrent clients over HTTP${isBase ? "" : "; baseline: node (file)"}`;
    const row = (metric: string, value: number, baseline: number, unit: string, digits = 1): BenchRow => ({
      name: `submit ${metric}: ${label}`,
      value: round(value, digits),
      unit,
      ...(isBase ? {} : { baseline: round(baseline, digits), ratio: round(value / baseline, 2) }),
      note,
    });
    rows.push(row("throughput", r.rps, base.rps, "req/s", 0));
    rows.push(row("p50", r.p50, base.p50, "ms", 2));
    rows.push(row("p99", r.p99, base.p99, "ms", 2));
  }
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  run({ quick: process.argv.includes("--quick") }).then(
    (rows) => process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`),
    (err: Error) => {
      process.stderr.write(`bench/worker: ${err.stack ?? err.message}\n`);
      process.exit(1);
    },
  );
}
