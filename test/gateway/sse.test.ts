/**
 * Server-sent events on a real gateway process: a job's stream and the user feed, resumed with
 * Last-Event-ID after a drop and after a gateway restart, heartbeats, the per-user limit, and the
 * worst inputs.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SseMessage } from "../../client/sse.ts";
import { type Stream, open } from "../helpers/sse-stream.ts";
import { type World, seedWorld } from "../client/support/world.ts";
import { type GatewayProcess, freePort, startGatewayProcess } from "../helpers/gateway-process.ts";

const SPEC = { name: "sse", command: ["true"] };

async function submit(world: World): Promise<string> {
  return (await world.user.submit(SPEC)).id;
}

describe("server-sent events", () => {
  let gw: GatewayProcess;
  let world: World;

  beforeAll(async () => {
    gw = await startGatewayProcess({ SLURMGATE_SSE_HEARTBEAT_SECONDS: "1", SLURMGATE_SSE_MAX_PER_USER: "3" });
    world = await seedWorld(gw.url, gw.adminToken, "alice");
  });
  afterAll(async () => gw?.stop());

  it("streams a job's events as they happen, then `end` with the finished job, and closes", async () => {
    const id = await submit(world);
    const stream = await open(`${gw.url}/v1/jobs/${id}/events`, world.userToken);
    const first = await stream.next();
    expect(first).toMatchObject({ event: "state", id: "1" });
    expect(JSON.parse(first.data)).toMatchObject({ jobId: id, seq: 1, state: "queued" });

    await world.agent.start(id, "777");
    await world.agent.finish(id, "failed", 3);
    const states: string[] = [];
    const ids: string[] = [];
    for (;;) {
      const message = await stream.next();
      if (message.event === "end") {
        expect(JSON.parse(message.data)).toMatchObject({ id, state: "failed", exitCode: 3 });
        break;
      }
      ids.push(message.id ?? "");
      states.push(JSON.parse(message.data).state);
    }
    expect(states).toEqual(["leased", "submitted", "running", "failed"]);
    expect(ids).toEqual(["2", "3", "4", "5"]);
    await expect(stream.next()).rejects.toThrow("stream ended");
  }, 60_000);

  it("resumes after a dropped connection with Last-Event-ID: nothing lost, nothing repeated", async () => {
    const id = await submit(world);
    const first = await open(`${gw.url}/v1/jobs/${id}/events`, world.userToken);
    expect((await first.next()).id).toBe("1");
    await first.close();
    // Changes while nobody listens.
    await world.agent.start(id, "778");
    const again = await open(`${gw.url}/v1/jobs/${id}/events`, world.userToken, { "last-event-id": "1" });
    const seen = [await again.next(), await again.next(), await again.next()].map((m) => m.id);
    expect(seen).toEqual(["2", "3", "4"]);
    await world.agent.finish(id, "completed");
    expect((await again.next()).id).toBe("5");
    expect((await again.next()).event).toBe("end");
    await again.close();
  }, 60_000);

  it("a finished job's stream sends what is left after the cursor, then `end` at once", async () => {
    const id = await submit(world);
    await world.user.cancel(id);
    const stream = await open(`${gw.url}/v1/jobs/${id}/events?after=1`, world.userToken);
    const rest: SseMessage[] = [];
    for (let m = await stream.next(); m.event !== "end"; m = await stream.next()) {
      rest.push(m);
    }
    expect(rest.map((m) => JSON.parse(m.data).state).filter(Boolean)).toContain("cancelled");
    expect(rest.every((m) => Number(m.id) > 1)).toBe(true);
  }, 30_000);

  it("a retried attempt's ending is not the end: the stream follows the job to its final attempt", async () => {
    const { id } = await world.user.submit({ ...SPEC, retries: { max: 1, onTimeout: true, backoffSeconds: 0 } });
    const stream = await open(`${gw.url}/v1/jobs/${id}/events`, world.userToken);
    await world.agent.start(id, "780");
    await world.agent.finish(id, "timeout");
    const states: string[] = [];
    while (states.length < 6) {
      const m = await stream.next();
      expect(m.event).not.toBe("end");
      states.push(JSON.parse(m.data).state ?? "");
    }
    expect(states).toEqual(["queued", "leased", "submitted", "running", "timeout", "queued"]);
    world.agent.epochs.delete(id);
    await world.agent.start(id, "781");
    await world.agent.finish(id, "completed");
    const last: string[] = [];
    for (let m = await stream.next(); m.event !== "end"; m = await stream.next()) {
      last.push(JSON.parse(m.data).state ?? "");
    }
    expect(last).toEqual(["leased", "submitted", "running", "completed"]);
    await stream.close();
  }, 60_000);

  it("sends heartbeats on a quiet stream", async () => {
    const id = await submit(world);
    const stream = await open(`${gw.url}/v1/jobs/${id}/events`, world.userToken, {}, true);
    const kinds: string[] = [];
    for (let i = 0; i < 3; i++) {
      const m = await stream.next();
      kinds.push(m.comment === undefined ? m.event : "comment");
    }
    expect(kinds).toEqual(["state", "comment", "comment"]);
    await stream.close();
  }, 30_000);

  it("the feed carries every event of my jobs in order and none of another user's", async () => {
    const bob = await seedWorld(gw.url, gw.adminToken, "bob");
    const feed = await open(`${gw.url}/v1/events`, world.userToken);
    const mine = await submit(world);
    const theirs = await submit(bob);
    await world.agent.start(mine, "779");
    // Alice's other jobs may move too (the fake agent leases all that is queued); Bob's never show.
    const got: { jobId: string; state?: string; cursor: string }[] = [];
    while (got.length < 4) {
      const m = await feed.next();
      const event = JSON.parse(m.data);
      expect(m.id).toBe(event.cursor);
      expect(event.jobId).not.toBe(theirs);
      if (event.jobId === mine) {
        got.push(event);
      }
    }
    expect(got.map((e) => [e.jobId, e.state])).toEqual([
      [mine, "queued"],
      [mine, "leased"],
      [mine, "submitted"],
      [mine, "running"],
    ]);
    const cursors = got.map((e) => Number(e.cursor));
    expect([...cursors].sort((a, b) => a - b)).toEqual(cursors);
    await feed.close();

    // Resumed from the second event: the third and fourth again, then what happened since.
    await world.agent.finish(mine, "completed");
    const resumed = await open(`${gw.url}/v1/events`, world.userToken, { "last-event-id": got[1]!.cursor });
    const after: { jobId: string; state?: string }[] = [];
    while (after.length < 3) {
      const event = JSON.parse((await resumed.next()).data);
      if (event.jobId === mine) {
        after.push(event);
      }
    }
    expect(after.map((e) => e.state)).toEqual(["submitted", "running", "completed"]);
    await resumed.close();
  }, 60_000);

  it("the feed as a long-poll: waits for my next event and answers the cursor to continue from", async () => {
    const auth = { authorization: `Bearer ${world.userToken}` };
    const now = await (await fetch(`${gw.url}/v1/events`, { headers: auth })).json();
    expect(now.events).toEqual([]);
    const waiting = fetch(`${gw.url}/v1/events?after=${now.cursor}&wait=10`, { headers: auth });
    await new Promise((r) => setTimeout(r, 300));
    const id = await submit(world);
    const page = await (await waiting).json();
    expect(page.events.map((e: { jobId: string }) => e.jobId)).toEqual([id]);
    expect(Number(page.cursor)).toBeGreaterThan(Number(now.cursor));
  }, 30_000);

  it("limits open streams per user (429 naming the limit) and frees a slot when a client leaves", async () => {
    const dave = await seedWorld(gw.url, gw.adminToken, "dave");
    const streams = await Promise.all([1, 2, 3].map(() => open(`${gw.url}/v1/events`, dave.userToken)));
    const res = await fetch(`${gw.url}/v1/events`, {
      headers: { authorization: `Bearer ${dave.userToken}`, accept: "text/event-stream" },
    });
    expect(res.status).toBe(429);
    expect(res.headers.get("content-type")).toContain("application/problem+json");
    expect((await res.json()).detail).toContain("at most 3");
    await streams[0]!.close();
    let reopened: Stream | undefined;
    for (let i = 0; i < 50 && !reopened; i++) {
      reopened = await open(`${gw.url}/v1/events`, dave.userToken).catch(async () => {
        await new Promise((r) => setTimeout(r, 100));
        return undefined;
      });
    }
    expect(reopened?.status).toBe(200);
    await Promise.all([reopened!, streams[1]!, streams[2]!].map((s) => s.close()));
  }, 30_000);

  it("refuses a bad Last-Event-ID, another user's job, and a missing token", async () => {
    const id = await submit(world);
    const bad = await fetch(`${gw.url}/v1/jobs/${id}/events`, {
      headers: { authorization: `Bearer ${world.userToken}`, accept: "text/event-stream", "last-event-id": "1; DROP" },
    });
    expect(bad.status).toBe(422);
    expect(JSON.stringify(await bad.json())).toContain("last-event-id");

    const bob = await seedWorld(gw.url, gw.adminToken, "bob2");
    const theirs = await fetch(`${gw.url}/v1/jobs/${id}/events`, {
      headers: { authorization: `Bearer ${bob.userToken}`, accept: "text/event-stream" },
    });
    expect(theirs.status).toBe(404);
    const anonymous = await fetch(`${gw.url}/v1/events`, { headers: { accept: "text/event-stream" } });
    expect(anonymous.status).toBe(401);
    const unknownQuery = await fetch(`${gw.url}/v1/events?since=3`, {
      headers: { authorization: `Bearer ${world.userToken}` },
    });
    expect(unknownQuery.status).toBe(422);
    expect(JSON.stringify(await unknownQuery.json())).toContain("since");
  }, 30_000);
});

describe("event streams across a gateway restart and their time limit", () => {
  const dir = mkdtempSync(join(tmpdir(), "slurmgate-sse-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("a stream cut by a restart resumes on the new process from Last-Event-ID without a gap", async () => {
    const port = String(await freePort());
    const env = { PORT: port, SLURMGATE_SSE_MAX_SECONDS: "5" };
    const dbUrl = `file:${join(dir, "db")}`;
    let gw = await startGatewayProcess(env, { dbUrl });
    const world = await seedWorld(gw.url, gw.adminToken, "carol");
    const id = await submit(world);
    const stream = await open(`${gw.url}/v1/jobs/${id}/events`, world.userToken);
    expect((await stream.next()).id).toBe("1");
    await world.agent.leaseJob(id);
    expect((await stream.next()).id).toBe("2");

    const started = Date.now();
    // The stream ends by itself after SLURMGATE_SSE_MAX_SECONDS; clients reconnect.
    await expect(stream.next()).rejects.toThrow("stream ended");
    expect(Date.now() - started).toBeLessThan(8_000);

    await gw.stop().catch(() => {});
    gw = await startGatewayProcess({ ...env, SLURMGATE_BOOTSTRAP_TOKEN: gw.adminToken }, { dbUrl });
    await world.agent.report(id, { state: "submitted", slurmJobId: "9" });
    const resumed = await open(`${gw.url}/v1/jobs/${id}/events`, world.userToken, { "last-event-id": "2" });
    const next = await resumed.next();
    expect(next.id).toBe("3");
    expect(JSON.parse(next.data).state).toBe("submitted");
    await resumed.close();
    await gw.stop();
  }, 90_000);
});
