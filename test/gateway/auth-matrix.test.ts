/**
 * The authorisation matrix, generated from the OpenAPI document: every operation × every kind of
 * caller → one exact status. A route added without a recipe here fails the coverage test.
 */
import { describe, expect, it } from "vitest";
import { buildOpenApiDocument } from "../../gateway/openapi.ts";
import { createToken, revokeToken } from "../../gateway/store/tokens.ts";
import { type World, createWorld, spec } from "./world.ts";

const ROLES = ["admin", "owner", "other", "agentHere", "agentOther", "none", "revoked"] as const;
type Role = (typeof ROLES)[number];

type Ctx = { jobId: string; tokenId: string; sweepId: string; webhookId: string; fileRef: string };
type Recipe = {
  ok: number;
  /**
   * user: job-scoped user route (owner and admin only); own: the owner's alone (an admin is
   * another user there, answered `others`); users: any user; agent; admin; anyone.
   */
  audience: "job" | "own" | "users" | "agent" | "admin" | "anyone";
  /** For `own`: what a user other than the owner gets. */
  others?: number;
  params?: (ctx: Ctx) => Record<string, string>;
  body?: (ctx: Ctx) => unknown;
  headers?: Record<string, string>;
  query?: string;
  /** What another cluster's agent gets, when it differs from `ok`. */
  agentOther?: number;
};

const fileParam = (ctx: Ctx) => ({ ref: ctx.fileRef });

const jobParam = (ctx: Ctx) => ({ id: ctx.jobId });
const sweepParam = (ctx: Ctx) => ({ id: ctx.sweepId });
const webhookParam = (ctx: Ctx) => ({ id: ctx.webhookId });
const RECIPES: Record<string, Recipe> = {
  submitJob: { ok: 201, audience: "users", body: () => spec() },
  preflightJob: { ok: 200, audience: "users", body: () => spec() },
  listJobs: { ok: 200, audience: "users" },
  getJob: { ok: 200, audience: "job", params: jobParam },
  jobEvents: { ok: 200, audience: "job", params: jobParam },
  feed: { ok: 200, audience: "users" },
  cancelJob: { ok: 202, audience: "job", params: jobParam },
  jobLogs: { ok: 200, audience: "job", params: jobParam },
  jobTasks: { ok: 200, audience: "job", params: jobParam },
  // The matrix job is still queued: past authorisation, it has no script yet.
  jobScript: { ok: 404, audience: "job", params: jobParam },
  // Past authorisation, the matrix's job is still queued: it has no directory yet.
  jobDir: { ok: 409, audience: "job", params: jobParam },
  jobHead: { ok: 409, audience: "job", params: jobParam },
  jobTail: { ok: 409, audience: "job", params: jobParam },
  listJobFiles: { ok: 200, audience: "job", params: jobParam },
  // The matrix job has no outputs: past authorisation, the owner learns only that this one is absent.
  downloadJobFile: { ok: 404, audience: "job", params: (ctx) => ({ id: ctx.jobId, path: "results/a.json" }) },
  // The job declares no outputs, so its own cluster's agent is refused the path (422); another
  // cluster's agent does not see the job at all.
  agentUploadOutput: {
    ok: 422,
    agentOther: 404,
    audience: "agent",
    params: jobParam,
    query: `?epoch=0&path=a.json&size=1&sha256=${"0".repeat(64)}`,
    headers: { "content-type": "application/octet-stream" },
  },
  submitSweep: { ok: 201, audience: "users", body: () => ({ specs: [spec()] }) },
  listSweeps: { ok: 200, audience: "users" },
  getSweep: { ok: 200, audience: "job", params: sweepParam },
  sweepResults: { ok: 200, audience: "job", params: sweepParam },
  cancelSweep: { ok: 202, audience: "job", params: sweepParam },
  createWebhook: {
    ok: 201,
    audience: "users",
    body: () => ({ url: "https://hooks.example.org/matrix", events: ["job.completed"] }),
  },
  listWebhooks: { ok: 200, audience: "users" },
  getWebhook: { ok: 200, audience: "job", params: webhookParam },
  deleteWebhook: { ok: 204, audience: "job", params: webhookParam },
  enableWebhook: { ok: 200, audience: "job", params: webhookParam },
  webhookDeliveries: { ok: 200, audience: "job", params: webhookParam },
  uploadFile: {
    ok: 201,
    audience: "users",
    body: () => "matrix upload",
    headers: { "content-type": "application/octet-stream" },
  },
  // A file is its uploader's alone: to anyone else (an admin too) it does not exist.
  getFile: { ok: 200, audience: "own", others: 404, params: fileParam },
  deleteFile: { ok: 204, audience: "own", others: 404, params: fileParam },
  composeFile: {
    ok: 201,
    audience: "own",
    others: 422,
    body: (ctx) => ({ parts: [ctx.fileRef], sha256: ctx.fileRef }),
  },
  // Past authorisation, an agent learns only that no job it holds names the file.
  agentFile: { ok: 404, audience: "agent", params: fileParam, query: "?agentId=matrix" },
  listClusters: { ok: 200, audience: "users" },
  whoAmI: { ok: 200, audience: "anyone" },
  agentLease: { ok: 200, audience: "agent", body: () => ({ agentId: "matrix", wait: 0 }) },
  agentReports: {
    ok: 200,
    audience: "agent",
    body: (ctx) => ({ reports: [{ jobId: ctx.jobId, epoch: 0, state: "submitted", slurmJobId: "77" }] }),
  },
  agentGoodbye: { ok: 200, audience: "agent", body: () => ({ agentId: "matrix" }) },
  // Past authorisation, an agent learns only that no ask of that id waits for it.
  agentAnswer: {
    ok: 404,
    audience: "agent",
    params: () => ({ id: `ask_${"0".repeat(26)}` }),
    body: () => ({ agentId: "matrix", answer: { ok: false, reason: "matrix" } }),
  },
  agentInventory: {
    ok: 200,
    audience: "agent",
    body: () => ({
      slurmVersion: "22.05.8",
      apptainerVersion: null,
      accounting: false,
      agentVersion: "0.1.0",
      agentId: "matrix",
      partitions: [],
    }),
  },
  agentCluster: { ok: 200, audience: "agent" },
  createPersonalAgentToken: { ok: 201, audience: "users", body: () => ({ cluster: "alpha" }) },
  adminUpsertUser: { ok: 200, audience: "admin", body: () => ({ name: "carol" }) },
  adminListUsers: { ok: 200, audience: "admin" },
  adminCreateToken: { ok: 201, audience: "admin", body: () => ({ kind: "user", user: "bob" }) },
  adminListTokens: { ok: 200, audience: "admin" },
  adminRevokeToken: { ok: 204, audience: "admin", params: (ctx) => ({ id: ctx.tokenId }) },
  adminUpsertCluster: { ok: 200, audience: "admin", body: () => ({ name: "gamma", sharedRoots: ["/shared"] }) },
  adminListClusters: { ok: 200, audience: "admin" },
  adminUpsertGrant: {
    ok: 200,
    audience: "admin",
    body: () => ({ user: "bob", cluster: "alpha", partitions: ["cpu"] }),
  },
  adminListGrants: { ok: 200, audience: "admin" },
  adminDeleteGrant: { ok: 204, audience: "admin", params: () => ({ user: "bob", cluster: "beta" }) },
};

function expectedStatus(recipe: Recipe, role: Role): number {
  if (role === "none" || role === "revoked") {
    return 401;
  }
  const agent = role === "agentHere" || role === "agentOther";
  switch (recipe.audience) {
    case "anyone":
      return recipe.ok;
    case "agent":
      return role === "agentOther" && recipe.agentOther !== undefined ? recipe.agentOther : agent ? recipe.ok : 403;
    case "admin":
      return role === "admin" ? recipe.ok : 403;
    case "users":
      return agent ? 403 : recipe.ok;
    case "job":
      return agent ? 403 : role === "other" ? 404 : recipe.ok;
    case "own":
      return agent ? 403 : role === "owner" ? recipe.ok : recipe.others!;
  }
}

type Operation = { method: string; path: string; operationId: string };

function operations(): Operation[] {
  const doc = buildOpenApiDocument();
  const ops: Operation[] = [];
  for (const [path, item] of Object.entries(doc.paths ?? {})) {
    for (const method of ["get", "post", "put", "delete", "patch"] as const) {
      const op = (item as Record<string, { operationId?: string } | undefined>)[method];
      if (op) {
        ops.push({ method: method.toUpperCase(), path, operationId: op.operationId ?? `${method} ${path}` });
      }
    }
  }
  return ops;
}

async function tokenFor(w: World, role: Role): Promise<string | undefined> {
  switch (role) {
    case "admin":
      return w.tokens.admin;
    case "owner":
      return w.tokens.alice;
    case "other":
      return w.tokens.bob;
    case "agentHere":
      return w.tokens.alphaAgent;
    case "agentOther":
      return w.tokens.betaAgent;
    case "none":
      return undefined;
    case "revoked": {
      const created = await createToken(w.db, { kind: "user", user: "alice" }, w.deps.now());
      await revokeToken(w.db, created.id, w.deps.now());
      return created.token;
    }
  }
}

const OPS = operations();

describe("authorisation matrix", () => {
  it("has a recipe for every documented operation and no stale ones", () => {
    expect(OPS.map((o) => o.operationId).sort()).toEqual(Object.keys(RECIPES).sort());
  });

  it.each(OPS)("$method $path ($operationId)", async (op) => {
    const recipe = RECIPES[op.operationId];
    expect(recipe).toBeDefined();
    const got: Record<string, number> = {};
    const want: Record<string, number> = {};
    for (const role of ROLES) {
      const w = await createWorld();
      const job = await w.submit(w.tokens.alice, {}, {});
      const extra = await createToken(w.db, { kind: "user", user: "bob", label: "spare" }, w.deps.now());
      const sweep = await w.call<{ id: string }>("POST", "/v1/sweeps", w.tokens.alice, { specs: [spec()] });
      const webhook = await w.call<{ id: string }>("POST", "/v1/webhooks", w.tokens.alice, {
        url: "https://hooks.example.org/a",
        events: ["job.completed"],
      });
      const file = await w.call<{ file: string }>("POST", "/v1/files", w.tokens.alice, "matrix bytes", {
        "content-type": "application/octet-stream",
      });
      const ctx: Ctx = {
        jobId: job.id,
        tokenId: extra.id,
        sweepId: sweep.body.id,
        webhookId: webhook.body.id,
        fileRef: file.body.file,
      };
      const params = recipe!.params?.(ctx) ?? {};
      const path = op.path.replace(/\{(\w+)\}/g, (_, name: string) => encodeURIComponent(params[name] ?? ""));
      const res = await w.call(
        op.method,
        path + (recipe!.query ?? ""),
        await tokenFor(w, role),
        recipe!.body?.(ctx),
        recipe!.headers,
      );
      got[role] = res.status;
      want[role] = expectedStatus(recipe!, role);
      if (res.status >= 400) {
        expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
      }
    }
    expect(got).toEqual(want);
  });

  it("makes a foreign job and a missing job indistinguishable", async () => {
    const w = await createWorld();
    const job = await w.submit(w.tokens.alice);
    const missing = job.id.replace(/.{4}$/, "zzzz");
    for (const suffix of [
      "",
      "/events",
      "/logs",
      "/cancel",
      "/dir",
      "/head",
      "/tail",
      "/files",
      "/files/results%2Fa.json",
    ]) {
      const method = suffix === "/cancel" ? "POST" : "GET";
      const foreign = await w.call(method, `/v1/jobs/${job.id}${suffix}`, w.tokens.bob);
      const absent = await w.call(method, `/v1/jobs/${missing}${suffix}`, w.tokens.bob);
      expect(foreign.status).toBe(404);
      // Every answer has its own request id; everything else must be the same.
      const normalise = (body: unknown, id: string) =>
        JSON.parse(JSON.stringify({ ...(body as object), requestId: undefined }).replaceAll(id, "<id>"));
      expect(normalise(foreign.body, job.id)).toEqual(normalise(absent.body, missing));
    }
    expect((await w.job(job.id)).cancelRequested).toBe(false);
    expect((await w.job(job.id)).state).toBe("queued");
  });
});
