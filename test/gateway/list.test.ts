/**
 * GET /v1/jobs: filters, keyset pagination newest first (no duplicates, no gaps), own jobs only.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { insertJob } from "../../gateway/store/jobs.ts";
import { newId } from "../../gateway/ids.ts";
import { JobSpec } from "../../schemas/index.ts";
import { type World, createWorld } from "./world.ts";

type Page = { items: { id: string; owner: string; state: string; cluster: string }[]; nextCursor: string | null };

async function allPages(w: World, token: string, query: string, limit: number) {
  const ids: string[] = [];
  let cursor: string | null = null;
  for (let pages = 0; pages < 1_000; pages++) {
    const q: string = `${query}&limit=${limit}${cursor ? `&cursor=${cursor}` : ""}`;
    const res: { status: number; body: Page } = await w.call<Page>("GET", `/v1/jobs?${q}`, token);
    expect(res.status).toBe(200);
    expect(res.body.items.length).toBeLessThanOrEqual(limit);
    ids.push(...res.body.items.map((j) => j.id));
    cursor = res.body.nextCursor;
    if (!cursor) {
      return ids;
    }
  }
  throw new Error("pagination did not end");
}

describe("list jobs", () => {
  it("filters by state, cluster and label and shows users only their own jobs", async () => {
    const w = await createWorld();
    const a1 = await w.submit(w.tokens.alice, { cluster: "alpha", labels: { project: "x", team: "a=b" } });
    const a2 = await w.submit(w.tokens.alice, { cluster: "beta", labels: { project: "y" } });
    const a3 = await w.submit(w.tokens.alice, { cluster: "alpha" });
    const b1 = await w.submit(w.tokens.bob, { cluster: "alpha", labels: { project: "x" } });
    await w.call("POST", `/v1/jobs/${a3.id}/cancel`, w.tokens.alice);
    const ids = async (token: string, query = "") =>
      (await w.call<Page>("GET", `/v1/jobs?${query}`, token)).body.items.map((j) => j.id);

    expect(await ids(w.tokens.alice)).toEqual([a3.id, a2.id, a1.id]);
    expect(await ids(w.tokens.bob)).toEqual([b1.id]);
    expect(await ids(w.tokens.admin)).toEqual([b1.id, a3.id, a2.id, a1.id]);
    expect(await ids(w.tokens.alice, "cluster=alpha")).toEqual([a3.id, a1.id]);
    expect(await ids(w.tokens.alice, "state=cancelled")).toEqual([a3.id]);
    expect(await ids(w.tokens.alice, "state=queued&cluster=beta")).toEqual([a2.id]);
    expect(await ids(w.tokens.alice, "label=project%3Dx")).toEqual([a1.id]);
    expect(await ids(w.tokens.alice, "label=team%3Da%3Db")).toEqual([a1.id]);
    expect(await ids(w.tokens.admin, "label=project%3Dx")).toEqual([b1.id, a1.id]);
    expect(await ids(w.tokens.alice, "label=project%3Dnone")).toEqual([]);
    const bad = await w.call<{ field: string }>("GET", "/v1/jobs?state=sleeping", w.tokens.alice);
    expect([bad.status, bad.body.field]).toEqual([422, "query.state"]);
  });

  it("pages newest first without duplicates or gaps (property)", async () => {
    const w = await createWorld();
    const spec = JobSpec.parse({ name: "p", command: ["true"] });
    const all: string[] = [];
    // Seed through the store for speed; ids carry creation time, several per millisecond.
    for (let i = 0; i < 120; i++) {
      const id = newId("job", 1_700_000_000_000 + Math.floor(i / 3));
      await insertJob(w.db, {
        id,
        owner: i % 4 === 0 ? "bob" : "alice",
        spec,
        cluster: i % 2 ? "alpha" : "beta",
        partition: "cpu",
        reason: null,
        idempotencyKey: null,
        specHash: null,
        now: 1_700_000_000_000 + i,
      });
      all.push(id);
    }
    const expected = (owner: string, cluster?: string) =>
      all
        .filter(
          (_, i) => (i % 4 === 0 ? "bob" : "alice") === owner && (!cluster || (i % 2 ? "alpha" : "beta") === cluster),
        )
        .sort()
        .reverse();
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 40 }),
        fc.constantFrom(undefined, "alpha", "beta"),
        async (limit, cluster) => {
          const got = await allPages(w, w.tokens.alice, cluster ? `cluster=${cluster}` : "", limit);
          expect(got).toEqual(expected("alice", cluster));
        },
      ),
      { numRuns: 25 },
    );
  });
});
