/**
 * Long-polls answer at once when there is something to say, wake on the change they wait for
 * (not on the periodic re-check, which is set far away here), and return empty after `wait`.
 * GET /v1/jobs/{id} supports ETag / If-None-Match.
 */
import { describe, expect, it } from "vitest";
import { type LeaseBody, createWorld } from "./world.ts";

type EventsBody = { events: { seq: number; state?: string }[]; lastSeq: number; job: { state: string } };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function timed<T>(work: Promise<T>) {
  const started = performance.now();
  const value = await work;
  return { value, ms: performance.now() - started };
}

describe("long-polls", () => {
  it("job events: immediate when events exist, woken by a report, empty after wait", async () => {
    const w = await createWorld();
    w.deps.recheckMs = 30_000;
    const { id } = await w.submit(w.tokens.alice);

    const now = await timed(w.call<EventsBody>("GET", `/v1/jobs/${id}/events?after=0&wait=10`, w.tokens.alice));
    expect(now.ms).toBeLessThan(500);
    expect(now.value.body.events.map((e) => e.state)).toEqual(["queued"]);
    expect(now.value.body.lastSeq).toBe(1);

    const lease = (await w.lease(w.tokens.alphaAgent)).body.leases[0]!;
    const started = performance.now();
    const waiting = w.call<EventsBody>("GET", `/v1/jobs/${id}/events?after=2&wait=10`, w.tokens.alice);
    await sleep(150);
    await w.report(w.tokens.alphaAgent, [{ jobId: id, epoch: lease.epoch, state: "submitted", slurmJobId: "3" }]);
    const woken = await waiting;
    const ms = performance.now() - started;
    expect(woken.body.events.map((e) => [e.seq, e.state])).toEqual([[3, "submitted"]]);
    expect(woken.body.job.state).toBe("submitted");
    expect(ms).toBeGreaterThanOrEqual(140);
    expect(ms).toBeLessThan(2_000);

    const empty = await timed(w.call<EventsBody>("GET", `/v1/jobs/${id}/events?after=3&wait=1`, w.tokens.alice));
    expect(empty.value.body.events).toEqual([]);
    expect(empty.value.body.lastSeq).toBe(3);
    expect(empty.ms).toBeGreaterThanOrEqual(950);
    expect(empty.ms).toBeLessThan(3_000);
  });

  it("lease: answers as soon as a job is submitted during the wait", async () => {
    const w = await createWorld();
    w.deps.recheckMs = 30_000;
    const started = performance.now();
    const waiting = w.call<LeaseBody>("POST", "/v1/agent/lease", w.tokens.alphaAgent, { agentId: "a", wait: 10 });
    await sleep(150);
    const { id } = await w.submit(w.tokens.alice, { cluster: "alpha" });
    const res = await waiting;
    const ms = performance.now() - started;
    expect(res.body.leases.map((l) => l.jobId)).toEqual([id]);
    expect(ms).toBeGreaterThanOrEqual(140);
    expect(ms).toBeLessThan(2_000);
  });

  it("lease: a submit for another cluster does not end the wait", async () => {
    const w = await createWorld();
    w.deps.recheckMs = 30_000;
    const waiting = timed(w.call<LeaseBody>("POST", "/v1/agent/lease", w.tokens.alphaAgent, { agentId: "a", wait: 1 }));
    await sleep(100);
    await w.submit(w.tokens.alice, { cluster: "beta" });
    const res = await waiting;
    expect(res.value.body.leases).toEqual([]);
    expect(res.ms).toBeGreaterThanOrEqual(950);
  });

  it("logs: a waiting reader wakes when bytes arrive", async () => {
    const w = await createWorld();
    w.deps.recheckMs = 30_000;
    const { id } = await w.submit(w.tokens.alice);
    const lease = (await w.lease(w.tokens.alphaAgent)).body.leases[0]!;
    const waiting = timed(w.call<{ data: string }>("GET", `/v1/jobs/${id}/logs?wait=10`, w.tokens.alice));
    await sleep(100);
    await w.report(w.tokens.alphaAgent, [
      {
        jobId: id,
        epoch: lease.epoch,
        logs: [{ stream: "stdout", offset: 0, data: Buffer.from("hi\n").toString("base64") }],
      },
    ]);
    const res = await waiting;
    expect(res.value.body.data).toBe("hi\n");
    expect(res.ms).toBeLessThan(2_000);
  });

  it("GET /v1/jobs/{id} answers 304 to a matching If-None-Match until the job changes", async () => {
    const w = await createWorld();
    const { id } = await w.submit(w.tokens.alice);
    const first = await w.request("GET", `/v1/jobs/${id}`, { token: w.tokens.alice });
    const etag = first.headers.get("etag");
    expect(first.status).toBe(200);
    expect(etag).toMatch(/^W\/".+"$/);
    const same = await w.request("GET", `/v1/jobs/${id}`, {
      token: w.tokens.alice,
      headers: { "if-none-match": etag! },
    });
    expect(same.status).toBe(304);
    expect(await same.text()).toBe("");
    await w.lease(w.tokens.alphaAgent);
    const changed = await w.request("GET", `/v1/jobs/${id}`, {
      token: w.tokens.alice,
      headers: { "if-none-match": etag! },
    });
    expect(changed.status).toBe(200);
    expect(changed.headers.get("etag")).not.toBe(etag);
    expect(((await changed.json()) as { state: string }).state).toBe("leased");
  });
});
