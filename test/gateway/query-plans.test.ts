/**
 * Cost must not grow with history: every statement a user request or an agent cycle runs is
 * captured as the real code sends it to libSQL, and its EXPLAIN QUERY PLAN may not scan the jobs
 * table (or the label side table) nor sort an unbounded set of its rows. Without ANALYZE (slurmgate
 * never runs it) SQLite plans from the schema alone, so an in-memory database shows the plans a
 * database with millions of jobs gets. The measured effect is `npm run bench` (history section).
 */
import { createHash } from "node:crypto";
import type { Client } from "@libsql/client";
import { afterAll, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@libsql/client";
import { createToken } from "../../gateway/store/tokens.ts";
import { expireLeases } from "../../gateway/store/leases.ts";
import { type Captured, captureStatements } from "../helpers/capture-sql.ts";
import { sampleInventory } from "../helpers/gateway.ts";
import { createWorld } from "./world.ts";

const HISTORY_TABLES = /\b(jobs|job_labels|job_events|sweeps)\b/;

/** Columns a history-sized table is filtered by; each must narrow the index seek, not the rows read. */
const FILTERS = /(?<![\w.])(?:j\.)?(owner|state|cluster|lease_owner)\s*(?:=|IN\s*\('[^)]*\))/g;

/** What is wrong with one statement's plan, or nothing. */
async function judge(client: Client, stmt: Captured): Promise<string[]> {
  const rs = await client.execute({ sql: `EXPLAIN QUERY PLAN ${stmt.sql}`, args: stmt.args });
  const lines = rs.rows.map((r) => String(r.detail));
  const sql = stmt.sql.replace(/\s+/g, " ");
  const faults: string[] = [];
  // An unfiltered page in id order reads LIMIT rows off the primary key and stops: the one scan allowed.
  const orderedPage = /\bFROM (jobs|sweeps) ORDER BY id DESC LIMIT \?/.exec(sql)?.[1];
  for (const line of lines) {
    if (
      /^SCAN (jobs|job_labels|job_events|sweeps|j|l|s|h|e)\b/.test(line) &&
      !(orderedPage && line === `SCAN ${orderedPage} USING INDEX sqlite_autoindex_${orderedPage}_1`)
    ) {
      faults.push(`full scan: ${line}`);
    }
    // A page sorted after the fact reads every matching row first, however many history holds.
    if (/USE TEMP B-TREE FOR ORDER BY/.test(line) && /ORDER BY \S*id DESC/.test(sql)) {
      faults.push(`sorts the matching rows: ${line}`);
    }
  }
  // A seek on `owner` alone, then reading every row of the owner to find its running ones, is how
  // `?state=running` grew with history: each filter column must be part of the seek, or the index
  // must hold only live rows (a partial index on state), or the seek must be by id.
  const where = sql.slice(sql.indexOf(" WHERE "));
  const filtered = new Set([...where.matchAll(FILTERS)].map((m) => m[1]!));
  const seeks = lines.filter((l) => /^SEARCH (jobs|j|sweeps)\b/.test(l));
  const constrained = new Set(seeks.flatMap((l) => [...l.matchAll(/\b(\w+)(?:=|<|>)/g)].map((m) => m[1]!)));
  const partial = seeks.some((l) => /USING (COVERING )?INDEX (jobs_held_expiry|jobs_cancel_orders)\b/.test(l));
  const byLabel = lines.some((l) => /^SEARCH (job_labels|l)\b/.test(l));
  if (partial) {
    constrained.add("state");
  }
  if (!byLabel && !constrained.has("id") && !/^INSERT INTO \w+ \([^)]*\) VALUES/.test(sql)) {
    const loose = [...filtered].filter((c) => !constrained.has(c));
    if (loose.length) {
      faults.push(`reads rows to filter ${loose.join(", ")}: ${seeks.join(" | ") || "no seek"}`);
    }
  }
  if (process.env.PLANS) {
    console.log(`${sql}\n   => ${lines.join(" | ")}`);
  }
  return faults.map((f) => `${f}\n    in: ${sql}\n    plan: ${lines.join(" | ")}`);
}

const dir = mkdtempSync(join(tmpdir(), "slurmgate-plans-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/**
 * The world on a file, with a second connection for EXPLAIN: libSQL runs `EXPLAIN QUERY PLAN
 * INSERT …` as a write and leaves it open on its connection, which would fail the app's next commit.
 */
async function planWorld(env: Record<string, string> = {}) {
  const url = `file:${join(dir, `${Math.random().toString(36).slice(2)}.db`)}`;
  const w = await createWorld(env, undefined, url);
  return { ...w, explain: createClient({ url }) };
}
type PlanWorld = Awaited<ReturnType<typeof planWorld>>;

async function expectNoHistoryScans(w: PlanWorld, run: () => Promise<unknown>) {
  const statements = (await captureStatements(w.db, run)).filter((s) => HISTORY_TABLES.test(s.sql));
  expect(statements.length).toBeGreaterThan(0);
  const faults: string[] = [];
  for (const stmt of statements) {
    faults.push(...(await judge(w.explain, stmt)));
  }
  expect(faults).toEqual([]);
}

const LIST_QUERIES = [
  "",
  "state=running",
  "state=queued",
  "state=completed",
  "state=lost",
  "cluster=alpha",
  "state=running&cluster=beta",
  "label=project%3Dvision",
  "label=project%3Dvision&state=failed",
  "label=project%3Dvision&cluster=alpha",
  "label=project%3Dvision&state=queued&cluster=alpha",
];

describe("query plans stay flat as history grows", () => {
  it("GET /v1/jobs reads an index in page order for every filter, for a user and for an admin", async () => {
    const w = await planWorld();
    const job = await w.submit(w.tokens.alice, { labels: { project: "vision" } });
    for (const token of [w.tokens.alice, w.tokens.admin]) {
      for (const query of LIST_QUERIES) {
        for (const cursor of ["", `&cursor=${job.id}`]) {
          await expectNoHistoryScans(w, async () => {
            const res = await w.call("GET", `/v1/jobs?${query}${cursor}`, token);
            expect({ query, status: res.status }).toEqual({ query, status: 200 });
          });
        }
      }
    }
  });

  it("a submit, with and without an Idempotency-Key and with the per-user cap on, seeks only", async () => {
    const w = await planWorld({ SLURMGATE_MAX_QUEUED_PER_USER: "1000" });
    await expectNoHistoryScans(w, () => w.submit(w.tokens.alice, { labels: { project: "vision", seed: "1" } }));
    await expectNoHistoryScans(w, () => w.submit(w.tokens.bob, {}, { "idempotency-key": "k-1" }));
  });

  it("an agent's lease call (nothing to claim, renewing, with cancel orders) and its reports seek only", async () => {
    const w = await planWorld();
    const held = await w.submit(w.tokens.alice, { cluster: "alpha" });
    const leased = await w.lease(w.tokens.alphaAgent);
    expect(leased.body.leases.map((l) => l.jobId)).toEqual([held.id]);
    const epoch = leased.body.leases[0]!.epoch;
    await expectNoHistoryScans(w, () =>
      w.lease(w.tokens.alphaAgent, "agent-1", { holding: [held.id, "job_00000000000000000000000000"] }),
    );
    await expectNoHistoryScans(w, () =>
      w.report(w.tokens.alphaAgent, [{ jobId: held.id, epoch, state: "running", slurmJobId: "11" }]),
    );
    await w.call("POST", `/v1/jobs/${held.id}/cancel`, w.tokens.alice);
    await expectNoHistoryScans(w, async () => {
      const res = await w.lease(w.tokens.alphaAgent, "agent-1", { holding: [held.id] });
      expect(res.body.cancels.map((c) => c.jobId)).toEqual([held.id]);
    });
  });

  it("claims scoped to one user (personal agent) or to a site agent's users seek only", async () => {
    const w = await planWorld();
    await w.submit(w.tokens.alice, { cluster: "alpha" });
    const personal = await w.call<{ token: string }>("POST", "/v1/agent-tokens", w.tokens.alice, {
      cluster: "alpha",
      label: "laptop",
    });
    await expectNoHistoryScans(w, () => w.lease(personal.body.token, "laptop"));
    const site = (await createToken(w.db, { kind: "agent", cluster: "beta" }, w.deps.now())).token;
    await w.call("PUT", "/v1/agent/inventory", site, {
      ...sampleInventory("h100", "site-1"),
      identity: { mode: "site", users: ["alice", "bob"] },
    });
    await expectNoHistoryScans(w, () => w.lease(site, "site-1"));
  });

  it("a job's events and the user feed (long-poll and the stream's reads) seek only", async () => {
    const w = await planWorld();
    const job = await w.submit(w.tokens.alice, { cluster: "alpha" });
    await w.lease(w.tokens.alphaAgent);
    for (const token of [w.tokens.alice, w.tokens.admin]) {
      await expectNoHistoryScans(w, async () => {
        const res = await w.call("GET", "/v1/events?after=1", token);
        expect(res.status).toBe(200);
      });
      await expectNoHistoryScans(w, async () => {
        const res = await w.call("GET", "/v1/events", token);
        expect(res.status).toBe(200);
      });
    }
    await expectNoHistoryScans(w, async () => {
      const res = await w.call("GET", `/v1/jobs/${job.id}/events?after=1`, w.tokens.alice);
      expect(res.status).toBe(200);
    });
  });

  it("the lease-expiry housekeeping seeks only", async () => {
    const w = await planWorld();
    await w.submit(w.tokens.alice, { cluster: "alpha" });
    await w.lease(w.tokens.alphaAgent);
    await expectNoHistoryScans(w, () => expireLeases(w.db, w.deps.now() + 3_600_000));
  });

  it("sweeps: submit, read, page, results, list, cancel, and the claim of groups (capped and not) seek only", async () => {
    const w = await planWorld({ SLURMGATE_MAX_QUEUED_PER_USER: "1000" });
    const body = {
      base: { name: "g", cluster: "alpha", command: ["run", "{I}"], labels: { project: "vision" } },
      grid: { I: [1, 2, 3] },
    };
    let id = "";
    await expectNoHistoryScans(w, async () => {
      const res = await w.call<{ id: string }>("POST", "/v1/sweeps", w.tokens.alice, { ...body, maxParallel: 2 });
      expect(res.status).toBe(201);
      id = res.body.id;
    });
    await expectNoHistoryScans(w, () =>
      w.call("POST", "/v1/sweeps", w.tokens.alice, body, { "idempotency-key": "plans" }),
    );
    // The first claim picks one element; its group comes along (the extension and the batch assignment).
    await expectNoHistoryScans(w, async () => {
      const leased = await w.lease(w.tokens.alphaAgent, "agent-1", { max: 1 });
      expect(leased.body.leases.length).toBe(3);
    });
    // A capped sweep's queued elements are checked for held siblings (jobs_sweep_state) in the claim itself.
    await w.call("POST", "/v1/sweeps", w.tokens.alice, {
      specs: [body.base, { ...body.base, resources: { cpusPerTask: 2 } }],
      maxParallel: 1,
    });
    await expectNoHistoryScans(w, () => w.lease(w.tokens.alphaAgent, "agent-1", { max: 10 }));
    await expectNoHistoryScans(w, () => w.lease(w.tokens.alphaAgent, "agent-1", { max: 10 }));
    // An array's leases expire: one taken over brings the rest of its array (jobs_batch).
    await w.db.client.execute("UPDATE jobs SET lease_expires_at = 1 WHERE batch_id IS NOT NULL");
    await expectNoHistoryScans(w, async () => {
      const taken = await w.lease(w.tokens.alphaAgent, "agent-2", { max: 1 });
      expect(taken.body.leases.length).toBeGreaterThan(1);
    });
    for (const token of [w.tokens.alice, w.tokens.admin]) {
      for (const path of [
        `/v1/sweeps/${id}`,
        `/v1/sweeps/${id}?cursor=1&limit=1`,
        "/v1/sweeps",
        "/v1/sweeps?cursor=swp_1",
      ]) {
        await expectNoHistoryScans(w, async () => {
          expect((await w.call("GET", path, token)).status).toBe(200);
        });
      }
    }
    await expectNoHistoryScans(w, async () => {
      expect(await (await w.request("GET", `/v1/sweeps/${id}/results`, { token: w.tokens.alice })).text()).toMatch(
        /"index":2/,
      );
    });
    await expectNoHistoryScans(w, async () => {
      expect((await w.call("POST", `/v1/sweeps/${id}/cancel`, w.tokens.alice)).status).toBe(202);
    });
  });

  it("a job's files per attempt (upload, list, download, ranged download and its verification) seek only", async () => {
    const w = await planWorld();
    const job = await w.submit(w.tokens.alice, { cluster: "alpha", outputs: ["results/*.json"] });
    const { epoch } = (await w.lease(w.tokens.alphaAgent)).body.leases[0]!;
    const bytes = Buffer.from('{"a":1}');
    const sha256 = createHash("sha256").update(bytes).digest("hex");
    const q = new URLSearchParams({ epoch: String(epoch), path: "results/a.json", sha256, size: String(bytes.length) });
    const run = async () => {
      const put = await w.app.request(`/v1/agent/jobs/${job.id}/outputs?${q}`, {
        method: "PUT",
        headers: { authorization: `Bearer ${w.tokens.alphaAgent}`, "content-type": "application/octet-stream" },
        body: bytes,
      });
      expect(put.status).toBe(200);
      for (const path of ["files", "files?attempt=1", "files/results/a.json", "files/results/a.json?attempt=1"]) {
        for (const range of [undefined, "bytes=0-1"]) {
          const res = await w.request("GET", `/v1/jobs/${job.id}/${path}`, {
            token: w.tokens.alice,
            headers: range ? { range } : {},
          });
          expect(res.status, path).toBeLessThan(300);
          await res.arrayBuffer();
        }
      }
    };
    const statements = (await captureStatements(w.db, run)).filter((s) => /\b(job_files|blobs)\b/.test(s.sql));
    expect(statements.length).toBeGreaterThan(3);
    const faults: string[] = [];
    for (const stmt of statements) {
      const rs = await w.explain.execute({ sql: `EXPLAIN QUERY PLAN ${stmt.sql}`, args: stmt.args });
      const lines = rs.rows.map((r) => String(r.detail));
      if (lines.some((l) => /^SCAN (job_files|blobs)\b|USE TEMP B-TREE/.test(l))) {
        faults.push(`${stmt.sql.replace(/\s+/g, " ")}\n    plan: ${lines.join(" | ")}`);
      }
    }
    expect(faults).toEqual([]);
  });

  it("the judge itself fails a full scan and a sorted page (so a pass above means something)", async () => {
    const w = await planWorld();
    expect(await judge(w.explain, { sql: "SELECT id FROM jobs WHERE name = ?", args: ["x"] })).toHaveLength(1);
    expect(
      await judge(w.explain, { sql: "SELECT id FROM jobs WHERE name = ? ORDER BY id DESC LIMIT ?", args: ["x", 1] }),
    ).not.toEqual([]);
    expect(await judge(w.explain, { sql: "SELECT id FROM jobs WHERE id = ?", args: ["x"] })).toEqual([]);
  });
});
