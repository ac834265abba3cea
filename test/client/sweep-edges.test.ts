/**
 * The sweep helpers' own retry, backoff and error mapping, against msw: what is retried (a keyed
 * create, a cancel) and with which key, how refusals and broken answers become typed errors, and
 * how the results' JSON lines are parsed when the bytes arrive cut at awkward places.
 * Behaviour against a real gateway is in sweep.test.ts.
 */
import { HttpResponse, http } from "msw";
import { setupServer } from "msw/node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  createClient,
  MalformedResponseError,
  NetworkError,
  type RetryInfo,
  type RetryOptions,
  SlurmgateError,
} from "../../client/index.ts";

const BASE = "http://gateway.test";
const server = setupServer();
beforeAll(() => server.listen({ onUnhandledFrame: "error" }));
afterEach(() => server.resetHandlers());
afterAll(() => server.close());

const SWEEP_ID = "swp_01jd7x2k9m4q8r6t5v3w1y0z";
const JOB_ID = "job_01jd7x2k9m4q8r6t5v3w1y0z";
const SWEEP = {
  id: SWEEP_ID,
  owner: "alice",
  name: "lr",
  state: "active",
  total: 2,
  counts: { queued: 2 },
  done: 0,
  maxParallel: 1,
  createdAt: "2026-01-01T00:00:00.000Z",
  updatedAt: "2026-01-01T00:00:00.000Z",
};
const CREATED = { ...SWEEP, jobIds: [JOB_ID, "job_01jd7x2k9m4q8r6t5v3w1y10"] };

const problem = (status: number, code: string, extra: Record<string, unknown> = {}) =>
  HttpResponse.json(
    { type: `https://slurmgate.dev/problems/${code}`, title: code, status, code, detail: `${code} happened`, ...extra },
    { status, headers: { "content-type": "application/problem+json" } },
  );

function client(retry: RetryOptions = {}) {
  const retries: RetryInfo[] = [];
  const c = createClient({
    baseUrl: BASE,
    token: "sgu_test",
    retry: { baseDelayMs: 5, onRetry: (i) => retries.push(i), ...retry },
  });
  return Object.assign(c, { retries });
}

/** A handler that answers from `answers` in turn (the last one repeats) and keeps each request. */
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

/** An ndjson body delivered in the given byte pieces. */
function ndjson(pieces: Uint8Array[]): Response {
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      for (const piece of pieces) {
        controller.enqueue(piece);
      }
      controller.close();
    },
  });
  return new HttpResponse(body, { status: 200, headers: { "content-type": "application/x-ndjson" } });
}

describe("creating a sweep", () => {
  it("is one POST with the caller's Idempotency-Key, retried with the same key after a 503 and a dropped connection", async () => {
    const seen = sequence("post", "/v1/sweeps", [
      () => problem(503, "unavailable"),
      () => HttpResponse.error(),
      () => HttpResponse.json(CREATED, { status: 201 }),
    ]);
    const c = client();
    const created = await c.createSweep(
      { base: { name: "lr", command: ["train", "{LR}"] }, grid: { LR: [0.1, 0.01] }, maxParallel: 1 },
      { idempotencyKey: "nightly-1" },
    );
    expect(created.jobIds).toEqual(CREATED.jobIds);
    expect(seen).toHaveLength(3);
    expect(seen.map((r) => r.headers.get("idempotency-key"))).toEqual(["nightly-1", "nightly-1", "nightly-1"]);
    expect(await seen[0]?.json()).toEqual({
      base: { name: "lr", command: ["train", "{LR}"] },
      grid: { LR: [0.1, 0.01] },
      maxParallel: 1,
    });
    expect(c.retries.map((r) => r.method)).toEqual(["POST", "POST"]);
  });

  it("never retries a POST /v1/sweeps sent without an Idempotency-Key (raw)", async () => {
    const seen = sequence("post", "/v1/sweeps", [() => problem(503, "unavailable")]);
    const { error } = await client().raw.POST("/v1/sweeps", {
      params: { header: {} },
      body: { specs: [{ name: "a", command: ["x"] }] } as never,
    });
    expect(error).toMatchObject({ status: 503 });
    expect(seen).toHaveLength(1);
  });

  it("sweep() sends a list as `specs` and { base, params } as `points`, with a random key when none is given", async () => {
    const seen = sequence("post", "/v1/sweeps", [() => problem(422, "validation_failed")]);
    const c = client();
    const base = { name: "b", command: ["x"] };
    await c.sweep([base, base], { maxParallel: 2 }).catch(() => undefined);
    await c.sweep({ base, params: [{ env: { A: "1" } }], grid: { B: ["2"] } }, { name: "mine" }).catch(() => undefined);
    expect(await seen[0]?.json()).toEqual({ specs: [base, base], maxParallel: 2 });
    expect(await seen[1]?.json()).toEqual({ base, points: [{ env: { A: "1" } }], grid: { B: ["2"] }, name: "mine" });
    const keys = seen.map((r) => r.headers.get("idempotency-key"));
    expect(keys[0]).toMatch(/^[0-9a-f-]{36}$/);
    expect(keys[1]).not.toBe(keys[0]);
  });

  it("a grid past the limit is a SlurmgateError naming `grid`, never retried", async () => {
    const seen = sequence("post", "/v1/sweeps", [
      () =>
        problem(422, "validation_failed", {
          field: "body.grid",
          detail: "body.grid: 10100 elements, more than 10000",
          errors: [{ field: "body.grid", message: "10100 elements, more than 10000" }],
        }),
    ]);
    const err = await client()
      .sweep({ base: { name: "b", command: ["x"] }, grid: { A: [1], B: [2] } })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SlurmgateError);
    expect(err).toMatchObject({ status: 422, code: "validation_failed", field: "body.grid", retryable: false });
    expect((err as SlurmgateError).errors).toEqual([
      { field: "body.grid", message: "10100 elements, more than 10000" },
    ]);
    expect(seen).toHaveLength(1);
  });

  it("an answer without the job ids is a MalformedResponseError, not a sweep of nothing", async () => {
    sequence("post", "/v1/sweeps", [() => HttpResponse.json(SWEEP, { status: 201 })]);
    const err = await client()
      .createSweep({ specs: [{ name: "a", command: ["x"] }] })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MalformedResponseError);
    expect((err as Error).message).toContain("expected a created sweep with its job ids");
  });
});

describe("cancel, get", () => {
  it("a sweep's cancel is retried after a 502; a 404 is typed", async () => {
    const seen = sequence("post", "/v1/sweeps/:id/cancel", [
      () => problem(502, "bad_gateway"),
      () => HttpResponse.json({ ...SWEEP, state: "cancelled", done: 2, counts: { cancelled: 2 } }),
    ]);
    const c = client();
    expect((await c.cancelSweep(SWEEP_ID)).state).toBe("cancelled");
    expect(seen).toHaveLength(2);
    server.resetHandlers();
    sequence("get", "/v1/sweeps/:id", [() => problem(404, "not_found")]);
    await expect(c.getSweep(SWEEP_ID)).rejects.toMatchObject({ status: 404, code: "not_found" });
  });

  it("a page whose elements are not elements is a MalformedResponseError", async () => {
    sequence("get", "/v1/sweeps/:id", [
      () => HttpResponse.json({ ...SWEEP, elements: [{ index: "0" }], nextCursor: null }),
    ]);
    await expect(client().getSweep(SWEEP_ID)).rejects.toBeInstanceOf(MalformedResponseError);
  });
});

describe("results (JSON lines)", () => {
  const line = (index: number, extra: Record<string, unknown> = {}) => ({
    index,
    jobId: JOB_ID,
    state: "completed",
    exitCode: 0,
    result: { loss: index / 10 },
    ...extra,
  });

  it("parses lines in order when chunks cut lines and multi-byte characters in half", async () => {
    const text = `${JSON.stringify(line(0, { result: { note: "naïve ✓" } }))}\n\n${JSON.stringify(line(1))}\n${JSON.stringify(line(2))}`;
    const bytes = new TextEncoder().encode(text);
    const cut = text.indexOf("✓") + 1; // inside the 3-byte character once encoded
    const at = new TextEncoder().encode(text.slice(0, cut)).length - 2;
    const seen = sequence("get", "/v1/sweeps/:id/results", [
      () => ndjson([bytes.slice(0, 7), bytes.slice(7, at), bytes.slice(at, at + 1), bytes.slice(at + 1)]),
    ]);
    const out = [];
    for await (const l of client().sweepResults(SWEEP_ID)) {
      out.push(l);
    }
    expect(out.map((l) => l.index)).toEqual([0, 1, 2]);
    expect(out[0]?.result).toEqual({ note: "naïve ✓" });
    expect(seen[0]?.headers.get("accept")).toContain("application/x-ndjson");
  });

  it("a corrupt line is a MalformedResponseError naming the line; the lines before it arrive", async () => {
    sequence("get", "/v1/sweeps/:id/results", [
      () => ndjson([new TextEncoder().encode(`${JSON.stringify(line(0))}\n{"index":1,"jobId":\n`)]),
    ]);
    const out: number[] = [];
    const err = await (async () => {
      for await (const l of client().sweepResults(SWEEP_ID)) {
        out.push(l.index);
      }
    })().catch((e: unknown) => e);
    expect(out).toEqual([0]);
    expect(err).toBeInstanceOf(MalformedResponseError);
    expect((err as Error).message).toContain("line 2 of the results is not valid JSON");
  });

  it("a line of the wrong shape, an HTML page and a problem are each typed", async () => {
    sequence("get", "/v1/sweeps/:id/results", [
      () => ndjson([new TextEncoder().encode(`${JSON.stringify({ index: 0, state: "completed" })}\n`)]),
      () => new HttpResponse("<html>proxy</html>", { status: 200, headers: { "content-type": "text/html" } }),
      () => problem(404, "not_found"),
    ]);
    const drain = async () => {
      for await (const _ of client({ attempts: 1 }).sweepResults(SWEEP_ID)) {
        // consume
      }
    };
    const shape = await drain().catch((e: unknown) => e);
    expect((shape as Error).message).toContain("line 1 of the results is not a sweep result line");
    await expect(drain()).rejects.toBeInstanceOf(MalformedResponseError);
    await expect(drain()).rejects.toMatchObject({ status: 404, code: "not_found" });
  });

  it("a connection cut mid-body is a NetworkError", async () => {
    sequence("get", "/v1/sweeps/:id/results", [
      () => {
        const body = new ReadableStream<Uint8Array>({
          start(controller) {
            controller.enqueue(new TextEncoder().encode(`${JSON.stringify(line(0))}\n`));
            controller.error(new TypeError("terminated"));
          },
        });
        return new HttpResponse(body, { status: 200, headers: { "content-type": "application/x-ndjson" } });
      },
    ]);
    const out: number[] = [];
    const err = await (async () => {
      for await (const l of client().sweepResults(SWEEP_ID)) {
        out.push(l.index);
      }
    })().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NetworkError);
  });
});

describe("sweepProgress under errors", () => {
  it("rides out 503s and dropped connections while following, then ends with the sweep", async () => {
    const done = {
      ...SWEEP,
      state: "completed",
      done: 2,
      counts: { completed: 2 },
      elements: [0, 1].map((index) => ({
        index,
        jobId: JOB_ID,
        name: `lr-${index}`,
        state: "completed",
        reason: null,
        code: null,
        attempt: 1,
        slurmJobId: `7_${index}`,
        exitCode: 0,
        labels: {},
      })),
      nextCursor: null,
    };
    const seen = sequence("get", "/v1/sweeps/:id", [
      () => problem(503, "unavailable"),
      () => HttpResponse.error(),
      () => problem(503, "unavailable"),
      () => HttpResponse.error(),
      () => problem(503, "unavailable"),
      () => HttpResponse.json(done),
    ]);
    const outages: number[] = [];
    const c = client({ attempts: 2, outageMs: 30_000, onOutage: (o) => outages.push(o.delayMs) });
    const out = [];
    for await (const el of c.sweepProgress(SWEEP_ID, { pollMs: 10 })) {
      out.push(el.index);
    }
    expect(out).toEqual([0, 1]);
    expect(outages.length).toBeGreaterThanOrEqual(1);
    expect(seen.length).toBeGreaterThanOrEqual(6);
  });

  it("gives up with a GatewayUnavailableError after outageMs, and a 404 ends it at once", async () => {
    sequence("get", "/v1/sweeps/:id", [() => HttpResponse.error()]);
    const err = await (async () => {
      for await (const _ of client({ attempts: 1, outageMs: 200 }).sweepProgress(SWEEP_ID)) {
        // nothing
      }
    })().catch((e: unknown) => e);
    expect((err as Error).name).toBe("GatewayUnavailableError");
    server.resetHandlers();
    const seen = sequence("get", "/v1/sweeps/:id", [() => problem(404, "not_found")]);
    const gone = await (async () => {
      for await (const _ of client().sweepProgress(SWEEP_ID)) {
        // nothing
      }
    })().catch((e: unknown) => e);
    expect(gone).toMatchObject({ status: 404, code: "not_found" });
    expect(seen).toHaveLength(1);
  });
});
