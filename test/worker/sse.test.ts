/**
 * Event streams on the Worker in real workerd: a job's stream follows it to `end`, a stream ends at
 * SLURMGATE_SSE_MAX_SECONDS (the platform counts every database read of a request) and a reconnect
 * with Last-Event-ID resumes without a gap; the feed works as a long-poll there too.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { seedWorld, type World } from "../client/support/world.ts";
import { open } from "../helpers/sse-stream.ts";
import { startWorkerTarget, type WorkerTarget } from "../helpers/worker-target.ts";

describe("server-sent events on the Worker in workerd", () => {
  let target: WorkerTarget;
  let world: World;

  beforeAll(async () => {
    target = await startWorkerTarget({
      vars: {
        SLURMGATE_RATE_LIMIT_PER_SECOND: "0",
        SLURMGATE_SSE_MAX_SECONDS: "6",
        SLURMGATE_SSE_HEARTBEAT_SECONDS: "1",
      },
    });
    world = await seedWorld(target.baseUrl, target.adminToken, "alice");
  }, 90_000);
  afterAll(async () => target?.close());

  it("follows a job to `end`, and resumes after the stream's time limit from Last-Event-ID", async () => {
    const { id } = await world.user.submit({ name: "on-workers", command: ["true"] });
    const first = await open(`${target.baseUrl}/v1/jobs/${id}/events`, world.userToken);
    expect((await first.next()).id).toBe("1");
    await world.agent.leaseJob(id);
    expect(JSON.parse((await first.next()).data)).toMatchObject({ seq: 2, state: "leased" });
    await expect(first.next()).rejects.toThrow("stream ended");

    await world.agent.report(id, { state: "submitted", slurmJobId: "5" });
    const resumed = await open(`${target.baseUrl}/v1/jobs/${id}/events`, world.userToken, { "last-event-id": "2" });
    expect((await resumed.next()).id).toBe("3");
    await world.agent.report(id, { state: "running" });
    await world.agent.finish(id, "completed");
    expect([(await resumed.next()).id, (await resumed.next()).id]).toEqual(["4", "5"]);
    const end = await resumed.next();
    expect(end.event).toBe("end");
    expect(JSON.parse(end.data)).toMatchObject({ id, state: "completed" });
  }, 60_000);

  it("the feed's long-poll answers my next event", async () => {
    const auth = { authorization: `Bearer ${world.userToken}` };
    const now = await (await fetch(`${target.baseUrl}/v1/events`, { headers: auth })).json();
    const waiting = fetch(`${target.baseUrl}/v1/events?after=${now.cursor}&wait=10`, { headers: auth });
    const { id } = await world.user.submit({ name: "fed", command: ["true"] });
    const page = await (await waiting).json();
    expect(page.events.map((e: { jobId: string }) => e.jobId)).toContain(id);
  }, 30_000);
});
