/**
 * The write queue groups one tick's writes into one transaction, merges same-shaped single-row
 * INSERTs into multi-row ones, and never lets one bad write fail its neighbours.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@libsql/client";
import { describe, expect, it } from "vitest";
import { createWriteQueue, mergeInserts } from "../../gateway/db/write-queue.ts";

const insert = (id: number, key: string) => [
  { sql: "INSERT INTO t (id, k) VALUES (?, ?)", args: [id, key] },
  { sql: "INSERT INTO e (t_id, n) VALUES (?, 1)", args: [id] },
];

async function database() {
  const client = createClient({ url: `file:${join(mkdtempSync(join(tmpdir(), "sg-wq-")), "db")}` });
  await client.executeMultiple(
    "CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT UNIQUE); CREATE TABLE e (t_id INTEGER, n INTEGER);",
  );
  return client;
}

describe("write queue", () => {
  it("merges same-shaped single-row INSERTs, keeping each writer's order", () => {
    const merged = mergeInserts([insert(1, "a"), insert(2, "b")]);
    expect(merged).toEqual([
      { sql: "INSERT INTO t (id, k) VALUES (?, ?), (?, ?)", args: [1, "a", 2, "b"] },
      { sql: "INSERT INTO e (t_id, n) VALUES (?, 1), (?, 1)", args: [1, 2] },
    ]);
    expect(
      mergeInserts([insert(1, "a"), [{ sql: "UPDATE t SET k = ? WHERE id = ?", args: ["x", 1] }]]),
    ).toBeUndefined();
    expect(mergeInserts([[{ sql: "INSERT INTO t (id) VALUES (?) RETURNING id", args: [1] }]])).toBeUndefined();
  });

  it("stores every write of a burst, and a failing write fails alone", async () => {
    const client = await database();
    const queue = createWriteQueue(client);
    const writes = Array.from({ length: 50 }, (_, i) => queue.run(insert(i, i === 49 ? "k0" : `k${i}`)));
    const outcomes = await Promise.allSettled(writes);
    expect(outcomes.filter((o) => o.status === "rejected")).toHaveLength(1);
    expect((outcomes[49] as PromiseRejectedResult).reason).toBeDefined();
    const rows = await client.execute("SELECT (SELECT count(*) FROM t) AS t, (SELECT count(*) FROM e) AS e");
    expect(rows.rows[0]).toMatchObject({ t: 49, e: 49 });
  });
});
