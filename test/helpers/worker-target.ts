/**
 * Runs gateway/worker.ts in real workerd (`wrangler dev --local`) against the test-only Hrana
 * endpoint over a fresh, migrated libSQL file, and hands back what the shared API suite needs.
 *
 * Offline by construction: no banner (its update check asks npm), no metrics, no `Request.cf`
 * download, no login (local mode needs none). Secrets travel as environment variables, which is how
 * `wrangler dev` reads `[secrets] required` without a .dev.vars file.
 */
import { freePort } from "./gateway-process.ts";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { runMigrations } from "../../gateway/scripts/migrate.ts";
import { generateToken } from "../../gateway/tokens.ts";
import { type HranaServer, startHranaServer } from "./hrana-server.ts";

export const ROOT = fileURLToPath(new URL("../..", import.meta.url));

/** Environment that keeps wrangler from touching the network or the user's account. */
export function offlineWranglerEnv(dir: string): NodeJS.ProcessEnv {
  return {
    ...process.env,
    WRANGLER_SEND_METRICS: "false",
    WRANGLER_HIDE_BANNER: "true",
    CLOUDFLARE_CF_FETCH_ENABLED: "false",
    WRANGLER_LOG_PATH: join(dir, "wrangler-logs"),
    NO_COLOR: "1",
    FORCE_COLOR: "0",
  };
}

export { freePort };

export type WorkerTarget = {
  baseUrl: string;
  adminToken: string;
  /** The Hrana endpoint behind the Worker (for tests that look at the database directly). */
  database: HranaServer;
  /** The token the Hrana endpoint demands (the Worker's LIBSQL_AUTH_TOKEN). */
  dbAuthToken: string;
  /** wrangler's `--persist-to` directory (miniflare's simulated R2 keeps its objects there). */
  stateDir: string;
  /** wrangler's and workerd's output so far, for failure messages. */
  output(): string;
  close(): Promise<void>;
};

export type WorkerTargetOptions = {
  /** Extra [vars] for the Worker, e.g. `{ SLURMGATE_RATE_LIMIT_PER_SECOND: "0" }`. */
  vars?: Record<string, string>;
  /** Auth token the Hrana endpoint demands and the Worker sends (LIBSQL_AUTH_TOKEN). */
  dbAuthToken?: string;
  startTimeoutMs?: number;
};

/**
 * @example const target = await startWorkerTarget(); await fetch(`${target.baseUrl}/healthz`); await target.close();
 */
export async function startWorkerTarget(options: WorkerTargetOptions = {}): Promise<WorkerTarget> {
  const dir = mkdtempSync(join(tmpdir(), "slurmgate-worker-"));
  const dbAuthToken = options.dbAuthToken ?? `db-${generateToken("user").slice(4, 20)}`;
  const database = await startHranaServer({ path: join(dir, "gateway.db"), authToken: dbAuthToken });
  await runMigrations(database.url, dbAuthToken);

  const adminToken = generateToken("admin");
  const port = await freePort();
  const inspectorPort = await freePort();
  const vars = { SLURMGATE_LOG_LEVEL: "warn", ...options.vars };
  const args = [
    "wrangler",
    "dev",
    "--local",
    "--ip",
    "127.0.0.1",
    "--port",
    String(port),
    "--inspector-port",
    String(inspectorPort),
    "--persist-to",
    join(dir, "state"),
    "--show-interactive-dev-session=false",
    "--log-level",
    "warn",
    ...Object.entries(vars).flatMap(([name, value]) => ["--var", `${name}:${value}`]),
  ];
  let output = "";
  const child: ChildProcess = spawn("npx", args, {
    cwd: ROOT,
    detached: true, // own process group, so close() ends wrangler and its workerd together
    stdio: ["ignore", "pipe", "pipe"],
    env: {
      ...offlineWranglerEnv(dir),
      LIBSQL_URL: database.url,
      LIBSQL_AUTH_TOKEN: dbAuthToken,
      SLURMGATE_BOOTSTRAP_TOKEN: adminToken,
    },
  });
  child.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));

  const stop = async () => {
    if (child.exitCode === null && child.pid !== undefined) {
      try {
        process.kill(-child.pid, "SIGTERM");
      } catch {
        // already gone
      }
      const forced = setTimeout(() => {
        try {
          process.kill(-(child.pid as number), "SIGKILL");
        } catch {
          // already gone
        }
      }, 3_000);
      await exited;
      clearTimeout(forced);
    }
    await database.close();
    rmSync(dir, { recursive: true, force: true });
  };

  const baseUrl = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + (options.startTimeoutMs ?? 45_000);
  for (;;) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`wrangler dev exited with ${child.exitCode}:\n${output}`);
    }
    try {
      const res = await fetch(`${baseUrl}/healthz`);
      if (res.ok) {
        break;
      }
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`wrangler dev did not become ready at ${baseUrl}:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return {
    baseUrl,
    adminToken,
    database,
    dbAuthToken,
    stateDir: join(dir, "state"),
    output: () => output,
    close: stop,
  };
}
