/**
 * gateway/worker.ts's own logic, run in Node for speed (workerd runs it in workerd.test.ts): bad
 * configuration and an unreachable database answer 503 problem+json and are retried rather than
 * cached, and the bootstrap admin is created once per isolate.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@libsql/client/web";
import { afterAll, describe, expect, it } from "vitest";
import worker from "../../gateway/worker.ts";
import { runMigrations } from "../../gateway/scripts/migrate.ts";
import { generateToken } from "../../gateway/tokens.ts";
import { type HranaServer, startHranaServer } from "../helpers/hrana-server.ts";
import { freePort } from "../helpers/worker-target.ts";

const dir = mkdtempSync(join(tmpdir(), "slurmgate-entry-"));
const ctx = { waitUntil: () => {} };
const adminToken = generateToken("admin");
let server: HranaServer | undefined;

afterAll(async () => {
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

const get = (env: Record<string, unknown>, path: string, token?: string) =>
  worker.fetch(
    new Request(`http://gateway.test${path}`, { headers: token ? { authorization: `Bearer ${token}` } : {} }),
    env,
    ctx,
  );

describe("worker entry", () => {
  it("answers 503 problem+json when LIBSQL_URL is missing", async () => {
    const res = await get({}, "/healthz");
    expect(res.status).toBe(503);
    expect(res.headers.get("content-type")).toBe("application/problem+json");
    expect(await res.json()).toMatchObject({ code: "unavailable", instance: "/healthz" });
  });

  it("answers 503 while the database is unreachable, then recovers without a restart", async () => {
    const port = await freePort();
    const env = {
      LIBSQL_URL: `http://127.0.0.1:${port}`,
      LIBSQL_AUTH_TOKEN: "secret",
      SLURMGATE_BOOTSTRAP_TOKEN: adminToken,
      SLURMGATE_RATE_LIMIT_PER_SECOND: "0",
      SLURMGATE_LOG_LEVEL: "error",
    };
    expect((await get(env, "/healthz")).status).toBe(503);

    server = await startHranaServer({ path: join(dir, "db.sqlite"), authToken: "secret", port });
    await runMigrations(server.url, "secret");
    expect((await get(env, "/healthz")).status).toBe(200);
    const users = await get(env, "/v1/admin/users", adminToken);
    expect(users.status).toBe(200);

    // Later requests reuse the isolate's deps and do not bootstrap again.
    const before = server.pipelines();
    await get(env, "/healthz");
    expect(server.pipelines()).toBe(before);
    const db = createClient({ url: server.url, authToken: "secret" });
    const admins = await db.execute("SELECT count(*) AS n FROM tokens WHERE kind = 'admin'");
    expect(Number(admins.rows[0]?.n)).toBe(1);
    db.close();
  });
});
