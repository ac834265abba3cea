/**
 * client.watch and client.feed on a real gateway: events in order, once each, across a gateway
 * restart; the long-poll fallback when something between strips the stream; abort.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type FeedEvent, type WatchedEvent, createClient } from "../../client/index.ts";
import { type GatewayProcess, freePort, startGatewayProcess } from "../helpers/gateway-process.ts";
import { seedWorld } from "./support/world.ts";

const SPEC = { name: "watched", command: ["true"] };

/** Collects a generator's values and its return value. */
async function drain<T, R>(gen: AsyncGenerator<T, R>): Promise<{ values: T[]; result: R }> {
  const values: T[] = [];
  for (;;) {
    const step = await gen.next();
    if (step.done) {
      return { values, result: step.value };
    }
    values.push(step.value);
  }
}

describe("client.watch and client.feed", () => {
  const dir = mkdtempSync(join(tmpdir(), "slurmgate-watch-"));
  let gw: GatewayProcess | undefined;
  afterAll(async () => {
    await gw?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("follow a job and the feed through a gateway restart: every event once, in order, then the finished job", async () => {
    const port = String(await freePort());
    const dbUrl = `file:${join(dir, "db")}`;
    const env = { PORT: port, SLURMGATE_SSE_HEARTBEAT_SECONDS: "1" };
    gw = await startGatewayProcess(env, { dbUrl });
    const adminToken = gw.adminToken;
    const world = await seedWorld(gw.url, adminToken, "alice");
    const client = createClient({ baseUrl: gw.url, token: world.userToken, retry: { outageMs: 30_000 } });

    const feed = client.feed();
    const firstFeed = feed.next();
    const job = await client.submit(SPEC);
    const watched = drain(client.watch(job.id));
    expect((await firstFeed).value).toMatchObject({ jobId: job.id, state: "queued" });

    await world.agent.start(job.id, "31");
    // Both streams are open when the gateway goes away and comes back on the same port and database.
    await new Promise((r) => setTimeout(r, 500));
    await gw.stop();
    gw = await startGatewayProcess({ ...env, SLURMGATE_BOOTSTRAP_TOKEN: adminToken }, { dbUrl });
    await world.agent.finish(job.id, "failed", 2);

    const { values, result } = await watched;
    expect(values.map((e: WatchedEvent) => e.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(values.map((e) => e.state)).toEqual(["queued", "leased", "submitted", "running", "failed"]);
    expect(values.every((e) => e.jobId === job.id)).toBe(true);
    expect(result).toMatchObject({ id: job.id, state: "failed", exitCode: 2 });

    const rest: FeedEvent[] = [];
    while (rest.length < 4) {
      rest.push((await feed.next()).value as FeedEvent);
    }
    await feed.return(undefined);
    expect(rest.map((e) => e.state)).toEqual(["leased", "submitted", "running", "failed"]);
    const cursors = rest.map((e) => Number(e.cursor));
    expect(new Set(cursors).size).toBe(4);
    expect([...cursors].sort((a, b) => a - b)).toEqual(cursors);
  }, 120_000);
});

describe("client.watch's fallback and errors", () => {
  let gw: GatewayProcess;
  beforeAll(async () => {
    gw = await startGatewayProcess();
  });
  afterAll(async () => gw?.stop());

  it("falls back to long-poll when a proxy strips the stream request, and still ends with the job", async () => {
    const world = await seedWorld(gw.url, gw.adminToken, "bob");
    const seen: string[] = [];
    const client = createClient({
      baseUrl: gw.url,
      token: world.userToken,
      // Something between that only passes JSON: it rewrites Accept.
      fetch: (request) => {
        seen.push(request.headers.get("accept") ?? "");
        const headers = new Headers(request.headers);
        headers.set("accept", "application/json");
        return fetch(new Request(request, { headers }));
      },
    });
    const job = await client.submit(SPEC);
    const watched = drain(client.watch(job.id));
    await world.agent.start(job.id, "32");
    await world.agent.finish(job.id, "completed");
    const { values, result } = await watched;
    expect(seen).toContain("text/event-stream");
    expect(values.map((e) => e.state)).toEqual(["queued", "leased", "submitted", "running", "completed"]);
    expect(result.state).toBe("completed");
  }, 60_000);

  it("an abort ends a watch at once with the signal's reason; an unknown job is a typed 404", async () => {
    const world = await seedWorld(gw.url, gw.adminToken, "carol");
    const client = createClient({ baseUrl: gw.url, token: world.userToken });
    const job = await client.submit(SPEC);
    const controller = new AbortController();
    const gen = client.watch(job.id, { signal: controller.signal });
    expect((await gen.next()).value).toMatchObject({ seq: 1 });
    const pending = gen.next();
    controller.abort(new Error("user stopped"));
    await expect(pending).rejects.toThrow("user stopped");

    const missing = client.watch("job_00000000000000000000000000");
    await expect(missing.next()).rejects.toMatchObject({ status: 404, code: "not_found" });
  }, 30_000);
});
