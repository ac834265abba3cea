/**
 * Label filters read the job_labels side table (migration 0006): jobs stored before it are found
 * through its backfill, corrupt labels JSON neither stops the migration nor matches anything, and
 * hostile keys and values match exactly, per user, across pages.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@libsql/client";
import { migrate } from "drizzle-orm/libsql/migrator";
import { afterEach, describe, expect, it } from "vitest";
import { openDatabase } from "../../gateway/db/client.ts";
import { MIGRATIONS_FOLDER, migrateDatabase } from "../../gateway/db/migrate.ts";
import { newId } from "../../gateway/ids.ts";
import { insertJob, listJobs } from "../../gateway/store/jobs.ts";
import { JobSpec } from "../../schemas/index.ts";
import { createTestGateway } from "../helpers/gateway.ts";
import { createWorld } from "./world.ts";

type Page = { items: { id: string; owner: string }[]; nextCursor: string | null };

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** The migrations folder as it was before `tag`: the journal cut just before that entry. */
function migrationsBefore(tag: string): string {
  const dir = mkdtempSync(join(tmpdir(), "slurmgate-migrations-"));
  dirs.push(dir);
  cpSync(MIGRATIONS_FOLDER, dir, { recursive: true });
  const journalPath = join(dir, "meta", "_journal.json");
  const journal = JSON.parse(readFileSync(journalPath, "utf8")) as { entries: { tag: string }[] };
  const at = journal.entries.findIndex((e) => e.tag.endsWith(tag));
  expect(at).toBeGreaterThan(0);
  journal.entries = journal.entries.slice(0, at);
  writeFileSync(journalPath, JSON.stringify(journal));
  return dir;
}

describe("label filters", () => {
  it("find jobs stored before the side table existed; corrupt labels neither fail the migration nor match", async () => {
    const dir = mkdtempSync(join(tmpdir(), "slurmgate-labels-"));
    dirs.push(dir);
    const url = `file:${join(dir, "gw.db")}`;
    const old = createClient({ url });
    await migrate(openDatabase(old).orm, { migrationsFolder: migrationsBefore("history_indexes") });
    const rows: [string, string, string][] = [
      ["job_01old0000000000000000000001", "alice", '{"project":"x","a.b/c":"=1="}'],
      ["job_01old0000000000000000000002", "alice", "{broken"],
      ["job_01old0000000000000000000003", "alice", '["project","x"]'],
      ["job_01old0000000000000000000004", "alice", '{"project":5,"other":null}'],
      ["job_01old0000000000000000000005", "bob", '{"project":"x"}'],
    ];
    for (const [id, owner, labels] of rows) {
      await old.execute({
        sql: `INSERT INTO jobs (id, owner, name, state, cluster, spec, labels, created_at, updated_at)
              VALUES (?, ?, 'old', 'completed', 'alpha', '{}', ?, 1, 1)`,
        args: [id, owner, labels],
      });
    }
    old.close();

    const gw = await createTestGateway({}, { url });
    const alice = await gw.user("alice");
    const admin = await gw.user("root", true);
    const ids = async (token: string, query: string) => {
      const res = await gw.request("GET", `/v1/jobs?${query}`, { token });
      expect(res.status).toBe(200);
      return ((await res.json()) as Page).items.map((j) => j.id);
    };
    expect(await ids(alice, "label=project%3Dx")).toEqual(["job_01old0000000000000000000001"]);
    expect(await ids(alice, "label=a.b%2Fc%3D%3D1%3D")).toEqual(["job_01old0000000000000000000001"]);
    expect(await ids(alice, "label=project%3D5")).toEqual([]);
    expect(await ids(admin, "label=project%3Dx")).toEqual([
      "job_01old0000000000000000000005",
      "job_01old0000000000000000000001",
    ]);
    gw.db.client.close();
  });

  it("match hostile keys and values exactly, only the caller's own, in pages without gaps", async () => {
    const w = await createWorld();
    const hostile = {
      "a.b": "x' OR '1'='1",
      "k/../v": '"quoted" \\ back',
      "z_-9": "",
      u: "ünïcødé=✓",
    };
    const mine: string[] = [];
    for (let i = 0; i < 7; i++) {
      mine.push((await w.submit(w.tokens.alice, { labels: { ...hostile, seq: String(i % 2) } })).id);
    }
    const near = await w.submit(w.tokens.alice, { labels: { "a.b": "x' OR '1'='", u: "ünïcødé" } });
    const bobs = await w.submit(w.tokens.bob, { labels: hostile });
    const list = async (token: string, query: string, limit = 50) => {
      const out: string[] = [];
      let cursor: string | null = null;
      do {
        const res: { status: number; body: Page } = await w.call<Page>(
          "GET",
          `/v1/jobs?${query}&limit=${limit}${cursor ? `&cursor=${cursor}` : ""}`,
          token,
        );
        expect(res.status).toBe(200);
        out.push(...res.body.items.map((j) => j.id));
        cursor = res.body.nextCursor;
      } while (cursor);
      return out;
    };
    const q = (key: string, value: string) => `label=${encodeURIComponent(`${key}=${value}`)}`;
    const newestFirst = [...mine].reverse();
    for (const [key, value] of Object.entries(hostile)) {
      expect(await list(w.tokens.alice, q(key, value), 2)).toEqual(newestFirst);
      expect(await list(w.tokens.admin, q(key, value), 3)).toEqual([bobs.id, ...newestFirst]);
    }
    expect(await list(w.tokens.alice, q("seq", "1"), 1)).toEqual(newestFirst.filter((_, i) => i % 2 === 1));
    expect(await list(w.tokens.alice, `${q("seq", "1")}&state=cancelled`)).toEqual([]);
    expect(await list(w.tokens.alice, `${q("a.b", hostile["a.b"])}&cluster=alpha`)).toEqual(
      (await list(w.tokens.alice, "cluster=alpha")).filter((id) => mine.includes(id)),
    );
    expect(await list(w.tokens.alice, q("a.b", "x' OR '1'='"))).toEqual([near.id]);
    expect(await list(w.tokens.alice, q("u", "%"))).toEqual([]);
    expect(await list(w.tokens.bob, q("u", "ünïcødé"))).toEqual([]);
  });

  it("are written in the job's own transaction: a burst through the group-commit queue, one insert refused", async () => {
    const dir = mkdtempSync(join(tmpdir(), "slurmgate-labels-"));
    dirs.push(dir);
    const db = openDatabase(createClient({ url: `file:${join(dir, "gw.db")}` }), { batchWrites: true });
    await migrateDatabase(db);
    const now = Date.now();
    const submit = (i: number, labels: Record<string, string>, key: string | null) => {
      const id = newId("job", now + i);
      return insertJob(db, {
        id,
        owner: "alice",
        spec: JobSpec.parse({ name: "burst", command: ["true"], labels }),
        cluster: "alpha",
        partition: null,
        reason: null,
        idempotencyKey: key,
        specHash: null,
        now: now + i,
      }).then(
        () => ({ id, ok: true }),
        () => ({ id, ok: false }),
      );
    };
    // Same event-loop turn: one group. Mixed label counts defeat the merged INSERT; the duplicate
    // key fails the group, which is then retried writer by writer.
    const results = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        submit(
          i,
          i % 3 === 0 ? {} : i % 3 === 1 ? { run: "r1" } : { run: "r1", part: `p${i}` },
          i === 7 ? "dup" : i === 8 ? "dup" : null,
        ),
      ),
    );
    expect(results.filter((r) => !r.ok).map((r) => r.id)).toEqual([results[8]!.id]);
    const stored = results.filter((r, i) => r.ok && i % 3 !== 0).map((r) => r.id);
    const page = await listJobs(db, { owner: "alice", label: { key: "run", value: "r1" }, limit: 500 });
    expect(page.items.map((j) => j.id)).toEqual([...stored].reverse());
    const orphans = await db.client.execute(
      "SELECT count(*) AS n FROM job_labels WHERE job_id NOT IN (SELECT id FROM jobs)",
    );
    expect(Number(orphans.rows[0]?.n)).toBe(0);
    db.client.close();
  });
});
