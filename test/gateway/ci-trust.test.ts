/**
 * Keyless CI: GitHub- and GitLab-shaped ID tokens, signed by a real issuer on loopback
 * (test/helpers/ci-issuer.ts), through the real app. A trust policy admits exactly the repository
 * and ref it names, as the user it names, with the scope it gives; every near miss is a 403 that
 * says which claims were compared and never repeats the token.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildOpenApiDocument } from "../../gateway/openapi.ts";
import { type CiIssuer, GITHUB_ISSUER, GITLAB_ISSUER, startCiIssuer } from "../helpers/ci-issuer.ts";
import { createWorld, expectProblemShape, type JobBody } from "./world.ts";

type Problem = { detail: string; field?: string; code: string; status: number };

let gh: CiIssuer;
let gl: CiIssuer;
let mixed: CiIssuer;

const SHA = "0123456789abcdef0123456789abcdef01234567";

beforeAll(async () => {
  [gh, gl, mixed] = await Promise.all([
    startCiIssuer("github"),
    startCiIssuer("gitlab"),
    startCiIssuer("github", { issuer: "loopback" }),
  ]);
});
afterAll(async () => {
  await Promise.all([gh?.close(), gl?.close(), mixed?.close()]);
});

function issuers() {
  return [
    gh.issuerConfig({
      trust: [
        {
          match: { repository: "org/vision", ref: "refs/heads/main" },
          actAs: "ci-vision",
          scope: {
            submitOnly: true,
            clusters: ["alpha"],
            labels: { repo: "{repository}", sha: "{sha}", run: "{repository}@{run_id}" },
          },
        },
        { match: { repository: "org/tools", ref: ["refs/heads/main", "refs/tags/v*"] }, actAs: "ci-tools" },
        { match: { repository: "org/ghost" }, actAs: "nobody" },
      ],
    }),
    gl.issuerConfig({
      trust: [
        {
          match: { project_path: "group/vision", ref_path: "refs/heads/main", ref_protected: "true" },
          actAs: "ci-vision",
          scope: { submitOnly: true, labels: { project: "{project_path}", pipeline: "{pipeline_id}" } },
        },
      ],
    }),
    // One issuer with both: workloads by policy first, then people by the user rule.
    mixed.issuerConfig({
      trust: [{ match: { repository: "org/vision" }, actAs: "ci-vision", scope: { submitOnly: true } }],
      user: { claim: "actor", pattern: "[a-z]+" },
    }),
  ];
}

async function world() {
  const w = await createWorld({ SLURMGATE_OIDC_ISSUERS: JSON.stringify(issuers()) });
  for (const name of ["ci-vision", "ci-tools"]) {
    await w.user(name);
    await w.grant(name, "alpha");
    await w.grant(name, "beta");
  }
  return w;
}

/** A 403 problem whose text holds no part of the token. */
function refused(res: { status: number; headers: Headers; body: unknown }, token: string, status = 403): Problem {
  const problem = expectProblemShape(res, status) as unknown as Problem;
  expect(problem.field).toBe("header.authorization");
  const text = JSON.stringify(res.body);
  for (const part of token.split(".").filter((p) => p.length >= 16)) {
    expect(text).not.toContain(part.slice(0, 16));
  }
  return problem;
}

describe("a GitHub Actions trust policy", () => {
  it("admits the matching repository and ref as its user, with forced labels and only its cluster", async () => {
    const w = await world();
    const token = await gh.github({ repository: "org/vision", ref: "refs/heads/main", sha: SHA, run_id: "991" });
    const me = await w.call("GET", "/v1/me", token);
    expect(me.status).toBe(200);
    expect(me.body).toMatchObject({ kind: "user", user: "ci-vision" });

    const job = await w.call<JobBody & { labels: Record<string, string> }>("POST", "/v1/jobs", token, {
      name: "ci",
      command: ["make", "test"],
      labels: { suite: "unit" },
    });
    expect(job.status).toBe(201);
    expect(job.body.cluster).toBe("alpha");
    expect(job.body.labels).toEqual({ suite: "unit", repo: "org/vision", sha: SHA, run: "org/vision@991" });
    // Stored, not only echoed: the owner finds it by the forced label.
    const found = await w.call<{ items: { id: string }[] }>("GET", `/v1/jobs?label=sha=${SHA}`, token);
    expect(found.body.items.map((j) => j.id)).toEqual([job.body.id]);
    const stored = await w.call<{ spec: { labels: Record<string, string> } }>("GET", `/v1/jobs/${job.body.id}`, token);
    expect(stored.body.spec.labels.repo).toBe("org/vision");
  });

  it.each([
    ["another repository", { repository: "org/other", ref: "refs/heads/main" }],
    ["a repository the policy's is a prefix of", { repository: "org/vision-evil", ref: "refs/heads/main" }],
    ["a prefix of the policy's repository", { repository: "org/visio", ref: "refs/heads/main" }],
    ["another owner with the same name", { repository: "evil/vision", ref: "refs/heads/main" }],
    ["another branch", { repository: "org/vision", ref: "refs/heads/dev" }],
    ["a branch the policy's is a prefix of", { repository: "org/vision", ref: "refs/heads/main-x" }],
    ["a path under the policy's branch", { repository: "org/vision", ref: "refs/heads/main/x" }],
    ["a tag named like the branch", { repository: "org/vision", ref: "refs/tags/main" }],
    ["a pull request ref", { repository: "org/vision", ref: "refs/pull/7/merge" }],
  ])("refuses %s, saying which claims it compared", async (_, claims) => {
    const w = await world();
    const token = await gh.github(claims);
    const problem = refused(await w.call("POST", "/v1/jobs", token, { name: "x", command: ["true"] }), token);
    expect(problem.detail).toBe(
      `no trust policy of ${GITHUB_ISSUER} admits this token (compared repository=${JSON.stringify(claims.repository)}, ref=${JSON.stringify(claims.ref)})`,
    );
    expect(await w.db.client.execute("SELECT id FROM jobs WHERE owner = 'ci-vision'")).toMatchObject({ rows: [] });
  });

  it("refuses tokens lacking a matched claim, or carrying it as another type", async () => {
    const w = await world();
    for (const claims of [
      { sub: "repo:org/vision:ref:refs/heads/main", repository: "org/vision" },
      { sub: "repo:org/vision:ref:refs/heads/main", ref: "refs/heads/main" },
      { sub: "x", repository: "org/vision", ref: 7 },
      { sub: "x", repository: { name: "org/vision" }, ref: "refs/heads/main" },
    ]) {
      const token = await gh.sign(claims);
      const problem = refused(await w.call("GET", "/v1/me", token), token);
      expect(problem.detail).toMatch(/^no trust policy of https:\/\/token\.actions\.githubusercontent\.com admits/);
    }
    const noRef = await gh.sign({ sub: "x", repository: "org/vision" });
    expect(refused(await w.call("GET", "/v1/me", noRef), noRef).detail).toContain("ref=(missing)");
  });

  it("shows hostile claim values quoted and cut short, never raw", async () => {
    const w = await world();
    const repository = `org/${"x".repeat(5000)}\n\u001b[31mred\r`;
    const token = await gh.github({ repository, ref: "refs/heads/main\u0000" });
    const problem = refused(await w.call("GET", "/v1/me", token), token);
    expect(problem.detail.length).toBeLessThan(400);
    expect([...problem.detail].some((ch) => ch.charCodeAt(0) < 0x20)).toBe(false);
    expect(problem.detail).toContain('ref="refs/heads/main\\u0000"');
    expect(problem.detail).toContain(`repository="org/${"x".repeat(60)}`);
  });

  it("acts by the first policy that matches when several do", async () => {
    const config = issuers() as { trust?: unknown[] }[];
    config[0]!.trust = [{ match: { repository: "org/*" }, actAs: "ci-tools" }, ...(config[0]!.trust ?? [])];
    const w = await createWorld({ SLURMGATE_OIDC_ISSUERS: JSON.stringify(config) });
    await w.user("ci-tools");
    const token = await gh.github({ repository: "org/vision", ref: "refs/heads/main" });
    expect((await w.call("GET", "/v1/me", token)).body).toMatchObject({ user: "ci-tools" });
  });

  it("refuses a matching token whose forced label needs a claim it lacks", async () => {
    const w = await world();
    const token = await gh.github({ repository: "org/vision", ref: "refs/heads/main", sha: undefined });
    const problem = refused(await w.call("GET", "/v1/me", token), token);
    expect(problem.detail).toContain(`trust policy 0 of ${GITHUB_ISSUER} forces label sha={sha}`);
    expect(problem.detail).toContain("sha=(missing)");
  });

  it("refuses a token for another audience, expired, or signed by another key, as unauthenticated", async () => {
    const w = await world();
    const other = await gh.github({ repository: "org/vision", ref: "refs/heads/main", aud: "sigstore" });
    expect(refused(await w.call("GET", "/v1/me", other), other, 401).detail).toMatch(/audience/);
    const expired = await gh.github({ repository: "org/vision", ref: "refs/heads/main", expiresInSeconds: -3600 });
    expect(refused(await w.call("GET", "/v1/me", expired), expired, 401).detail).toMatch(/expired/);
    // The GitLab issuer's key signing a token that claims GitHub's issuer.
    const [header, payload] = (await gh.github({ repository: "org/vision", ref: "refs/heads/main" })).split(".");
    const [, , foreignSig] = (await gl.gitlab({ project_path: "group/vision", ref: "main" })).split(".");
    const forged = `${header}.${payload}.${foreignSig}`;
    expect(refused(await w.call("GET", "/v1/me", forged), forged, 401).detail).toMatch(/signature/);
  });

  it("admits one-of and prefix values, and nothing beyond the prefix's start", async () => {
    const w = await world();
    for (const ref of ["refs/heads/main", "refs/tags/v1.2.3", "refs/tags/v"]) {
      const me = await w.call("GET", "/v1/me", await gh.github({ repository: "org/tools", ref }));
      expect([ref, me.status, me.body]).toEqual([ref, 200, expect.objectContaining({ user: "ci-tools" })]);
    }
    for (const ref of ["refs/tags/x1", "refs/heads/v1", "refs/tags/V1", "xrefs/tags/v1"]) {
      const token = await gh.github({ repository: "org/tools", ref });
      expect([ref, (await w.call("GET", "/v1/me", token)).status]).toEqual([ref, 403]);
    }
  });

  it("refuses a policy acting as a user that does not exist, or is disabled, until re-enabled", async () => {
    const w = await world();
    const ghost = await gh.github({ repository: "org/ghost", ref: "refs/heads/main" });
    expect(refused(await w.call("GET", "/v1/me", ghost), ghost).detail).toBe(
      `trust policy 2 of ${GITHUB_ISSUER} acts as user nobody, which does not exist`,
    );

    const token = await gh.github({ repository: "org/vision", ref: "refs/heads/main" });
    expect((await w.call("GET", "/v1/me", token)).status).toBe(200);
    await w.call("POST", "/v1/admin/users", w.tokens.admin, { name: "ci-vision", disabled: true });
    expect(refused(await w.call("GET", "/v1/me", token), token).detail).toBe("user ci-vision is disabled");
    await w.call("POST", "/v1/admin/users", w.tokens.admin, { name: "ci-vision", disabled: false });
    expect((await w.call("GET", "/v1/me", token)).status).toBe(200);
  });
});

describe("a workload's scope", () => {
  const SUBMIT_ONLY = [
    "submitSweep",
    "listSweeps",
    "getSweep",
    "sweepResults",
    "cancelSweep",
    "feed",
    "submitJob",
    "preflightJob",
    "listJobs",
    "getJob",
    "jobEvents",
    "jobTasks",
    "jobLogs",
    "cancelJob",
    "whoAmI",
    "listClusters",
  ];

  it("lets a submit-only workload reach only its jobs, /v1/me and /v1/clusters: every other route is 403", async () => {
    const doc = buildOpenApiDocument();
    const w = await world();
    const token = await gh.github({ repository: "org/vision", ref: "refs/heads/main" });
    const job = await w.submit(token);
    const seen: string[] = [];
    for (const [path, item] of Object.entries(doc.paths ?? {})) {
      for (const [method, op] of Object.entries(item as Record<string, { operationId?: string }>)) {
        if (!["get", "post", "put", "delete", "patch"].includes(method)) {
          continue;
        }
        const url = path.replace("{id}", job.id).replace("{user}", "ci-vision").replace("{cluster}", "alpha");
        const body = method === "post" ? { name: "x", command: ["true"] } : undefined;
        const res = await w.call<Problem>(method.toUpperCase(), url, token, body);
        const allowed = SUBMIT_ONLY.includes(op.operationId ?? "");
        seen.push(op.operationId ?? path);
        if (allowed) {
          expect([op.operationId, res.status]).toEqual([op.operationId, expect.any(Number)]);
          expect(res.status === 403 && res.body.detail.includes("submit-only")).toBe(false);
        } else {
          const problem = expectProblemShape(res, 403) as unknown as Problem;
          expect(problem.detail).toBe(
            `trust policy 0 of ${GITHUB_ISSUER} is submit-only: it may submit, read, follow and cancel its own jobs and sweeps and read /v1/me and /v1/clusters, not ${method.toUpperCase()} ${url}`,
          );
        }
      }
    }
    expect(seen).toEqual(expect.arrayContaining(SUBMIT_ONLY));
    expect(seen.length).toBeGreaterThan(SUBMIT_ONLY.length);
    // What it may do, it can: read, follow and cancel its own job.
    for (const suffix of ["", "/events", "/logs", "/tasks"]) {
      expect((await w.call("GET", `/v1/jobs/${job.id}${suffix}`, token)).status).toBe(200);
    }
    expect((await w.call("POST", `/v1/jobs/${job.id}/cancel`, token)).status).toBe(202);
    // Path tricks do not widen the list.
    for (const path of [
      "/v1/jobs/../agent-tokens",
      "/v1/agent-tokens/",
      "/v1//agent-tokens",
      "/v1/me/../admin/users",
    ]) {
      expect((await w.call("POST", path, token, { cluster: "alpha" })).status).not.toBe(201);
    }
    expect(
      await w.db.client.execute("SELECT id FROM tokens WHERE user = 'ci-vision' AND kind = 'agent'"),
    ).toMatchObject({ rows: [] });
  });

  it("keeps a workload on its clusters: a job pinned elsewhere is refused naming them, an unpinned one never goes elsewhere", async () => {
    const w = await world();
    const token = await gh.github({ repository: "org/vision", ref: "refs/heads/main" });
    const pinned = await w.call<Problem>("POST", "/v1/jobs", token, { name: "x", command: ["true"], cluster: "beta" });
    const problem = expectProblemShape(pinned, 403) as unknown as Problem;
    expect(problem.field).toBe("body.cluster");
    expect(problem.detail).toBe(`trust policy 0 of ${GITHUB_ISSUER} may submit only to alpha, not to beta`);
    // Only beta has H100s: without the scope this job would route there.
    const h100 = { name: "x", command: ["true"], partition: "gpu", resources: { gpus: { count: 1, type: "h100" } } };
    expect((await w.call("POST", "/v1/jobs", w.tokens.alice, h100)).body).toMatchObject({ cluster: "beta" });
    const scoped = await w.call<Problem>("POST", "/v1/jobs", token, h100);
    expect(scoped.status).toBe(422);
    expect(scoped.body.detail).not.toContain("beta");
    expect((await w.call("POST", "/v1/jobs", token, { name: "x", command: ["true"] })).body).toMatchObject({
      cluster: "alpha",
    });
    expect((await w.db.client.execute("SELECT DISTINCT cluster FROM jobs WHERE owner = 'ci-vision'")).rows).toEqual([
      expect.objectContaining({ cluster: "alpha" }),
    ]);
    // What it is shown is what it may use; its user, signing in otherwise, still sees both.
    const listed = await w.call<{ items: { name: string }[] }>("GET", "/v1/clusters", token);
    expect(listed.body.items.map((c) => c.name)).toEqual(["alpha"]);
    const own = await w.call<{ items: { name: string }[] }>("GET", "/v1/clusters", await w.user("ci-vision"));
    expect(own.body.items.map((c) => c.name)).toEqual(["alpha", "beta"]);
  });

  it("a sweep from a workload: every element carries the forced labels and stays on its clusters", async () => {
    const w = await world();
    const token = await gh.github({ repository: "org/vision", ref: "refs/heads/main", sha: SHA, run_id: "7" });
    const sweep = await w.call<{ id: string; jobIds: string[] }>("POST", "/v1/sweeps", token, {
      base: { name: "grid", command: ["train", "--lr", "{LR}"] },
      grid: { LR: [0.1, 0.01] },
    });
    expect(sweep.status).toBe(201);
    for (const id of sweep.body.jobIds) {
      const job = await w.call<{ cluster: string; labels: Record<string, string> }>("GET", `/v1/jobs/${id}`, token);
      expect(job.body.cluster).toBe("alpha");
      expect(job.body.labels).toMatchObject({ repo: "org/vision", sha: SHA, run: "org/vision@7" });
    }
    expect((await w.call("GET", `/v1/sweeps/${sweep.body.id}`, token)).status).toBe(200);
    // One element pinned outside the scope: the whole sweep is refused, naming that element.
    const pinned = await w.call<Problem>("POST", "/v1/sweeps", token, {
      specs: [
        { name: "a", command: ["true"] },
        { name: "b", command: ["true"], cluster: "beta" },
      ],
    });
    expect(pinned.status).toBe(403);
    expect(JSON.stringify(pinned.body)).toContain("specs.1");
    expect(JSON.stringify(pinned.body)).toContain("may submit only to alpha");
    expect((await w.call("POST", `/v1/sweeps/${sweep.body.id}/cancel`, token)).status).toBe(202);
  });

  it("refuses a caller label that contradicts a forced one, and accepts the same value", async () => {
    const w = await world();
    const token = await gh.github({ repository: "org/vision", ref: "refs/heads/main", sha: SHA });
    const spoofed = await w.call<Problem>("POST", "/v1/jobs", token, {
      name: "x",
      command: ["true"],
      labels: { repo: "org/other" },
    });
    const problem = expectProblemShape(spoofed, 422) as unknown as Problem;
    expect(problem.field).toBe("body.labels.repo");
    expect(problem.detail).toContain("label repo is set by trust policy 0 of");
    const same = await w.call("POST", "/v1/jobs", token, { name: "x", command: ["true"], labels: { sha: SHA } });
    expect(same.status).toBe(201);
    // 30 own labels + 3 forced ones is over the limit of 32: refused, not truncated.
    const many = Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`k${i}`, "v"]));
    const full = await w.call<Problem>("POST", "/v1/jobs", token, { name: "x", command: ["true"], labels: many });
    expect(expectProblemShape(full, 422).field).toBe("body.labels");
  });

  it("keeps an idempotent retry from replaying a job another commit submitted", async () => {
    const w = await world();
    const first = await gh.github({ repository: "org/vision", ref: "refs/heads/main", sha: SHA });
    const second = await gh.github({ repository: "org/vision", ref: "refs/heads/main", sha: "f".repeat(40) });
    const body = { name: "x", command: ["true"] };
    const key = { "idempotency-key": "build-1" };
    expect((await w.call("POST", "/v1/jobs", first, body, key)).status).toBe(201);
    expect((await w.call("POST", "/v1/jobs", first, body, key)).status).toBe(200);
    expect((await w.call("POST", "/v1/jobs", second, body, key)).status).toBe(409);
  });

  it("leaves a policy without a scope as capable as its user", async () => {
    const w = await world();
    const token = await gh.github({ repository: "org/tools", ref: "refs/heads/main" });
    expect((await w.call("POST", "/v1/agent-tokens", token, { cluster: "beta" })).status).toBe(201);
    const job = await w.call("POST", "/v1/jobs", token, { name: "x", command: ["true"], cluster: "beta" });
    expect(job.body).toMatchObject({ cluster: "beta", labels: {} });
  });
});

describe("a GitLab CI trust policy", () => {
  it("admits the protected main branch of the project, with its labels", async () => {
    const w = await world();
    const token = await gl.gitlab({ project_path: "group/vision", ref: "main" });
    const job = await w.call<{ labels: Record<string, string>; owner: string }>("POST", "/v1/jobs", token, {
      name: "ci",
      command: ["true"],
    });
    expect(job.status).toBe(201);
    expect(job.body.owner).toBe("ci-vision");
    expect(job.body.labels).toEqual({ project: "group/vision", pipeline: "574" });
  });

  it.each([
    ["another project", { project_path: "group/other", ref: "main" }],
    ["a project the policy's is a prefix of", { project_path: "group/vision-evil", ref: "main" }],
    ["a subgroup project", { project_path: "group/vision/sub", ref: "main" }],
    ["another branch", { project_path: "group/vision", ref: "main-x" }],
    ["a tag named main", { project_path: "group/vision", ref: "main", ref_type: "tag" as const }],
    ["an unprotected ref", { project_path: "group/vision", ref: "main", ref_protected: "false" }],
    ["a missing ref_path", { project_path: "group/vision", ref: "main", ref_path: undefined }],
  ])("refuses %s", async (_, claims) => {
    const w = await world();
    const token = await gl.gitlab(claims);
    const problem = refused(await w.call("GET", "/v1/me", token), token);
    expect(problem.detail).toMatch(
      new RegExp(
        `^no trust policy of ${GITLAB_ISSUER.replaceAll(".", "\\.")} admits this token \\(compared project_path=`,
      ),
    );
  });
});

describe("an issuer with trust policies and a user rule", () => {
  it("tries the policies first, then maps a person by the user rule", async () => {
    const w = await world();
    const workload = await mixed.github({ repository: "org/vision", ref: "refs/heads/dev", actor: "alice" });
    expect((await w.call("GET", "/v1/me", workload)).body).toMatchObject({ user: "ci-vision" });
    expect((await w.call("POST", "/v1/agent-tokens", workload, { cluster: "alpha" })).status).toBe(403);

    const person = await mixed.github({ repository: "org/other", ref: "refs/heads/dev", actor: "alice" });
    expect((await w.call("GET", "/v1/me", person)).body).toMatchObject({ user: "alice" });
    expect((await w.call("POST", "/v1/agent-tokens", person, { cluster: "alpha" })).status).toBe(201);

    const stranger = await mixed.github({ repository: "org/other", ref: "refs/heads/dev", actor: "Mallory!" });
    expect(refused(await w.call("GET", "/v1/me", stranger), stranger).detail).toBe(
      `the user rule of ${mixed.issuer} (claim actor, pattern [a-z]+) refuses actor="Mallory!"`,
    );
  });
});
