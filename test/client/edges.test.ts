/**
 * The client's own behaviour at the edges, against msw: retries and backoff, Retry-After, what is
 * never retried, malformed responses, typed errors, aborted waits, and the no-tight-poll guard.
 */
import { delay, HttpResponse, http } from "msw";
import { setupServer } from "msw/node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  createClient,
  isAbortError,
  MalformedResponseError,
  NetworkError,
  type RetryInfo,
  type RetryOptions,
  SlurmgateError,
  WaitTimeoutError,
} from "../../client/index.ts";
import { backoffDelay, parseRetryAfter, resolveRetry } from "../../client/retry.ts";

const BASE = "http://gateway.test";
const server = setupServer();
beforeAll(() => server.listen({ onUnhandledFrame: "error" }));
afterEach(() => server.resetHandlers());
afterAll(() => server.close());

const JOB = {
  id: "job_01jd7x2k9m4q8r6t5v3w1y0z",
  owner: "alice",
  name: "t",
  state: "queued",
  reason: null,
  code: null,
  cluster: "hpc1",
  partition: "cpu",
  attempt: 1,
  slurmJobId: null,
  exitCode: null,
  signal: null,
  cancelRequested: false,
  labels: {},
  spec: { name: "t", command: ["true"] },
  result: null,
  lastSeq: 1,
  createdAt: "2026-01-01T00:00:00.000Z",
  updatedAt: "2026-01-01T00:00:00.000Z",
};

const problem = (status: number, code: string, extra: Record<string, unknown> = {}) =>
  HttpResponse.json(
    { type: `https://slurmgate.dev/problems/${code}`, title: code, status, code, detail: `${code} happened`, ...extra },
    { status, headers: { "content-type": "application/problem+json" } },
  );

function client(retry: RetryOptions = {}) {
  const retries: RetryInfo[] = [];
  const c = createClient({
    baseUrl: `${BASE}/`,
    token: "sgu_test",
    retry: { baseDelayMs: 5, onRetry: (i) => retries.push(i), ...retry },
  });
  return Object.assign(c, { retries });
}

/** A handler that answers from `answers` in turn (the last one repeats) and counts calls. */
function sequence(method: "get" | "post", path: string, answers: (() => Response | Promise<Response>)[]) {
  const seen: Request[] = [];
  server.use(
    http[method](`${BASE}${path}`, ({ request }) => {
      seen.push(request.clone());
      const answer = answers[Math.min(seen.length, answers.length) - 1];
      return answer ? answer() : HttpResponse.error();
    }),
  );
  return seen;
}

describe("retries", () => {
  it("retries a GET on 503 and honours Retry-After", async () => {
    const seen: Request[] = [];
    server.use(
      http.get(`${BASE}/v1/me`, ({ request }) => {
        seen.push(request);
        return seen.length === 1
          ? new HttpResponse(JSON.stringify({ status: 503, code: "unavailable", title: "x" }), {
              status: 503,
              headers: { "content-type": "application/problem+json", "retry-after": "1" },
            })
          : HttpResponse.json({ kind: "user", user: "alice", cluster: null, serverTime: "now" });
      }),
    );
    const c = client();
    const started = Date.now();
    expect(await c.me()).toMatchObject({ user: "alice" });
    expect(seen).toHaveLength(2);
    expect(c.retries[0]).toMatchObject({ attempt: 1, reason: "HTTP 503", method: "GET" });
    expect(c.retries[0]?.delayMs).toBeGreaterThanOrEqual(1_000);
    expect(Date.now() - started).toBeGreaterThanOrEqual(990);
  });

  it("retries 429 with backoff and finally throws a retryable SlurmgateError", async () => {
    const seen = sequence("get", "/v1/clusters", [
      () =>
        new HttpResponse(JSON.stringify({ status: 429, code: "rate_limited", title: "slow down" }), {
          status: 429,
          headers: { "content-type": "application/problem+json", "retry-after": "0" },
        }),
    ]);
    const c = client({ attempts: 3 });
    const err = await c.clusters().catch((e: unknown) => e);
    expect(seen).toHaveLength(3);
    expect(err).toBeInstanceOf(SlurmgateError);
    expect(err).toMatchObject({ status: 429, code: "rate_limited", retryable: true, retryAfterSeconds: 0 });
    expect(c.retries.map((r) => r.attempt)).toEqual([1, 2]);
  });

  it("does not repeat a wait the gateway already made: an agent_timeout 504 is answered at once, a proxy's 504 is retried", async () => {
    const timedOut = sequence("get", "/v1/jobs/:id/dir", [
      () => problem(504, "agent_timeout"),
      () => HttpResponse.json({}),
    ]);
    const c = client({ attempts: 3 });
    const err = await c.browse(JOB.id, "results").catch((e: unknown) => e);
    expect(timedOut).toHaveLength(1);
    expect(err).toBeInstanceOf(SlurmgateError);
    expect(err).toMatchObject({ status: 504, code: "agent_timeout" });
    server.resetHandlers();
    const proxy = sequence("get", "/v1/jobs/:id", [
      () =>
        new HttpResponse("<html>504 Gateway Time-out</html>", {
          status: 504,
          headers: { "content-type": "text/html" },
        }),
      () => HttpResponse.json(JOB),
    ]);
    expect((await client({ attempts: 3 }).get(JOB.id)).id).toBe(JOB.id);
    expect(proxy).toHaveLength(2);
  });

  it("retries network errors on GET, then throws a NetworkError", async () => {
    const ok = sequence("get", "/v1/jobs/:id", [() => HttpResponse.error(), () => HttpResponse.json(JOB)]);
    expect((await client().get(JOB.id)).id).toBe(JOB.id);
    expect(ok).toHaveLength(2);
    server.resetHandlers();
    const failing = sequence("get", "/v1/jobs/:id", [() => HttpResponse.error()]);
    const err = await client({ attempts: 2 })
      .get(JOB.id)
      .catch((e: unknown) => e);
    expect(failing).toHaveLength(2);
    expect(err).toBeInstanceOf(NetworkError);
    expect(err).toMatchObject({ retryable: true, url: `${BASE}/v1/jobs/${JOB.id}` });
    expect((err as Error).message).toMatch(/^cannot reach http:\/\/gateway\.test/);
  });

  it("a real refused connection is a NetworkError with the reason", async () => {
    const c = createClient({ baseUrl: "http://127.0.0.1:9", retry: { attempts: 1 }, fetch: () => fetchRefused() });
    const err = await c.me().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NetworkError);
    expect((err as Error).message).toContain("ECONNREFUSED");
  });

  it("never retries a POST /v1/jobs without an Idempotency-Key (raw)", async () => {
    const seen = sequence("post", "/v1/jobs", [() => HttpResponse.error()]);
    const c = client();
    const err = await c.raw.POST("/v1/jobs", { body: JOB.spec as never }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NetworkError);
    expect(seen).toHaveLength(1);
  });

  it("retries submit() because it always sends the same Idempotency-Key", async () => {
    const seen = sequence("post", "/v1/jobs", [
      () => HttpResponse.error(),
      () => problem(503, "unavailable"),
      () => HttpResponse.json(JOB, { status: 201 }),
    ]);
    const job = await client().submit({ name: "t", command: ["true"] });
    expect(job.id).toBe(JOB.id);
    expect(seen).toHaveLength(3);
    const keys = seen.map((r) => r.headers.get("idempotency-key"));
    expect(keys[0]).toMatch(/^[0-9a-f-]{36}$/);
    expect(new Set(keys).size).toBe(1);
    expect(await seen[2]?.json()).toEqual({ name: "t", command: ["true"] });
  });

  it("retries cancel (idempotent) but not other un-keyed POSTs", async () => {
    const cancels = sequence("post", "/v1/jobs/:id/cancel", [
      () => problem(503, "unavailable"),
      () => HttpResponse.json({ ...JOB, state: "cancelled" }, { status: 202 }),
    ]);
    expect((await client().cancel(JOB.id)).state).toBe("cancelled");
    expect(cancels).toHaveLength(2);
    const users = sequence("post", "/v1/admin/users", [() => problem(503, "unavailable")]);
    await expect(client().admin.users.upsert({ name: "bob" })).rejects.toMatchObject({ status: 503 });
    expect(users).toHaveLength(1);
  });

  it("does not sit out a Retry-After longer than maxRetryAfterMs", async () => {
    const seen = sequence("get", "/v1/me", [
      () =>
        new HttpResponse(JSON.stringify({ status: 429, code: "rate_limited", title: "x" }), {
          status: 429,
          headers: { "content-type": "application/problem+json", "retry-after": "3600" },
        }),
    ]);
    const err = await client()
      .me()
      .catch((e: unknown) => e);
    expect(seen).toHaveLength(1);
    expect(err).toMatchObject({ status: 429, retryAfterSeconds: 3600 });
  });

  it("attempts: 1 turns retries off", async () => {
    const seen = sequence("get", "/v1/me", [() => problem(503, "unavailable")]);
    await expect(client({ attempts: 1 }).me()).rejects.toMatchObject({ status: 503 });
    expect(seen).toHaveLength(1);
  });

  it("computes exponential backoff with jitter, capped, never below Retry-After", () => {
    const high = resolveRetry({ baseDelayMs: 100, maxDelayMs: 1_000, random: () => 0.999999 });
    expect([1, 2, 3, 4, 5].map((n) => backoffDelay(high, n, undefined))).toEqual([100, 200, 400, 800, 1000]);
    const low = resolveRetry({ baseDelayMs: 100, random: () => 0 });
    expect([1, 2, 3].map((n) => backoffDelay(low, n, undefined))).toEqual([50, 100, 200]);
    expect(backoffDelay(low, 1, 2_000)).toBe(2_000);
    expect(parseRetryAfter("7")).toBe(7_000);
    expect(parseRetryAfter(new Date(Date.now() + 5_000).toUTCString())).toBeGreaterThan(3_000);
    expect(parseRetryAfter("soon")).toBeUndefined();
  });
});

describe("typed and malformed responses", () => {
  it("turns problem+json into a SlurmgateError with field, detail and errors", async () => {
    sequence("post", "/v1/jobs", [
      () =>
        problem(422, "validation_failed", {
          detail: "body.resources.time: a Slurm time",
          field: "body.resources.time",
          errors: [{ field: "body.resources.time", message: "a Slurm time" }],
        }),
    ]);
    const err = (await client()
      .submit({ name: "t", command: ["x"] })
      .catch((e: unknown) => e)) as SlurmgateError;
    expect(err).toBeInstanceOf(SlurmgateError);
    expect(err).toMatchObject({
      status: 422,
      code: "validation_failed",
      field: "body.resources.time",
      retryable: false,
    });
    expect(err.detail).toBe("body.resources.time: a Slurm time");
    expect(err.problem.errors).toHaveLength(1);
    expect(err.message).toBe("body.resources.time: a Slurm time (422 validation_failed)");
  });

  it.each([
    [
      "HTML on 200",
      () => new HttpResponse("<html>login</html>", { headers: { "content-type": "text/html" } }),
      /expected JSON, got text\/html: <html>login/,
    ],
    [
      "broken JSON",
      () => new HttpResponse('{"id":', { headers: { "content-type": "application/json" } }),
      /not valid JSON/,
    ],
    ["wrong shape", () => HttpResponse.json({ hello: "world" }), /expected a job/],
    [
      "error without a problem",
      () => HttpResponse.json({ message: "nope" }, { status: 500 }),
      /without a problem document/,
    ],
    [
      "proxy HTML 502",
      () => new HttpResponse("<h1>Bad Gateway</h1>", { status: 502, headers: { "content-type": "text/html" } }),
      /HTTP 502.*problem\+json/,
    ],
  ])("%s is a MalformedResponseError", async (_name, answer, message) => {
    sequence("get", "/v1/jobs/:id", [answer]);
    const err = await client({ attempts: 1 })
      .get(JOB.id)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MalformedResponseError);
    expect((err as Error).message).toMatch(message);
  });

  it("a proxy's 502 is retried before it becomes a MalformedResponseError", async () => {
    const seen = sequence("get", "/v1/me", [
      () => new HttpResponse("Bad Gateway", { status: 502, headers: { "content-type": "text/plain" } }),
    ]);
    const err = await client({ attempts: 3 })
      .me()
      .catch((e: unknown) => e);
    expect(seen).toHaveLength(3);
    expect(err).toMatchObject({ status: 502, retryable: true });
  });

  it("sends the bearer token and accepts problem+json", async () => {
    const seen = sequence("get", "/v1/me", [
      () => HttpResponse.json({ kind: "user", user: "a", cluster: null, serverTime: "" }),
    ]);
    await client().me();
    expect(seen[0]?.headers.get("authorization")).toBe("Bearer sgu_test");
    expect(seen[0]?.headers.get("accept")).toContain("application/problem+json");
  });
});

describe("wait and logs at the edges", () => {
  it("an AbortSignal ends a wait while the long-poll is held", async () => {
    const seen = sequence("get", "/v1/jobs/:id/events", [
      async () => {
        await delay("infinite");
        return HttpResponse.json({});
      },
    ]);
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100);
    const started = Date.now();
    const err = await client()
      .wait(JOB.id, { signal: controller.signal })
      .catch((e: unknown) => e);
    expect(isAbortError(err)).toBe(true);
    expect(Date.now() - started).toBeLessThan(1_000);
    // The held request is the event stream's (a wait asks for one first).
    expect(seen[0]?.headers.get("accept")).toContain("text/event-stream");
  });

  it("an already-aborted signal makes no request", async () => {
    const seen = sequence("get", "/v1/jobs/:id/events", [() => HttpResponse.json({})]);
    const err = await client()
      .wait(JOB.id, { signal: AbortSignal.abort() })
      .catch((e: unknown) => e);
    expect(isAbortError(err)).toBe(true);
    expect(seen).toHaveLength(0);
  });

  it("does not tight-poll a server that ignores `wait`", async () => {
    const seen = sequence("get", "/v1/jobs/:id/events", [
      () => HttpResponse.json({ job: JOB, events: [], lastSeq: 1 }),
    ]);
    const err = await client()
      .wait(JOB.id, { timeout: 2_500, after: 1 })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WaitTimeoutError);
    expect(seen.length).toBeLessThanOrEqual(4);
    expect(new URL(seen[0]?.url ?? "").searchParams.get("after")).toBe("1");
  });

  it("follows the event cursor and stops at a terminal state even if `until` names another", async () => {
    const ev = (seq: number, state: string) => ({ seq, at: "", actor: "agent", type: "state", state });
    const seen = sequence("get", "/v1/jobs/:id/events", [
      () =>
        HttpResponse.json({ job: { ...JOB, state: "leased" }, events: [ev(1, "queued"), ev(2, "leased")], lastSeq: 2 }),
      () => HttpResponse.json({ job: { ...JOB, state: "rejected" }, events: [ev(3, "rejected")], lastSeq: 3 }),
    ]);
    const states: string[] = [];
    const job = await client().wait(JOB.id, { until: ["running"], onEvent: (e) => states.push(e.state ?? "") });
    expect(job.state).toBe("rejected");
    expect(states).toEqual(["queued", "leased", "rejected"]);
    expect(seen.map((r) => new URL(r.url).searchParams.get("after"))).toEqual(["0", "2"]);
  });

  it("logs without follow pages by offset until nothing new", async () => {
    const seen = sequence("get", "/v1/jobs/:id/logs", [
      () => HttpResponse.json({ stream: "stdout", offset: 0, data: "ab", nextOffset: 2, complete: false }),
      () => HttpResponse.json({ stream: "stdout", offset: 2, data: "c", nextOffset: 3, complete: false }),
      () => HttpResponse.json({ stream: "stdout", offset: 3, data: "", nextOffset: 3, complete: false }),
    ]);
    const chunks: string[] = [];
    for await (const text of client().logs(JOB.id)) {
      chunks.push(text);
    }
    expect(chunks).toEqual(["ab", "c"]);
    expect(seen.map((r) => new URL(r.url).searchParams.get("offset"))).toEqual(["0", "2", "3"]);
    expect(seen.every((r) => new URL(r.url).searchParams.get("wait") === "0")).toBe(true);
  });
});

/** What undici throws for a refused connection: TypeError("fetch failed") with the reason in `cause`. */
function fetchRefused(): Promise<Response> {
  const cause = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:9"), { code: "ECONNREFUSED" });
  return Promise.reject(new TypeError("fetch failed", { cause }));
}
