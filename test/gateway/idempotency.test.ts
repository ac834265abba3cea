/**
 * Idempotency-Key: a retry returns the same job, a different body under the same key is refused,
 * and a burst of identical submissions stores exactly one job.
 */
import { describe, expect, it } from "vitest";
import { createWorld, spec } from "./world.ts";

async function rows(w: Awaited<ReturnType<typeof createWorld>>) {
  const rs = await w.db.client.execute("SELECT id FROM jobs");
  return rs.rows.map((r) => String(r.id));
}

describe("idempotency", () => {
  it("returns the same job for the same key and body (200 on replay)", async () => {
    const w = await createWorld();
    const headers = { "idempotency-key": "nightly-2026-11-22" };
    const first = await w.call<{ id: string }>("POST", "/v1/jobs", w.tokens.alice, spec(), headers);
    expect(first.status).toBe(201);
    expect(first.headers.get("location")).toBe(`/v1/jobs/${first.body.id}`);
    // Same body with keys in another order is the same request.
    const reordered = { command: ["echo", "hi"], name: "hello" };
    const again = await w.call<{ id: string }>("POST", "/v1/jobs", w.tokens.alice, reordered, headers);
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(first.body.id);
    expect(await rows(w)).toEqual([first.body.id]);
  });

  it("refuses the same key with a different body (409) and stores nothing", async () => {
    const w = await createWorld();
    const headers = { "idempotency-key": "k" };
    await w.call("POST", "/v1/jobs", w.tokens.alice, spec(), headers);
    const res = await w.call<{ code: string }>("POST", "/v1/jobs", w.tokens.alice, spec({ name: "other" }), headers);
    expect(res.status).toBe(409);
    expect(res.body.code).toBe("idempotency_conflict");
    expect(await rows(w)).toHaveLength(1);
  });

  it("scopes keys per user", async () => {
    const w = await createWorld();
    const headers = { "idempotency-key": "shared" };
    const a = await w.call<{ id: string }>("POST", "/v1/jobs", w.tokens.alice, spec(), headers);
    const b = await w.call<{ id: string }>("POST", "/v1/jobs", w.tokens.bob, spec({ name: "bobs" }), headers);
    expect([a.status, b.status]).toEqual([201, 201]);
    expect(a.body.id).not.toBe(b.body.id);
  });

  it("stores exactly one job for 20 concurrent submissions with one key", async () => {
    const w = await createWorld();
    const headers = { "idempotency-key": "burst" };
    const results = await Promise.all(
      Array.from({ length: 20 }, () => w.call<{ id: string }>("POST", "/v1/jobs", w.tokens.alice, spec(), headers)),
    );
    const statuses = results.map((r) => r.status).sort();
    expect(statuses.filter((s) => s === 201)).toHaveLength(1);
    expect(statuses.filter((s) => s === 200)).toHaveLength(19);
    expect(new Set(results.map((r) => r.body.id)).size).toBe(1);
    expect(await rows(w)).toEqual([results[0]!.body.id]);
    const events = await w.db.client.execute("SELECT count(*) AS n FROM job_events");
    expect(Number(events.rows[0]?.n)).toBe(1);
  });

  it("refuses a malformed key", async () => {
    const w = await createWorld();
    const res = await w.call<{ field: string }>("POST", "/v1/jobs", w.tokens.alice, spec(), {
      "idempotency-key": "has space",
    });
    expect(res.status).toBe(422);
    expect(res.body.field).toBe("header.idempotency-key");
  });
});
