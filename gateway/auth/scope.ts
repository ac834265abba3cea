/**
 * What a workload admitted by a trust policy may do beyond its user's grants: the one place that
 * reads `Principal.scope`. `enforceScope` guards every route (submit-only); `scopeSpec` and
 * `scopeView` narrow a submission (clusters, forced labels). A principal without a scope passes
 * through all three untouched.
 */
import type { MiddlewareHandler } from "hono";
import { JobSpec } from "../../schemas/index.ts";
import type { AppEnv, Principal } from "../deps.ts";
import { ApiProblem } from "../problem.ts";
import { clustersRoute, meRoute } from "../routes/clusters.routes.ts";
import { feed } from "../routes/events.routes.ts";
import * as jobs from "../routes/jobs.routes.ts";
import * as sweeps from "../routes/sweeps.routes.ts";
import type { RoutingView } from "../routing-view.ts";

/** The routes a submit-only workload may call: its own jobs and sweeps, who it is, and what it may run on. */
const SUBMIT_ONLY_ROUTES = [
  sweeps.submitSweep,
  sweeps.listSweeps,
  sweeps.getSweep,
  sweeps.sweepResults,
  sweeps.cancelSweep,
  feed,
  jobs.submitJob,
  jobs.preflightJob,
  jobs.listJobs,
  jobs.getJob,
  jobs.jobEvents,
  jobs.jobTasks,
  jobs.jobLogs,
  jobs.cancelJob,
  meRoute,
  clustersRoute,
];

const allowed = SUBMIT_ONLY_ROUTES.map((route) => ({
  methods: route.method === "get" ? ["GET", "HEAD"] : [route.method.toUpperCase()],
  // "/v1/jobs/{id}/logs" → one path segment per parameter, nothing more.
  path: new RegExp(`^${route.path.replace(/\{[^}]+\}/g, "[^/]+")}$`),
}));

type Person = Extract<Principal, { kind: "user" | "admin" }>;
type Scoped = Person & { scope: NonNullable<Person["scope"]> };

function scopedOf(principal: Principal | undefined): Scoped | undefined {
  return principal && principal.kind !== "agent" && principal.scope ? (principal as Scoped) : undefined;
}

/** "trust policy 0 of https://token.actions.githubusercontent.com": which rule a refusal comes from. */
function ruleOf(p: Scoped): string {
  return p.via?.kind === "workload" ? `trust policy ${p.via.policy} of ${p.via.issuer}` : "this token's scope";
}

/** Refuses, before any handler runs, every route a submit-only workload may not call. */
export function enforceScope(): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const p = scopedOf(c.get("principal"));
    if (p?.scope.submitOnly) {
      const path = c.req.path.replace(/\/+$/, "") || "/";
      const method = c.req.method.toUpperCase();
      if (!allowed.some((a) => a.methods.includes(method) && a.path.test(path))) {
        throw new ApiProblem(
          "forbidden",
          `${ruleOf(p)} is submit-only: it may submit, read, follow and cancel its own jobs and sweeps and read /v1/me and /v1/clusters, not ${method} ${path}`,
          { field: "header.authorization" },
        );
      }
    }
    await next();
  };
}

/**
 * The spec a scoped workload may submit: a pinned cluster must be one of the scope's, and the
 * forced labels are added. A label the caller set to another value is refused rather than
 * overwritten, so nobody reads a job's labels believing they are what they sent.
 */
export function scopeSpec(principal: Principal, spec: JobSpec): JobSpec {
  const p = scopedOf(principal);
  if (!p) {
    return spec;
  }
  const { clusters, labels } = p.scope;
  if (clusters && spec.cluster && !clusters.includes(spec.cluster)) {
    throw new ApiProblem(
      "forbidden",
      `${ruleOf(p)} may submit only to ${clusters.join(", ")}, not to ${spec.cluster}`,
      { field: "body.cluster" },
    );
  }
  if (!labels) {
    return spec;
  }
  for (const [key, value] of Object.entries(labels)) {
    const sent = spec.labels[key];
    if (sent !== undefined && sent !== value) {
      throw new ApiProblem(
        "validation_failed",
        `label ${key} is set by ${ruleOf(p)} to ${JSON.stringify(value)}; leave it out or send that value`,
        { field: `body.labels.${key}` },
      );
    }
  }
  const merged = { ...spec.labels, ...labels };
  const checked = JobSpec.shape.labels.safeParse(merged);
  if (!checked.success) {
    throw new ApiProblem(
      "validation_failed",
      `labels with those forced by ${ruleOf(p)}: ${checked.error.issues[0]?.message ?? "invalid"}`,
      { field: "body.labels" },
    );
  }
  return { ...spec, labels: merged };
}

/** A scoped workload's grants: only those on the scope's clusters. */
export function scopeGrants<G extends { cluster: string }>(principal: Principal, grants: G[]): G[] {
  const clusters = scopedOf(principal)?.scope.clusters;
  return clusters ? grants.filter((g) => clusters.includes(g.cluster)) : grants;
}

/** Routing sees only the grants on the scope's clusters, so an unpinned job lands on one of them. */
export function scopeView(principal: Principal, view: RoutingView): RoutingView {
  return { ...view, grants: scopeGrants(principal, view.grants) };
}
