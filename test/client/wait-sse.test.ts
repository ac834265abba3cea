/**
 * client.wait over server-sent events on a real gateway over HTTP: one stream for the whole wait
 * (no ?wait= long-polls), each event once across a cut connection (the job ending meanwhile), `until`, timeout; and (msw, the
 * client's own behaviour) the fall-back to long-poll when no stream can be had, for the rest of the wait.
 */
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import { HttpResponse, http } from "msw";
import { setupServer } from "msw/node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type JobEvent, type SlurmgateClient, WaitTimeoutError, createClient } from "../../client/index.ts";
import { createTestGateway } from "../helpers/gateway.ts";
import { seedWorld } from "./support/world.ts";

const SPEC = { name: "waited", command: ["true"] };

/** A fetch that records each request's path, query and Accept before sending it. */
function countingFetch() {
  const seen: { path: string; wait: string | null; accept: string }[] = [];
  const fetcher = (request: Request) => {
    const url = new URL(request.url);
    seen.push({ path: url.pathname, wait: url.searchParams.get("wait"), accept: request.headers.get("accept") ?? "" });
    return fetch(request);
  };
  return { seen, fetcher };
}

describe("client.wait over server-sent events (real gateway)", () => {
  let test: Awaited<ReturnType<typeof createTestGateway>>;
  let server: ReturnType<typeof serve>;
  let port = 0;
  let url = "";
  let adminToken = "";

  const listen = async (at: number) => {
    server = serve({ fetch: test.app.fetch, port: at, hostname: "127.0.0.1" });
    await new Promise<void>((resolve) => server.once("listening", () => resolve()));
    return (server.address() as AddressInfo).port;
  };

  beforeAll(async () => {
    test = await createTestGateway({ SLURMGATE_SSE_HEARTBEAT_SECONDS: "1" });
    port = await listen(0);
    url = `http://127.0.0.1:${port}`;
    adminToken = await test.user("root", true);
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it("completes over one stream: no long-polls, every event once, the finished job", async () => {
    const world = await seedWorld(url, adminToken, "ann");
    const { seen, fetcher } = countingFetch();
    const client = createClient({ baseUrl: url, token: world.userToken, fetch: fetcher });
    const job = await client.submit(SPEC);
    const events: JobEvent[] = [];
    const waiting = client.wait(job.id, { onEvent: (e, j) => events.push({ ...e, detail: j.id }) });
    await new Promise((r) => setTimeout(r, 300));
    await world.agent.start(job.id, "71");
    await world.agent.finish(job.id, "failed", 4);
    const done = await waiting;
    expect(done).toMatchObject({ id: job.id, state: "failed", exitCode: 4 });
    expect(events.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(events.map((e) => e.state)).toEqual(["queued", "leased", "submitted", "running", "failed"]);
    expect(events.every((e) => e.detail === job.id)).toBe(true);
    const eventRequests = seen.filter((r) => r.path.endsWith("/events"));
    expect(eventRequests).toHaveLength(1);
    expect(eventRequests[0]).toMatchObject({ accept: "text/event-stream", wait: "0" });
    expect(seen.filter((r) => r.wait !== null && r.wait !== "0")).toEqual([]);
  }, 60_000);

  it("resumes after the connection is cut mid-wait: each seq once, the right job", async () => {
    const world = await seedWorld(url, adminToken, "ben");
    const { seen, fetcher } = countingFetch();
    const client = createClient({ baseUrl: url, token: world.userToken, fetch: fetcher, retry: { outageMs: 30_000 } });
    const job = await client.submit(SPEC);
    const seqs: number[] = [];
    const waiting = client.wait(job.id, { onEvent: (e) => seqs.push(e.seq) });
    await world.agent.start(job.id, "72");
    await new Promise((r) => setTimeout(r, 500));
    // The gateway goes away with the stream open, events happen meanwhile, and it comes back.
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      (server as Server).closeAllConnections();
    });
    // Meanwhile the job ends (the agent reaches the app without the port), then the port is back.
    const agent = world.agent as unknown as { client: SlurmgateClient };
    const viaPort = agent.client;
    agent.client = createClient({ baseUrl: url, token: world.agentToken, fetch: async (r) => test.app.fetch(r) });
    await world.agent.finish(job.id, "completed");
    agent.client = viaPort;
    await new Promise((r) => setTimeout(r, 300));
    await listen(port);
    const done = await waiting;
    expect(done).toMatchObject({ id: job.id, state: "completed" });
    expect(seqs).toEqual([1, 2, 3, 4, 5]);
    const streams = seen.filter((r) => r.path.endsWith("/events"));
    expect(streams.length).toBeGreaterThanOrEqual(2);
    expect(streams.every((r) => r.accept === "text/event-stream" && r.wait === "0")).toBe(true);
  }, 60_000);

  it("until: running ends at running with the job as it is then; a timeout is a WaitTimeoutError on time", async () => {
    const world = await seedWorld(url, adminToken, "cat");
    const { seen, fetcher } = countingFetch();
    const client = createClient({ baseUrl: url, token: world.userToken, fetch: fetcher });
    const job = await client.submit(SPEC);
    const running = client.wait(job.id, { until: ["running"] });
    await world.agent.start(job.id, "73");
    expect(await running).toMatchObject({ id: job.id, state: "running", slurmJobId: "73" });

    const started = Date.now();
    const err = await client.wait(job.id, { timeout: 1_500 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WaitTimeoutError);
    expect((err as WaitTimeoutError).job).toMatchObject({ id: job.id, state: "running" });
    expect(Date.now() - started).toBeLessThan(5_000);
    // The stream was let go: the user's stream slots are all free again.
    const again = await client.wait(job.id, { until: ["running"], timeout: 10_000 });
    expect(again.state).toBe("running");
    const events = seen.filter((r) => r.path.endsWith("/events"));
    expect(events).toHaveLength(3);
    expect(events.every((r) => r.accept === "text/event-stream" && r.wait === "0")).toBe(true);
  }, 60_000);

  it("a retry's timeout does not end the wait; the final attempt does", async () => {
    const world = await seedWorld(url, adminToken, "dan");
    const { seen, fetcher } = countingFetch();
    const client = createClient({ baseUrl: url, token: world.userToken, fetch: fetcher });
    const job = await client.submit({
      ...SPEC,
      retries: { max: 1, onTimeout: true, onPreemption: false, onNodeFail: false },
    });
    let settled = false;
    const waiting = client.wait(job.id);
    waiting.finally(() => (settled = true)).catch(() => {});
    await world.agent.start(job.id, "74");
    await world.agent.finish(job.id, "timeout");
    await new Promise((r) => setTimeout(r, 1_000));
    expect(settled).toBe(false);
    world.agent.epochs.delete(job.id);
    await world.agent.start(job.id, "75");
    await world.agent.finish(job.id, "completed");
    expect(await waiting).toMatchObject({ state: "completed", attempt: 2, slurmJobId: "75" });
    expect(seen.filter((r) => r.path.endsWith("/events"))).toHaveLength(1);
  }, 60_000);
});

describe("client.wait falls back to long-poll when no stream can be had (msw)", () => {
  const BASE = "http://gw.test";
  const ID = "job_01jd7x2k9m4q8r6t5v3w1y0z";
  const server = setupServer();
  beforeAll(() => server.listen());
  afterAll(() => server.close());

  const job = (state: string, lastSeq: number) => ({
    id: ID,
    owner: "alice",
    name: "t",
    state,
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
    spec: null,
    result: null,
    lastSeq,
    createdAt: "2026-01-01T00:00:00.000Z",
    updatedAt: "2026-01-01T00:00:00.000Z",
  });
  const ev = (seq: number, state: string) => ({ seq, at: "", actor: "agent", type: "state", state });
  const client = () => createClient({ baseUrl: BASE, token: "sgu_t", retry: { attempts: 1, baseDelayMs: 5 } });

  /** Answers the events endpoint from `first` for stream requests and long-polls after; records both. */
  function gateway(first: () => Response) {
    const seen: { accept: string; after: string | null; wait: string | null }[] = [];
    server.resetHandlers(
      http.get(`${BASE}/v1/jobs/:id/events`, ({ request }) => {
        const u = new URL(request.url);
        const accept = request.headers.get("accept") ?? "";
        seen.push({ accept, after: u.searchParams.get("after"), wait: u.searchParams.get("wait") });
        if (accept.includes("text/event-stream")) {
          return first();
        }
        return u.searchParams.get("after") === "2"
          ? HttpResponse.json({ job: job("completed", 3), events: [ev(3, "completed")], lastSeq: 3 })
          : HttpResponse.json({ job: job("running", 2), events: [ev(1, "queued"), ev(2, "running")], lastSeq: 2 });
      }),
      http.get(`${BASE}/v1/jobs/:id`, () => HttpResponse.json(job("running", 2))),
    );
    return seen;
  }

  it("a JSON answer to the stream request is used as the first long-poll answer, and the wait stays on long-poll", async () => {
    const seen = gateway(() =>
      HttpResponse.json({ job: job("running", 2), events: [ev(1, "queued"), ev(2, "running")], lastSeq: 2 }),
    );
    const states: string[] = [];
    const done = await client().wait(ID, { onEvent: (e) => states.push(e.state ?? "") });
    expect(done.state).toBe("completed");
    expect(states).toEqual(["queued", "running", "completed"]);
    expect(seen.map((r) => [r.accept.includes("event-stream"), r.after, r.wait])).toEqual([
      [true, "0", "0"],
      [false, "2", "25"],
    ]);
  });

  it("406 and 415 to the stream request fall back to long-poll", async () => {
    for (const status of [406, 415]) {
      const seen = gateway(
        () =>
          new HttpResponse(JSON.stringify({ status, code: "not_acceptable", title: "no" }), {
            status,
            headers: { "content-type": "application/problem+json" },
          }),
      );
      expect((await client().wait(ID)).state).toBe("completed");
      expect(seen.filter((r) => r.accept.includes("event-stream"))).toHaveLength(1);
      expect(seen.filter((r) => r.wait === "25").length).toBeGreaterThanOrEqual(1);
    }
  });

  it("a fetch without streaming bodies (a stream's answer with no body) falls back to long-poll", async () => {
    const seen = gateway(() => HttpResponse.json({}));
    const buffering = createClient({
      baseUrl: BASE,
      token: "sgu_t",
      retry: { attempts: 1 },
      fetch: async (request) =>
        request.headers.get("accept")?.includes("text/event-stream")
          ? new Response(null, { headers: { "content-type": "text/event-stream" } })
          : fetch(request),
    });
    const states: string[] = [];
    const done = await buffering.wait(ID, { onEvent: (e) => states.push(e.state ?? "") });
    expect(done.state).toBe("completed");
    expect(states).toEqual(["queued", "running", "completed"]);
    expect(seen.map((r) => r.wait)).toEqual(["25", "25"]);
  });

  it("a stream that ends at once, again and again, is given up for long-poll (no tight reconnect loop)", async () => {
    const seen = gateway(() => new HttpResponse("retry: 10\n\n", { headers: { "content-type": "text/event-stream" } }));
    const states: string[] = [];
    const done = await client().wait(ID, { onEvent: (e) => states.push(e.state ?? "") });
    expect(done.state).toBe("completed");
    expect(states).toEqual(["queued", "running", "completed"]);
    expect(seen.filter((r) => r.accept.includes("event-stream"))).toHaveLength(3);
    expect(seen.filter((r) => r.wait === "25")).toHaveLength(2);
  });

  it("a stream of events with `until` met ends the wait with the job as fetched, and no long-poll", async () => {
    const body = [
      "retry: 1000",
      "",
      "id: 1",
      "event: state",
      `data: ${JSON.stringify({ ...ev(1, "queued"), jobId: ID })}`,
      "",
      ": keep-alive",
      "",
      "id: 2",
      "event: state",
      `data: ${JSON.stringify({ ...ev(2, "running"), jobId: ID })}`,
      "",
      "",
    ].join("\n");
    const seen = gateway(() => new HttpResponse(body, { headers: { "content-type": "text/event-stream" } }));
    const got: [number, string][] = [];
    const done = await client().wait(ID, { until: ["running"], onEvent: (e, j) => got.push([e.seq, j.state]) });
    expect(done.state).toBe("running");
    expect(got).toEqual([
      [1, "running"],
      [2, "running"],
    ]);
    expect(seen).toHaveLength(1);
    expect(seen[0]?.accept).toContain("text/event-stream");
  });
});
