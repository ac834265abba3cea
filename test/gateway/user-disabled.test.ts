/**
 * Disabled users: an admin turns a user off and every token of theirs (user, admin, personal
 * agent) gets a 403 naming the user, at once; turning them back on restores exactly what they had.
 */
import { describe, expect, it } from "vitest";
import { createWorld, expectProblemShape } from "./world.ts";

type Problem = { detail: string; field?: string; code: string };

describe("disabled users", () => {
  it("refuse every token of the user at once, and work again once re-enabled", async () => {
    const w = await createWorld();
    const job = await w.submit(w.tokens.alice);
    const personal = await w.call<{ token: string }>("POST", "/v1/agent-tokens", w.tokens.alice, { cluster: "alpha" });
    expect(personal.status).toBe(201);
    // Warm the auth cache: disabling must not wait for it to expire.
    expect((await w.call("GET", "/v1/me", w.tokens.alice)).status).toBe(200);

    const off = await w.call("POST", "/v1/admin/users", w.tokens.admin, { name: "alice", disabled: true });
    expect(off.status).toBe(200);
    expect(off.body).toMatchObject({ name: "alice", admin: false, disabled: true });

    for (const [method, path, token] of [
      ["GET", "/v1/me", w.tokens.alice],
      ["GET", `/v1/jobs/${job.id}`, w.tokens.alice],
      ["POST", "/v1/agent/lease", personal.body.token],
    ] as const) {
      const body = method === "POST" ? { agentId: "a1", max: 1, wait: 0 } : undefined;
      const res = await w.call(method, path, token, body);
      const problem = expectProblemShape(res, 403) as unknown as Problem;
      expect(problem.detail).toBe("user alice is disabled");
      expect(problem.field).toBe("header.authorization");
      expect(JSON.stringify(res.body)).not.toContain(token.slice(4));
    }
    // Others are untouched.
    expect((await w.call("GET", "/v1/me", w.tokens.bob)).status).toBe(200);
    const listed = await w.call<{ items: { name: string; disabled: boolean }[] }>(
      "GET",
      "/v1/admin/users",
      w.tokens.admin,
    );
    expect(listed.body.items.find((u) => u.name === "alice")?.disabled).toBe(true);
    expect(listed.body.items.find((u) => u.name === "bob")?.disabled).toBe(false);

    const on = await w.call("POST", "/v1/admin/users", w.tokens.admin, { name: "alice", disabled: false });
    expect(on.body).toMatchObject({ name: "alice", disabled: false });
    expect((await w.call("GET", `/v1/jobs/${job.id}`, w.tokens.alice)).status).toBe(200);
    expect(
      (await w.call("POST", "/v1/agent/lease", personal.body.token, { agentId: "a1", max: 1, wait: 0 })).status,
    ).toBe(200);
  });

  it("stay disabled when an admin re-saves the user without saying so, and keep the first time", async () => {
    const w = await createWorld();
    await w.call("POST", "/v1/admin/users", w.tokens.admin, { name: "bob", disabled: true });
    const first = await w.db.client.execute("SELECT disabled_at FROM users WHERE name = 'bob'");
    w.clock.advance(60_000);
    const resaved = await w.call("POST", "/v1/admin/users", w.tokens.admin, { name: "bob", admin: true });
    expect(resaved.body).toMatchObject({ name: "bob", admin: true, disabled: true });
    await w.call("POST", "/v1/admin/users", w.tokens.admin, { name: "bob", admin: true, disabled: true });
    const again = await w.db.client.execute("SELECT disabled_at FROM users WHERE name = 'bob'");
    expect(again.rows[0]?.disabled_at).toBe(first.rows[0]?.disabled_at);
    expect((await w.call("GET", "/v1/me", w.tokens.bob)).status).toBe(403);
    // A new user can be created disabled.
    const made = await w.call("POST", "/v1/admin/users", w.tokens.admin, { name: "eve", disabled: true });
    expect(made.body).toMatchObject({ name: "eve", disabled: true });
  });

  it("refuse an admin token of a disabled admin, and an admin cannot disable themselves", async () => {
    const w = await createWorld();
    const self = await w.call<Problem>("POST", "/v1/admin/users", w.tokens.admin, {
      name: "root",
      admin: true,
      disabled: true,
    });
    expect(expectProblemShape(self, 422).field).toBe("body.disabled");
    expect((await w.call("GET", "/v1/admin/users", w.tokens.admin)).status).toBe(200);

    const other = await w.user("ops", true);
    await w.call("POST", "/v1/admin/users", w.tokens.admin, { name: "ops", admin: true, disabled: true });
    const res = await w.call<Problem>("GET", "/v1/admin/users", other);
    expect((expectProblemShape(res, 403) as unknown as Problem).detail).toBe("user ops is disabled");
  });

  it("refuse a `disabled` that is not a boolean, naming the field", async () => {
    const w = await createWorld();
    for (const disabled of ["yes", 1, null]) {
      const res = await w.call<Problem>("POST", "/v1/admin/users", w.tokens.admin, { name: "alice", disabled });
      expect(expectProblemShape(res, 422).field).toBe("body.disabled");
    }
    expect((await w.call("GET", "/v1/me", w.tokens.alice)).status).toBe(200);
  });
});
