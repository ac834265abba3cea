/**
 * Keyless CI and the claims mapping on the Worker in real workerd, over libSQL HTTP: a trust
 * policy admits its repository as its user with a submit-only scope, refuses the rest, a user is
 * created on first sight (the write batch over Hrana), and a disabled user is refused.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CiIssuer, GITHUB_ISSUER, startCiIssuer } from "../helpers/ci-issuer.ts";
import { startWorkerTarget, type WorkerTarget } from "../helpers/worker-target.ts";

describe("keyless CI at the Worker in workerd", () => {
  let gh: CiIssuer;
  let people: CiIssuer;
  let target: WorkerTarget;

  const call = async (method: string, path: string, token: string, body?: unknown) => {
    const res = await fetch(`${target.baseUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body ? { "content-type": "application/json" } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined, text };
  };

  beforeAll(async () => {
    [gh, people] = await Promise.all([startCiIssuer("github"), startCiIssuer("gitlab", { issuer: "loopback" })]);
    target = await startWorkerTarget({
      vars: {
        SLURMGATE_OIDC_ISSUERS: JSON.stringify([
          gh.issuerConfig({
            trust: [
              {
                match: { repository: "org/vision", ref: "refs/heads/main" },
                actAs: "ci-vision",
                scope: { submitOnly: true, labels: { sha: "{sha}" } },
              },
            ],
          }),
          people.issuerConfig({
            user: { claim: "user_login", create: { grantsFromClaim: "groups", grants: { hpc: { alpha: ["cpu"] } } } },
          }),
        ]),
      },
    });
    for (const [path, body] of [
      ["/v1/admin/users", { name: "ci-vision" }],
      ["/v1/admin/clusters", { name: "alpha", sharedRoots: ["/shared"] }],
      ["/v1/admin/grants", { user: "ci-vision", cluster: "alpha" }],
    ] as const) {
      const res = await call("POST", path, target.adminToken, body);
      expect(res.status, res.text).toBe(200);
    }
  });
  afterAll(async () => {
    await target?.close();
    await Promise.all([gh?.close(), people?.close()]);
  });

  it("admits the matching repository as its user, submit-only, and refuses another", async () => {
    const token = await gh.github({ repository: "org/vision", ref: "refs/heads/main" });
    const me = await call("GET", "/v1/me", token);
    expect(me.status, `${me.text}\n${target.output()}`).toBe(200);
    expect(me.body).toMatchObject({ user: "ci-vision", via: { kind: "workload", issuer: GITHUB_ISSUER, policy: 0 } });
    const agentToken = await call("POST", "/v1/agent-tokens", token, { cluster: "alpha" });
    expect(agentToken.status).toBe(403);
    expect(agentToken.body.detail).toContain("is submit-only");

    const evil = await gh.github({ repository: "org/vision-evil", ref: "refs/heads/main" });
    const refused = await call("GET", "/v1/me", evil);
    expect(refused.status).toBe(403);
    expect(refused.body.detail).toBe(
      `no trust policy of ${GITHUB_ISSUER} admits this token (compared repository="org/vision-evil", ref="refs/heads/main")`,
    );
  });

  it("creates a person on first sight with their group's grants, and refuses them once disabled", async () => {
    const token = await people.gitlab({ project_path: "group/x", ref: "main", user_login: "nora", groups: ["hpc"] });
    expect((await call("GET", "/v1/me", token)).body).toMatchObject({ user: "nora", via: { kind: "oidc" } });
    const grants = await call("GET", "/v1/admin/grants?user=nora", target.adminToken);
    expect(grants.body.items).toEqual([{ user: "nora", cluster: "alpha", partitions: ["cpu"] }]);

    await call("POST", "/v1/admin/users", target.adminToken, { name: "nora", disabled: true });
    const refused = await call("GET", "/v1/me", token);
    expect([refused.status, refused.body.detail]).toEqual([403, "user nora is disabled"]);
  });
});
