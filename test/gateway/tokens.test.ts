/**
 * Bearer tokens: long random secrets with a kind prefix, stored only hashed, revocable at once,
 * and dead after they expire.
 */
import { describe, expect, it } from "vitest";
import { generateToken, tokenKind } from "../../gateway/tokens.ts";
import { testClock } from "../helpers/gateway.ts";
import { createWorld } from "./world.ts";

type Created = { id: string; token: string; kind: string; prefix: string; expiresAt: string | null };

describe("tokens", () => {
  it("carry at least 256 random bits behind a kind prefix", () => {
    const seen = new Set<string>();
    for (const kind of ["user", "agent", "admin"] as const) {
      for (let i = 0; i < 50; i++) {
        const token = generateToken(kind);
        expect(token).toMatch(/^sg[uak]_[A-Za-z0-9_-]{43}$/);
        expect(tokenKind(token)).toBe(kind);
        seen.add(token);
      }
    }
    expect(seen.size).toBe(150);
    // 43 base64url characters carry 258 bits; the generator draws 32 random bytes.
    expect(43 * 6).toBeGreaterThanOrEqual(256);
  });

  it("are shown once through the admin API and stored only as hashes", async () => {
    const w = await createWorld();
    const made: Created[] = [];
    for (const body of [
      { kind: "user", user: "alice" },
      { kind: "agent", cluster: "alpha" },
      { kind: "admin", user: "root" },
    ]) {
      const res = await w.call<Created>("POST", "/v1/admin/tokens", w.tokens.admin, body);
      expect(res.status).toBe(201);
      made.push(res.body);
    }
    expect(made.map((t) => t.token.slice(0, 4))).toEqual(["sgu_", "sga_", "sgk_"]);
    const rows = await w.db.client.execute("SELECT * FROM tokens");
    const dump = JSON.stringify(rows.rows);
    for (const t of [...made.map((m) => m.token), ...Object.values(w.tokens)]) {
      expect(dump).not.toContain(t);
      expect(dump).not.toContain(t.slice(4));
    }
    const listed = await w.call<{ items: Record<string, unknown>[] }>("GET", "/v1/admin/tokens", w.tokens.admin);
    expect(JSON.stringify(listed.body)).not.toContain(made[0]!.token);
    expect(listed.body.items.every((i) => !("token" in i) && !("hash" in i))).toBe(true);
    for (const t of made) {
      const me = await w.call<{ kind: string }>("GET", "/v1/me", t.token);
      expect(me.status).toBe(200);
      expect(me.body.kind).toBe(t.kind);
    }
  });

  it("stop working the moment they are revoked", async () => {
    const w = await createWorld();
    const created = await w.call<Created>("POST", "/v1/admin/tokens", w.tokens.admin, { kind: "user", user: "bob" });
    expect((await w.call("GET", "/v1/jobs", created.body.token)).status).toBe(200);
    const revoked = await w.call("DELETE", `/v1/admin/tokens/${created.body.id}`, w.tokens.admin);
    expect(revoked.status).toBe(204);
    const after = await w.call<{ detail: string }>("GET", "/v1/jobs", created.body.token);
    expect(after.status).toBe(401);
    expect(after.body.detail).toMatch(/revoked/);
    expect((await w.call("GET", "/v1/jobs", w.tokens.bob)).status).toBe(200);
    expect((await w.call("DELETE", "/v1/admin/tokens/tok_missing", w.tokens.admin)).status).toBe(404);
  });

  it("expire after expiresInDays", async () => {
    const clock = testClock();
    const w = await createWorld({}, clock);
    const created = await w.call<Created>("POST", "/v1/admin/tokens", w.tokens.admin, {
      kind: "user",
      user: "alice",
      expiresInDays: 1,
    });
    expect(created.body.expiresAt).toBe(new Date(clock.now() + 86_400_000).toISOString());
    clock.advance(86_400_000 - 1);
    expect((await w.call("GET", "/v1/me", created.body.token)).status).toBe(200);
    clock.advance(1);
    expect((await w.call("GET", "/v1/me", created.body.token)).status).toBe(401);
  });

  it("of a user demoted from admin no longer open the admin API", async () => {
    const w = await createWorld();
    expect((await w.call("POST", "/v1/admin/users", w.tokens.admin, { name: "root", admin: false })).status).toBe(200);
    expect((await w.call("GET", "/v1/admin/users", w.tokens.admin)).status).toBe(401);
  });

  it("for agents must name a registered cluster; admin tokens need an admin user", async () => {
    const w = await createWorld();
    const noCluster = await w.call<{ field: string }>("POST", "/v1/admin/tokens", w.tokens.admin, { kind: "agent" });
    expect(noCluster.status).toBe(422);
    expect(noCluster.body.field).toBe("body.cluster");
    const unknown = await w.call<{ field: string }>("POST", "/v1/admin/tokens", w.tokens.admin, {
      kind: "agent",
      cluster: "nowhere",
    });
    expect(unknown.status).toBe(404);
    expect(unknown.body.field).toBe("body.cluster");
    const notAdmin = await w.call<{ field: string }>("POST", "/v1/admin/tokens", w.tokens.admin, {
      kind: "admin",
      user: "alice",
    });
    expect(notAdmin.status).toBe(422);
    expect(notAdmin.body.field).toBe("body.user");
  });
});
