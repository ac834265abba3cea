/**
 * The test-only Hrana endpoint must be faithful where the gateway depends on it, or the Worker
 * suites would prove nothing: atomic batches, RETURNING with affected counts, blobs, 64-bit
 * integers, interactive transactions that other streams wait for, and auth.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Client, createClient } from "@libsql/client/web";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type HranaServer, startHranaServer } from "../helpers/hrana-server.ts";

const dir = mkdtempSync(join(tmpdir(), "slurmgate-hrana-"));
let server: HranaServer;
let db: Client;

beforeAll(async () => {
  server = await startHranaServer({ path: join(dir, "t.db"), authToken: "tok" });
  db = createClient({ url: server.url, authToken: "tok" });
  await db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE, data BLOB, f REAL)");
});

afterAll(async () => {
  db.close();
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("test Hrana endpoint", () => {
  it("runs a write batch atomically with RETURNING rows, affected counts and blobs", async () => {
    const [insert, returning, update] = await db.batch(
      [
        { sql: "INSERT INTO t (name, data, f) VALUES (?, ?, ?)", args: ["a", new Uint8Array([0, 1, 255]), 1.5] },
        { sql: "INSERT INTO t (name, data) VALUES (?, ?) RETURNING id, data", args: ["b", new Uint8Array([7])] },
        { sql: "UPDATE t SET f = 2 WHERE name IN ('a', 'b') RETURNING id", args: [] },
      ],
      "write",
    );
    expect([insert?.rowsAffected, insert?.lastInsertRowid]).toEqual([1, 1n]);
    expect(new Uint8Array(returning?.rows[0]?.data as ArrayBuffer)).toEqual(new Uint8Array([7]));
    expect([update?.rowsAffected, update?.rows.length]).toEqual([2, 2]);
    const read = await db.execute("SELECT data, f FROM t WHERE name = 'a'");
    expect(new Uint8Array(read.rows[0]?.data as ArrayBuffer)).toEqual(new Uint8Array([0, 1, 255]));
    expect(read.rows[0]?.f).toBe(2);
  });

  it("rolls back the whole batch when one statement fails", async () => {
    const failing = db.batch(
      [
        { sql: "INSERT INTO t (name) VALUES ('c')", args: [] },
        { sql: "INSERT INTO t (name) VALUES ('a')", args: [] },
      ],
      "write",
    );
    await expect(failing).rejects.toMatchObject({ code: "SQLITE_CONSTRAINT_UNIQUE" });
    expect((await db.execute("SELECT count(*) AS n FROM t WHERE name = 'c'")).rows[0]?.n).toBe(0);
  });

  it("keeps 64-bit integers exact", async () => {
    const big = createClient({ url: server.url, authToken: "tok", intMode: "bigint" });
    const rs = await big.execute({ sql: "SELECT ? + 1 AS x", args: [9007199254740993n] });
    expect(rs.rows[0]?.x).toBe(9007199254740994n);
    big.close();
  });

  it("makes other streams wait for an open interactive transaction", async () => {
    const tx = await db.transaction("write");
    await tx.execute("INSERT INTO t (name) VALUES ('tx1')");
    const outside = db.execute("SELECT count(*) AS n FROM t WHERE name LIKE 'tx%'");
    await tx.execute("INSERT INTO t (name) VALUES ('tx2')");
    await tx.rollback();
    expect((await outside).rows[0]?.n).toBe(0);
  });

  it("refuses a wrong auth token", async () => {
    const stranger = createClient({ url: server.url, authToken: "nope" });
    await expect(stranger.execute("SELECT 1")).rejects.toThrow(/auth token/);
    stranger.close();
  });
});
