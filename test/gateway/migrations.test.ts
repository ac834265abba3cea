/**
 * Migrations apply to an empty database and re-apply to an existing one without touching its data;
 * a bad configuration value stops start-up with one line naming the variable.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
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
