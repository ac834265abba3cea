/**
 * From a person's verified ID token to a slurmgate user, against a real OpenID Provider
 * (oidc-provider on loopback): the user rule's claim and anchored pattern, slurmgate's own name
 * rule, users created on first sight with grants from their groups (once, even under a burst),
 * existing users left as they are, and disabled users refused behind a valid token.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseGatewayConfig } from "../../gateway/config.ts";
import { createUserOnFirstSight } from "../../gateway/store/first-sight.ts";
import { type OidcTestProvider, startOidcProvider } from "../helpers/oidc-provider.ts";
import { createWorld, expectProblemShape } from "./world.ts";

type Problem = { detail: string; field?: string };

let op: OidcTestProvider;

beforeAll(async () => {
  op = await startOidcProvider();
});
afterAll(() => op?.close());

const GRANTS = {
  "hpc-users": { alpha: ["cpu"] },
  "gpu-users": { alpha: ["gpu"], beta: ["*"] },
};

async function world(user: Record<string, unknown>) {
  const w = await createWorld({
    SLURMGATE_OIDC_ISSUERS: JSON.stringify([{ issuer: op.issuer, audience: "slurmgate", user }]),
  });
  const grantsOf = async (name: string) =>
    (await w.call<{ items: unknown[] }>("GET", `/v1/admin/grants?user=${name}`, w.tokens.admin)).body.items;
  const usersNamed = async (name: string) =>
    Number(
      (await w.db.client.execute({ sql: "SELECT count(*) AS n FROM users WHERE name = ?", args: [name] })).rows[0]?.n,
    );
  return { ...w, grantsOf, usersNamed };
}

function refused(res: { status: number; headers: Headers; body: unknown }, token: string): Problem {
  const problem = expectProblemShape(res, 403) as unknown as Problem;
  expect(problem.field).toBe("header.authorization");
  for (const part of token.split(".").filter((p) => p.length >= 16)) {
    expect(JSON.stringify(res.body)).not.toContain(part.slice(0, 16));
  }
  return problem;
}

describe("the user rule", () => {
  it("anchors its pattern: the whole claim must match, not a part of it", async () => {
    const w = await world({ claim: "preferred_username", pattern: "ali|bob" });
    await w.user("ali");
    for (const name of ["ali", "bob"]) {
      const me = await w.call("GET", "/v1/me", await op.issueIdToken({ preferred_username: name }));
      expect([name, me.status, me.body]).toEqual([name, 200, expect.objectContaining({ user: name, kind: "user" })]);
    }
    for (const name of ["alice", "xbob", "alix", "bobby"]) {
      const token = await op.issueIdToken({ preferred_username: name });
      expect(refused(await w.call("GET", "/v1/me", token), token).detail).toBe(
        `the user rule of ${op.issuer} (claim preferred_username, pattern ali|bob) refuses preferred_username="${name}"`,
      );
    }
  });

  it("refuses a name slurmgate cannot use even when the pattern admits it, and a missing claim", async () => {
    const w = await world({ claim: "email", pattern: ".+" });
    const token = await op.issueIdToken({ preferred_username: "alice" });
    expect(refused(await w.call("GET", "/v1/me", token), token).detail).toBe(
      `the user rule of ${op.issuer} (claim email) gives email="alice@example.org", not a slurmgate user name ([a-z_][a-z0-9_-]*, max 32)`,
    );
    const w2 = await world({ claim: "nickname" });
    const none = await op.issueIdToken({ preferred_username: "alice" });
    expect(refused(await w2.call("GET", "/v1/me", none), none).detail).toBe(
      `the user rule of ${op.issuer} (claim nickname) finds no such string claim in the token (nickname=(missing))`,
    );
    const listed = await op.issueIdToken({ preferred_username: ["alice"] as unknown as string });
    expect((await w.call("GET", "/v1/me", listed)).status).toBe(403);
  });

  it("never makes an IdP account an admin, even one named like an admin", async () => {
    const w = await world({ claim: "preferred_username" });
    const token = await op.issueIdToken({ preferred_username: "root" });
    expect((await w.call("GET", "/v1/me", token)).body).toMatchObject({ user: "root", kind: "user" });
    expect((await w.call("GET", "/v1/admin/users", token)).status).toBe(403);
  });

  it("stops start-up on a pattern that is not a regular expression, naming the variable", () => {
    const issuers = JSON.stringify([{ issuer: op.issuer, audience: "slurmgate", user: { pattern: "([a-z]" } }]);
    expect(() => parseGatewayConfig({ SLURMGATE_OIDC_ISSUERS: issuers })).toThrow(
      /^invalid SLURMGATE_OIDC_ISSUERS\.0\.user\.pattern: not a valid JavaScript regular expression/,
    );
  });
});

describe("users created on first sight", () => {
  const create = { grantsFromClaim: "groups", grants: GRANTS };

  it("get the union of their groups' grants, through a device-flow sign-in, and can submit at once", async () => {
    const w = await world({ claim: "preferred_username", create });
    op.setAccount("carol", { groups: ["hpc-users", "gpu-users", "unknown-group"] });
    const { id_token } = await op.deviceLogin("carol");
    expect((await w.call("GET", "/v1/me", id_token)).body).toMatchObject({ user: "carol", kind: "user" });
    expect(await w.grantsOf("carol")).toEqual([
      { user: "carol", cluster: "alpha", partitions: ["cpu", "gpu"] },
      { user: "carol", cluster: "beta", partitions: ["*"] },
    ]);
    const job = await w.call("POST", "/v1/jobs", id_token, { name: "x", command: ["true"], partition: "gpu" });
    expect(job.status).toBe(201);
    const users = await w.call<{ items: { name: string; admin: boolean }[] }>("GET", "/v1/admin/users", w.tokens.admin);
    expect(users.body.items.find((u) => u.name === "carol")).toMatchObject({ admin: false, disabled: false });
  });

  it("leave an existing user's grants alone, and do not restore grants an admin removed", async () => {
    const w = await world({ claim: "preferred_username", create });
    const before = await w.grantsOf("alice");
    const alice = await op.issueIdToken({ preferred_username: "alice", groups: ["gpu-users"] });
    expect((await w.call("GET", "/v1/me", alice)).status).toBe(200);
    expect(await w.grantsOf("alice")).toEqual(before);

    const dan = () => op.issueIdToken({ preferred_username: "dan", groups: ["gpu-users"] });
    expect((await w.call("GET", "/v1/me", await dan())).status).toBe(200);
    expect((await w.call("DELETE", "/v1/admin/grants/dan/beta", w.tokens.admin)).status).toBe(204);
    expect((await w.call("GET", "/v1/me", await dan())).status).toBe(200);
    expect(await w.grantsOf("dan")).toEqual([{ user: "dan", cluster: "alpha", partitions: ["gpu"] }]);
  });

  it("create one user and one set of grants when many first requests arrive at once", async () => {
    const w = await world({ claim: "preferred_username", create });
    // Keys fetched beforehand, so the burst reaches the user lookup together instead of one by one.
    expect((await w.call("GET", "/v1/me", await op.issueIdToken({ preferred_username: "alice" }))).status).toBe(200);
    // Distinct tokens, so no request is answered from another's cached sign-in.
    const tokens = await Promise.all(
      Array.from({ length: 12 }, () => op.issueIdToken({ preferred_username: "erin", groups: ["hpc-users"] })),
    );
    const answers = await Promise.all(tokens.map((t) => w.call("GET", "/v1/me", t)));
    expect(answers.map((a) => a.status)).toEqual(tokens.map(() => 200));
    expect(await w.usersNamed("erin")).toBe(1);
    expect(await w.grantsOf("erin")).toEqual([{ user: "erin", cluster: "alpha", partitions: ["cpu"] }]);
  });

  it("create one user when requests that all found none create it at the same moment", async () => {
    const w = await world({ claim: "preferred_username", create });
    // The window an HTTP burst may or may not hit, opened on purpose: every caller has already
    // looked the user up and found nothing.
    const grants = new Map([["alpha", ["cpu"]]]);
    const created = await Promise.all(
      Array.from({ length: 8 }, () => createUserOnFirstSight(w.db, "finn", grants, w.deps.now())),
    );
    expect(created.filter(Boolean)).toHaveLength(1);
    expect(await w.usersNamed("finn")).toBe(1);
    expect(await w.grantsOf("finn")).toEqual([{ user: "finn", cluster: "alpha", partitions: ["cpu"] }]);
    // An admin's later change survives another creation attempt.
    await w.call("POST", "/v1/admin/grants", w.tokens.admin, { user: "finn", cluster: "alpha", partitions: ["short"] });
    expect(
      await createUserOnFirstSight(
        w.db,
        "finn",
        new Map([
          ["alpha", ["*"]],
          ["beta", ["*"]],
        ]),
        w.deps.now(),
      ),
    ).toBe(false);
    expect(await w.grantsOf("finn")).toEqual([{ user: "finn", cluster: "alpha", partitions: ["short"] }]);
  });

  it("take nothing from hostile or odd group values", async () => {
    const w = await world({ claim: "preferred_username", create });
    for (const [name, groups] of [
      ["fay", ["__proto__", "constructor", "toString", "hasOwnProperty"]],
      ["gus", 42],
      ["hal", "hpc-users"],
      ["ida", [["hpc-users"], { "hpc-users": true }, null]],
    ] as const) {
      const token = await op.issueIdToken({ preferred_username: name, groups: groups as unknown as string[] });
      expect([name, (await w.call("GET", "/v1/me", token)).status]).toEqual([name, 200]);
    }
    expect(await w.grantsOf("fay")).toEqual([]);
    expect(await w.grantsOf("gus")).toEqual([]);
    expect(await w.grantsOf("hal")).toEqual([{ user: "hal", cluster: "alpha", partitions: ["cpu"] }]);
    expect(await w.grantsOf("ida")).toEqual([]);
  });

  it("are not created when the rule does not say so", async () => {
    const w = await world({ claim: "preferred_username" });
    const token = await op.issueIdToken({ preferred_username: "jo", groups: ["hpc-users"] });
    expect(refused(await w.call("GET", "/v1/me", token), token).detail).toBe(
      `no slurmgate user jo, and the user rule of ${op.issuer} does not create users`,
    );
    expect(await w.usersNamed("jo")).toBe(0);
  });
});

describe("a disabled user behind a valid ID token", () => {
  it("is refused, is not re-created or re-granted, and works again once re-enabled", async () => {
    const w = await world({ claim: "preferred_username", create: { grants: GRANTS } });
    const token = await op.issueIdToken({ preferred_username: "alice", groups: ["gpu-users"] });
    expect((await w.call("GET", "/v1/jobs", token)).status).toBe(200);
    const before = await w.grantsOf("alice");

    await w.call("POST", "/v1/admin/users", w.tokens.admin, { name: "alice", disabled: true });
    for (const path of ["/v1/me", "/v1/jobs", "/v1/clusters"]) {
      expect(refused(await w.call("GET", path, token), token).detail).toBe("user alice is disabled");
    }
    const fresh = await op.issueIdToken({ preferred_username: "alice", groups: ["gpu-users"] });
    expect(refused(await w.call("GET", "/v1/me", fresh), fresh).detail).toBe("user alice is disabled");
    expect(await w.usersNamed("alice")).toBe(1);
    expect(await w.grantsOf("alice")).toEqual(before);

    await w.call("POST", "/v1/admin/users", w.tokens.admin, { name: "alice", disabled: false });
    expect((await w.call("GET", "/v1/jobs", token)).status).toBe(200);
  });
});
