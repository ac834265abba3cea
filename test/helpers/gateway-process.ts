/**
 * A real gateway in a child process on a free port (`gateway/node.ts`, the same entry as
 * `npm start`) with a fresh libSQL file, for the client, CLI, Deno and API tests and the benchmark.
 * Rate limiting is off so parallel tests and load generators do not throttle.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

export const ROOT = resolve(import.meta.dirname, "../..");

export type GatewayProcess = { url: string; adminToken: string; dir: string; pid: number; stop(): Promise<void> };

export function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once("error", fail);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => done(typeof address === "object" && address ? address.port : 0));
    });
  });
}

/** `sgk_` + 43 base64url characters, the shape of a real admin token. */
export function newAdminToken(): string {
  return `sgk_${randomBytes(32).toString("base64url")}`;
}

/**
 * Starts the gateway and resolves once /healthz answers.
 * @param options.dbUrl serve an existing (seeded) database instead of a fresh file.
 */
export async function startGatewayProcess(
  extraEnv: Record<string, string> = {},
  options: { dbUrl?: string; stderr?: "pipe" | "inherit" } = {},
): Promise<GatewayProcess> {
  const dir = mkdtempSync(join(tmpdir(), "slurmgate-gw-"));
  // A fixed PORT lets a test restart the gateway where its clients expect it.
  const port = extraEnv.PORT ? Number(extraEnv.PORT) : await freePort();
  const adminToken = newAdminToken();
  const child = spawn(process.execPath, ["--import", "tsx", join(ROOT, "gateway/node.ts")], {
    cwd: ROOT,
    env: {
      ...process.env,
      PORT: String(port),
      SLURMGATE_HOST: "127.0.0.1",
      SLURMGATE_DB_URL: options.dbUrl ?? `file:${join(dir, "db")}`,
      SLURMGATE_BOOTSTRAP_TOKEN: adminToken,
      SLURMGATE_RATE_LIMIT_PER_SECOND: "0",
      SLURMGATE_LOG_LEVEL: "warn",
      ...extraEnv,
    },
    stdio: ["ignore", "pipe", options.stderr ?? "pipe"],
  });
  let output = "";
  child.stdout?.on("data", (d) => (output += d));
  child.stderr?.on("data", (d) => (output += d));
  const url = `http://127.0.0.1:${port}`;
  await waitHealthy(url, child, () => output);
  return {
    url,
    adminToken,
    dir,
    pid: child.pid ?? 0,
    stop: async () => {
      await stopChild(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Generous: tsx compiles the gateway on first start, which takes long on a loaded 2-core machine. */
async function waitHealthy(url: string, child: ChildProcess, output: () => string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) {
      throw new Error(`gateway exited with ${child.exitCode}:\n${output()}`);
    }
    try {
      const res = await fetch(`${url}/healthz`);
      if (res.ok) {
        return;
      }
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill("SIGKILL");
  throw new Error(`gateway did not start within 60 s:\n${output()}`);
}

export function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve();
  }
  return new Promise((done) => {
    const kill = setTimeout(() => child.kill("SIGKILL"), 5_000);
    child.once("exit", () => {
      clearTimeout(kill);
      done();
    });
    child.kill("SIGTERM");
  });
}
