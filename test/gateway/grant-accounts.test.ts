/**
 * Grants that name the Slurm accounts a user may charge: the admin route validates them, routing
 * refuses other accounts naming what is on offer, and a job without an account gets the default.
 */
import { describe, expect, it } from "vitest";
import { forgetRouting } from "../../gateway/db/caches.ts";
import { createWorld, expectProblemShape, spec } from "./world.ts";

type GrantBody = { user: string; cluster: string; partitions: string[]; accounts?: string[]; defaultAccount?: string };

async function withAccounts() {
  const w = await createWorld();
  const t = w.tokens.admin;
  const res = await w.call<GrantBody>("POST", "/v1/admin/grants", t, {
    user: "alice",
    cluster: "alpha",
    accounts: ["lab-a", "lab-b"],
    defaultAccount: "lab-a",
  });
  expect(res.status).toBe(200);
  // Alice may use only alpha, so every refusal is alpha's.
  expect((await w.call("DELETE", "/v1/admin/grants/alice/beta", t)).status).toBe(204);
  return w;
}

async function leasedAccount(w: Awaited<ReturnType<typeof createWorld>>, jobId: string) {
  const leased = await w.call<{ leases: { jobId: string; spec: { account?: string } }[] }>(
    "POST",
    "/v1/agent/lease",
    w.tokens.alphaAgent,
    { agentId: "agent-1", max: 10, wait: 0 },
  );
  const lease = leased.body.leases.find((l) => l.jobId === jobId);
  expect(lease).toBeDefined();
  return lease!.spec.account;
}

describe("grant accounts", () => {
  it("the admin route stores accounts and a default, and lists them back", async () => {
    const w = await withAccounts();
    const listed = await w.call<{ items: GrantBody[] }>("GET", "/v1/admin/grants?user=alice", w.tokens.admin);
    expect(listed.body.items).toEqual([
      { user: "alice", cluster: "alpha", partitions: ["*"], accounts: ["lab-a", "lab-b"], defaultAccount: "lab-a" },
    ]);
    // Re-granting without accounts returns to "whatever Slurm allows".
    await w.call("POST", "/v1/admin/grants", w.tokens.admin, { user: "alice", cluster: "alpha" });
    const again = await w.call<{ items: GrantBody[] }>("GET", "/v1/admin/grants?user=alice", w.tokens.admin);
    expect(again.body.items).toEqual([{ user: "alice", cluster: "alpha", partitions: ["*"] }]);
  });

  it("the admin route refuses hostile and inconsistent accounts, naming the field", async () => {
    const w = await createWorld();
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ accounts: ["lab-a"], defaultAccount: "lab-z" }, /^body\.defaultAccount$/],
      [{ defaultAccount: "lab-a" }, /^body\.defaultAccount$/],
      [{ accounts: [] }, /^body\.accounts$/],
      [{ accounts: ["lab;rm -rf /"] }, /^body\.accounts(\.0)?$/],
      [{ accounts: ["--uid=0"] }, /^body\.accounts(\.0)?$/],
      [{ accounts: ["a\nb"] }, /^body\.accounts(\.0)?$/],
      [{ accounts: "lab-a" }, /^body\.accounts$/],
      [{ accounts: Array.from({ length: 65 }, (_, i) => `a${i}`) }, /^body\.accounts$/],
      [{ accounts: ["lab-a"], defaultAccount: "lab a" }, /^body\.defaultAccount$/],
    ];
    for (const [extra, field] of cases) {
      const res = await w.call("POST", "/v1/admin/grants", w.tokens.admin, {
        user: "alice",
        cluster: "alpha",
        ...extra,
      });
      expect(expectProblemShape(res, 422).field, JSON.stringify(extra)).toMatch(field);
    }
    // Nothing was stored: alice's grant is as the world made it.
    const listed = await w.call<{ items: GrantBody[] }>("GET", "/v1/admin/grants?user=alice", w.tokens.admin);
    expect(listed.body.items.find((g) => g.cluster === "alpha")).toEqual({
      user: "alice",
      cluster: "alpha",
      partitions: ["*"],
    });
  });

  it("refuses an account the grant does not offer, naming body.account and the accounts on offer", async () => {
    const w = await withAccounts();
    for (const extra of [{}, { cluster: "alpha" }]) {
      const res = await w.call("POST", "/v1/jobs", w.tokens.alice, spec({ account: "lab-c", ...extra }));
      const problem = expectProblemShape(res, 422) as unknown as { code: string; field: string; detail: string };
      expect(problem).toMatchObject({ code: "unsatisfiable", field: "body.account" });
      expect(problem.detail).toMatch(/lab-c/);
      expect(problem.detail).toMatch(/on offer: lab-a, lab-b/);
    }
    // Case matters to the grant as written: "LAB-A" is not on offer.
    const upper = await w.call("POST", "/v1/jobs", w.tokens.alice, spec({ account: "LAB-A" }));
    expect(expectProblemShape(upper, 422).field).toBe("body.account");
    const listed = await w.call<{ items: unknown[] }>("GET", "/v1/jobs", w.tokens.alice);
    expect(listed.body.items).toEqual([]);
  });

  it("writes the grant's default into a job that names no account, and keeps an offered one", async () => {
    const w = await withAccounts();
    const plain = await w.submit(w.tokens.alice);
    expect(await leasedAccount(w, plain.id)).toBe("lab-a");
    const shown = await w.call<{ spec: { account?: string } }>("GET", `/v1/jobs/${plain.id}`, w.tokens.alice);
    expect(shown.body.spec.account).toBe("lab-a");
    const chosen = await w.submit(w.tokens.alice, { account: "lab-b" });
    expect(await leasedAccount(w, chosen.id)).toBe("lab-b");
  });

  it("a grant without accounts keeps today's behaviour: any account, none filled in", async () => {
    const w = await withAccounts();
    const any = await w.submit(w.tokens.bob, { account: "whatever", cluster: "alpha" });
    expect(await leasedAccount(w, any.id)).toBe("whatever");
    const none = await w.submit(w.tokens.bob, { cluster: "alpha" });
    expect(await leasedAccount(w, none.id)).toBeUndefined();
  });

  it("a grant with accounts but no default leaves a job without account to Slurm", async () => {
    const w = await createWorld();
    await w.call("POST", "/v1/admin/grants", w.tokens.admin, { user: "alice", cluster: "alpha", accounts: ["lab-a"] });
    const job = await w.submit(w.tokens.alice, { cluster: "alpha" });
    expect(await leasedAccount(w, job.id)).toBeUndefined();
  });

  it("a grant row whose accounts were corrupted in the database grants nothing, and never answers 500", async () => {
    for (const value of [
      "{accounts: [",
      "null-ish",
      '"lab-a"',
      "[1,2]",
      '{"accounts":["lab;rm -rf /"]}',
      '{"accounts":[]}',
      '{"accounts":["lab-a"],"defaultAccount":"lab-z"}',
      '{"accounts":["lab-a"],"extra":1}',
    ]) {
      const w = await withAccounts();
      await w.db.client.execute({
        sql: "UPDATE grants SET accounts = ? WHERE user = 'alice' AND cluster = 'alpha'",
        args: [value],
      });
      // Written past the store, so the routing cache is told here.
      forgetRouting(w.db.caches);
      const listed = await w.call<{ items: GrantBody[] }>("GET", "/v1/admin/grants?user=alice", w.tokens.admin);
      expect(listed.status, value).toBe(200);
      expect(listed.body.items, value).toEqual([]);
      const res = await w.call("POST", "/v1/jobs", w.tokens.alice, spec({ account: "lab-a" }));
      expect(expectProblemShape(res, 403).field, value).toBe("cluster");
    }
  });
});
