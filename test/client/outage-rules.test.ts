/**
 * The pure rules of riding out an outage, against msw: which answers count as "the gateway is not
 * there" (no response, 502/503/504, a proxy's HTML 502), Retry-After, the bound, and that a real
 * refusal (404, 422) or an abort ends a wait at once. Also: one terminal event of a retried attempt
 * does not end a wait (waitReached).
 */
import { HttpResponse, http } from "msw";
import { setupServer } from "msw/node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  GatewayUnavailableError,
  type OutageInfo,
  SlurmgateError,
  createClient,
  isRetryableStatus,
} from "../../client/index.ts";
import { waitReached } from "../../client/wait.ts";

const BASE = "http://gateway.test";
const server = setupServer();
beforeAll(() => server.listen({ onUnhandledFrame: "error" }));
afterEach(() => server.resetHandlers());
afterAll(() => server.close());

const ID = "job_01jd7x2k9m4q8r6t5v3w1y0z";
const job = (state: string, attempt = 1) => ({
  id: ID,
  owner: "alice",
  name: "t",
  state,
  reason: null,
  code: null,
  cluster: "hpc1",
  partition: "cpu",
  attempt,
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
});
const events = (state: string, seq: number, eventStates: string[], attempt = 1) =>
  HttpResponse.json({
    job: job(state, attempt),
    events: eventStates.map((s, i) => ({
      seq: seq + i,
      at: "2026-01-01T00:00:00.000Z",
      actor: "agent",
      type: "state",
      state: s,
      detail: null,
    })),
    lastSeq: seq + eventStates.length - 1,
  });
const problem = (status: number, headers: Record<string, string> = {}) =>
  new HttpResponse(JSON.stringify({ status, code: status === 404 ? "not_found" : "unavailable", title: "x" }), {
    status,
    headers: { "content-type": "application/problem+json", ...headers },
  });

function answers(list: (() => Response)[]) {
  let n = 0;
  server.use(http.get(`${BASE}/v1/jobs/:id/events`, () => list[Math.min(n++, list.length - 1)]!()));
  return () => n;
}

const fast = (extra = {}) => {
  const outages: OutageInfo[] = [];
  const client = createClient({
    baseUrl: BASE,
    token: "sgu_t",
    retry: { attempts: 1, baseDelayMs: 5, maxDelayMs: 20, onOutage: (o) => outages.push(o), ...extra },
  });
  return { client, outages };
};

describe("riding out an outage", () => {
  it("keeps a wait going through refused connections, 502, 503, 504 and a proxy's HTML page", async () => {
    const calls = answers([
      () => HttpResponse.error(),
      () => problem(502),
      () => problem(503),
      () => problem(504),
      () => new HttpResponse("<html>502 Bad Gateway</html>", { status: 502, headers: { "content-type": "text/html" } }),
      () => events("completed", 1, ["completed"]),
    ]);
    const { client, outages } = fast();
    expect((await client.wait(ID)).state).toBe("completed");
    expect(calls()).toBe(6);
    expect(outages).toHaveLength(5);
    expect(outages[0]?.downForMs).toBe(0);
  });

  it("waits at least as long as Retry-After says", async () => {
    answers([() => problem(503, { "retry-after": "1" }), () => events("completed", 1, ["completed"])]);
    const { client, outages } = fast();
    const started = Date.now();
    await client.wait(ID);
    expect(outages[0]?.delayMs).toBeGreaterThanOrEqual(1_000);
    expect(Date.now() - started).toBeGreaterThanOrEqual(990);
  });

  it("gives up after outageMs with a GatewayUnavailableError that says why", async () => {
    answers([() => HttpResponse.error()]);
    const { client } = fast({ outageMs: 300 });
    const started = Date.now();
    const err = await client.wait(ID).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GatewayUnavailableError);
    expect((err as Error).message).toMatch(
      /^gateway unreachable for \ds, giving up: cannot reach http:\/\/gateway\.test/,
    );
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it("does not ride out a real answer: a 404 ends the wait at once", async () => {
    const calls = answers([() => problem(404)]);
    const { client, outages } = fast();
    const err = await client.wait(ID).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SlurmgateError);
    expect(err).toMatchObject({ status: 404 });
    expect(calls()).toBe(1);
    expect(outages).toHaveLength(0);
  });

  it("stops at once when aborted during an outage", async () => {
    answers([() => HttpResponse.error()]);
    const { client } = fast({ baseDelayMs: 5_000, maxDelayMs: 5_000 });
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error("stop")), 100);
    const started = Date.now();
    const err = await client.wait(ID, { signal: controller.signal }).catch((e: unknown) => e);
    expect((err as Error).message).toBe("stop");
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it("a one-off log read does not ride out anything; a followed one does", async () => {
    let n = 0;
    server.use(
      http.get(`${BASE}/v1/jobs/:id/logs`, () =>
        n++ === 0
          ? problem(503)
          : HttpResponse.json({
              stream: "stdout",
              attempt: 1,
              attempts: 1,
              task: null,
              offset: 0,
              data: "hi\n",
              nextOffset: 3,
              complete: true,
            }),
      ),
    );
    const { client } = fast();
    const once = async () => {
      let text = "";
      for await (const t of client.logs(ID)) {
        text += t;
      }
      return text;
    };
    await expect(once()).rejects.toBeInstanceOf(SlurmgateError);
    n = 0;
    let followed = "";
    for await (const t of client.logs(ID, { follow: true })) {
      followed += t;
    }
    expect(followed).toBe("hi\n");
  });

  it("has one list of retryable statuses", () => {
    expect([408, 429, 502, 503, 504].every(isRetryableStatus)).toBe(true);
    expect([400, 401, 404, 409, 422, 500, 501].some(isRetryableStatus)).toBe(false);
  });
});

describe("wait and retried attempts", () => {
  it("judges by the job's current state, not by a terminal event a retry overtook", async () => {
    const calls = answers([
      () => events("queued", 5, ["running", "timeout", "queued"], 2),
      () => events("completed", 8, ["leased", "submitted", "running", "completed"], 2),
    ]);
    const { client } = fast();
    const done = await client.wait(ID, { pollSeconds: 1 });
    expect(done).toMatchObject({ state: "completed", attempt: 2 });
    expect(calls()).toBe(2);
  });

  it("still stops at a state asked for that an event passed through", () => {
    const targets = new Set(["running"] as const);
    expect(waitReached({ state: "queued" }, [{ state: "timeout" }], undefined)).toBe(false);
    expect(waitReached({ state: "completed" }, [], undefined)).toBe(true);
    expect(waitReached({ state: "pending" }, [{ state: "running" }, { state: "timeout" }], targets)).toBe(true);
    expect(waitReached({ state: "queued" }, [{ state: "timeout" }], targets)).toBe(false);
  });
});

describe("following logs across attempts", () => {
  it("moves on to the next attempt from its first byte once the earlier one is complete", async () => {
    const asked: string[] = [];
    server.use(
      http.get(`${BASE}/v1/jobs/:id/logs`, ({ request }) => {
        const q = new URL(request.url).searchParams;
        asked.push(`${q.get("attempt")}@${q.get("offset")}`);
        const attempt = Number(q.get("attempt") ?? 1);
        const data = attempt === 1 ? "one\n" : "two\n";
        const offset = Number(q.get("offset"));
        return HttpResponse.json({
          stream: "stdout",
          attempt,
          attempts: 2,
          task: null,
          offset,
          data: offset === 0 ? data : "",
          nextOffset: 4,
          complete: true,
        });
      }),
    );
    const { client } = fast();
    let text = "";
    for await (const t of client.logs(ID, { follow: true, offset: 0, attempt: undefined })) {
      text += t;
    }
    expect(text).toBe("one\ntwo\n");
    expect(asked).toEqual(["null@0", "2@0"]);
    asked.length = 0;
    let pinned = "";
    for await (const t of client.logs(ID, { follow: true, attempt: 1 })) {
      pinned += t;
    }
    expect(pinned).toBe("one\n");
    expect(asked).toEqual(["1@0"]);
  });
});
