/**
 * A seeded in-process gateway for the gateway suites: an admin, two users, clusters alpha (A100s)
 * and beta (H100s) with live agents, grants for everyone, and small request helpers.
 */
import type { JobSpecInput } from "../../schemas/index.ts";
import { type TestClock, createTestGateway, sampleInventory } from "../helpers/gateway.ts";

export type World = Awaited<ReturnType<typeof createWorld>>;

export const spec = (extra: Partial<JobSpecInput> = {}): JobSpecInput => ({
  name: "hello",
  command: ["echo", "hi"],
  ...extra,
});

export async function createWorld(env: Record<string, string> = {}, clock?: TestClock, url?: string) {
  const gw = await createTestGateway(env, { ...(clock ? { clock } : {}), ...(url ? { url } : {}) });
  const admin = await gw.user("root", true);
  const alice = await gw.user("alice");
  const bob = await gw.user("bob");
  const alphaAgent = await gw.cluster("alpha");
  const betaAgent = await gw.cluster("beta");
  for (const user of ["root", "alice", "bob"]) {
    await gw.grant(user, "alpha");
    await gw.grant(user, "beta");
  }
  await gw.inventory("alpha", sampleInventory("a100"));
  await gw.inventory("beta", sampleInventory("h100"));

  const call = async <T = Record<string, unknown>>(
    method: string,
    path: string,
    token: string | undefined,
    body?: unknown,
    headers?: Record<string, string>,
  ) => {
    const res = await gw.request(method, path, { token, body, headers });
    const text = await res.text();
    const json = (text ? JSON.parse(text) : undefined) as T;
    return { status: res.status, headers: res.headers, body: json };
  };

  const submit = async (token: string, extra: Partial<JobSpecInput> = {}, headers?: Record<string, string>) => {
    const res = await call<{ id: string; state: string; cluster: string }>(
      "POST",
      "/v1/jobs",
      token,
      spec(extra),
      headers,
    );
    if (res.status !== 201 && res.status !== 200) {
      throw new Error(`submit failed: ${res.status} ${JSON.stringify(res.body)}`);
    }
    return res.body;
  };

  const lease = (token: string, agentId = "agent-1", extra: Record<string, unknown> = {}) =>
    call<LeaseBody>("POST", "/v1/agent/lease", token, { agentId, max: 10, wait: 0, ...extra });

  const report = (token: string, reports: Record<string, unknown>[], agentId = "agent-1") =>
    call<{ outcomes: { jobId: string; status: string; detail?: string }[] }>("POST", "/v1/agent/reports", token, {
      agentId,
      reports,
    });

  const job = async (id: string, token = admin) => (await call<JobBody>("GET", `/v1/jobs/${id}`, token)).body;

  return {
    ...gw,
    tokens: { admin, alice, bob, alphaAgent, betaAgent },
    call,
    submit,
    lease,
    report,
    job,
  };
}

export type LeaseBody = {
  leases: { jobId: string; epoch: number; attempt: number; slurmJobId: string | null; owner: string }[];
  cancels: { jobId: string; epoch: number; slurmJobId: string | null }[];
  lost: string[];
  leaseSeconds: number;
};

export type JobBody = {
  id: string;
  state: string;
  reason: string | null;
  cluster: string;
  partition: string | null;
  attempt: number;
  slurmJobId: string | null;
  exitCode: number | null;
  cancelRequested: boolean;
  result: unknown;
  lastSeq: number;
  events: { seq: number; type: string; state?: string; detail?: string; actor: string }[];
};

/** Asserts an RFC 9457 problem and returns its body. */
export function expectProblemShape(res: { status: number; headers: Headers; body: unknown }, status: number) {
  const body = res.body as { status: number; code: string; field?: string; type: string; title: string };
  if (res.status !== status) {
    throw new Error(`expected ${status}, got ${res.status}: ${JSON.stringify(res.body)}`);
  }
  if (!res.headers.get("content-type")?.startsWith("application/problem+json")) {
    throw new Error(`expected application/problem+json, got ${res.headers.get("content-type")}`);
  }
  if (body.status !== status || !body.type.endsWith(`/${body.code}`) || !body.title) {
    throw new Error(`malformed problem body: ${JSON.stringify(body)}`);
  }
  return body;
}
