/**
 * Migrations apply to an empty database and re-apply to an existing one without touching its data;
 * a bad configuration value stops start-up with one line naming the variable.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@libsql/client";
import { migrate } from "drizzle-orm/libsql/migrator";
import { afterEach, describe, expect, it } from "vitest";
import { openDatabase } from "../../gateway/db/client.ts";
import { MIGRATIONS_FOLDER, migrateDatabase } from "../../gateway/db/migrate.ts";
import { parseGatewayConfig } from "../../gateway/config.ts";
import { createTestGateway } from "../helpers/gateway.ts";
import { createWorld } from "./world.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) {
    rmSync(dir, { recursive: true, force: true });
  }
});

describe("migrations", () => {
  it("create the schema in an empty file and keep data when re-run", async () => {
    const dir = mkdtempSync(join(tmpdir(), "slurmgate-migrate-"));
    dirs.push(dir);
    const url = `file:${join(dir, "gw.db")}`;
    const first = await createTestGateway({}, { url });
    const tables = await first.db.client.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name");
    expect(tables.rows.map((r) => String(r.name))).toEqual(
      expect.arrayContaining(["agents", "clusters", "grants", "job_events", "job_logs", "jobs", "tokens", "users"]),
    );
    const token = await first.user("alice");
    await first.cluster("alpha", { sharedRoots: ["/data"] });
    await first.grant("alice", "alpha");
    const job = await first.request("POST", "/v1/jobs", {
      token,
      body: { name: "kept", command: ["true"], cluster: "alpha", partition: "cpu" },
    });
    expect(job.status).toBe(201);
    const { id } = (await job.json()) as { id: string };
    const applied = await first.db.client.execute("SELECT count(*) AS n FROM __drizzle_migrations");
    first.db.client.close();

    const second = await createTestGateway({}, { url });
    const again = await second.db.client.execute("SELECT count(*) AS n FROM __drizzle_migrations");
    expect(Number(again.rows[0]?.n)).toBe(Number(applied.rows[0]?.n));
    const res = await second.request("GET", `/v1/jobs/${id}`, { token });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { spec: { name: string } }).spec.name).toBe("kept");
    second.db.client.close();
  });

  it("0012 keeps 0011-era output rows, each backfilled with its job's attempt, and blobs unverified", async () => {
    const dir = mkdtempSync(join(tmpdir(), "slurmgate-migrate-"));
    dirs.push(dir);
    // The migrations as they stood at 0011, applied to a file that then holds rows of that era.
    const old = join(dir, "migrations");
    cpSync(MIGRATIONS_FOLDER, old, { recursive: true });
    const journalFile = join(old, "meta", "_journal.json");
    const journal = JSON.parse(readFileSync(journalFile, "utf8")) as { entries: { tag: string }[] };
    journal.entries = journal.entries.filter((e) => e.tag <= "0011_files");
    writeFileSync(journalFile, JSON.stringify(journal));
    const client = createClient({ url: `file:${join(dir, "gw.db")}` });
    const db = openDatabase(client);
    await migrate(db.orm, { migrationsFolder: old });
    const cols = await client.execute("SELECT name FROM pragma_table_info('job_files')");
    expect(cols.rows.map((r) => String(r.name))).not.toContain("attempt");
    const job = (id: string, attempt: number) =>
      client.execute({
        sql: `INSERT INTO jobs (id, owner, name, state, cluster, attempt, spec, created_at, updated_at)
              VALUES (?, 'alice', 'x', 'completed', 'alpha', ?, '{}', 1, 1)`,
        args: [id, attempt],
      });
    await job("job_a", 1);
    await job("job_b", 3);
    const sha = "a".repeat(64);
    await client.execute({ sql: "INSERT INTO blobs (sha256, size, created_at) VALUES (?, 5, 1)", args: [sha] });
    for (const [id, path] of [
      ["job_a", "results/a.json"],
      ["job_b", "results/b.json"],
      ["job_b", "model/final.pt"],
      ["job_gone", "results/c.json"],
    ]) {
      await client.execute({
        sql: "INSERT INTO job_files (job_id, path, sha256, size, created_at) VALUES (?, ?, ?, 5, 7)",
        args: [id!, path!, sha],
      });
    }

    await migrateDatabase(db);
    const rows = await client.execute(
      "SELECT job_id, attempt, path, sha256, size, created_at FROM job_files ORDER BY job_id, path",
    );
    expect(rows.rows.map((r) => [r.job_id, r.attempt, r.path, r.sha256, r.size, r.created_at])).toEqual([
      ["job_a", 1, "results/a.json", sha, 5, 7],
      ["job_b", 3, "model/final.pt", sha, 5, 7],
      ["job_b", 3, "results/b.json", sha, 5, 7],
      ["job_gone", 1, "results/c.json", sha, 5, 7],
    ]);
    const blob = await client.execute("SELECT size, verified_at, verified_version FROM blobs");
    expect(blob.rows.map((r) => [r.size, r.verified_at, r.verified_version])).toEqual([[5, null, null]]);
    // The same path in two attempts is now two rows.
    await client.execute({
      sql: "INSERT INTO job_files (job_id, attempt, path, sha256, size, created_at) VALUES ('job_a', 2, 'results/a.json', ?, 5, 8)",
      args: [sha],
    });
    client.close();
  });

  it("leave an in-memory database ready for requests", async () => {
    const w = await createWorld();
    expect((await w.call("GET", "/v1/jobs", w.tokens.alice)).status).toBe(200);
  });
});

describe("configuration", () => {
  it("has defaults", () => {
    const config = parseGatewayConfig({});
    expect(config).toMatchObject({
      PORT: 8080,
      SLURMGATE_LEASE_SECONDS: 120,
      SLURMGATE_DB_URL: "file:./data/slurmgate.db",
    });
  });

  it.each([
    ["PORT", "eighty"],
    ["PORT", "70000"],
    ["SLURMGATE_DB_URL", "postgres://x"],
    ["SLURMGATE_LEASE_SECONDS", "1"],
    ["SLURMGATE_LOG_LEVEL", "loud"],
    ["SLURMGATE_BOOTSTRAP_TOKEN", "sgu_short"],
  ])("names %s in one line when it is %s", (name, value) => {
    let message = "";
    try {
      parseGatewayConfig({ [name]: value });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(new RegExp(`^invalid ${name}: `));
    expect(message).not.toContain("\n");
    if (name.includes("TOKEN")) {
      expect(message).not.toContain(value);
    }
  });
});
