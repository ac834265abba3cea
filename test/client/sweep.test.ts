/**
 * Sweeps through the client against a real gateway process: one request per sweep, the grid
 * reaching each element's env, labels and argv, final states in element order, progress read from
 * the sweep's counts, typed refusals, results as JSON lines, cancel, and owner-only reads. The
 * test plays the agent over HTTP to end elements.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createClient,
  isAbortError,
  type JobSpecInput,
  SlurmgateError,
  type SweepElement,
  WaitTimeoutError,
} from "../../client/index.ts";
import { MAX_SWEEP_ELEMENTS } from "../../schemas/sweep.ts";
import { type GatewayProcess, startGatewayProcess } from "../helpers/gateway-process.ts";
import { autoAgent, CLUSTER, seedWorld, type World } from "./support/world.ts";

let gw: GatewayProcess;
let world: World;

beforeAll(async () => {
  gw = await startGatewayProcess();
  world = await seedWorld(gw.url, gw.adminToken);
});
afterAll(async () => {
  await gw?.stop();
});

const spec = (name: string, extra: Partial<JobSpecInput> = {}): JobSpecInput => ({
  name,
  partition: "cpu",
  command: ["python", "train.py", "--lr", "{LR}"],
  resources: { time: "10m", cpusPerTask: 1 },
  ...extra,
});

/** A client that records every request as `METHOD path?query`. */
function countingClient(token = world.userToken) {
  const requests: string[] = [];
  const client = createClient({
    baseUrl: gw.url,
    token,
    fetch: (request) => {
      const url = new URL(request.url);
      requests.push(`${request.method} ${url.pathname}${url.search}`);
      return fetch(request);
    },
  });
  return { client, requests };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, test: () => boolean, ms = 10_000) {
  const deadline = Date.now() + ms;
  while (!test()) {
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}`);
    }
    await sleep(20);
  }
}

describe("sweep()", () => {
  it("sends a grid sweep as one request and returns every element's job in element order", async () => {
    const { client, requests } = countingClient();
    const jobs = await client.sweep(
      { base: spec("grid", { labels: { suite: "grid" } }), grid: { LR: ["0.1", "0.01"], SEED: [1, 2, 3] } },
      { maxParallel: 3, idempotencyKey: `grid-${Date.now()}` },
    );
    expect(requests.filter((r) => r.startsWith("POST "))).toEqual(["POST /v1/sweeps"]);
    expect(jobs).toHaveLength(6);
    expect(jobs.map((j) => j.sweep?.index)).toEqual([0, 1, 2, 3, 4, 5]);
    const sweepId = jobs[0]?.sweep?.id ?? "";
    // The sweep's id comes with the jobs, so a caller needs no element to find its sweep.
    expect(jobs.sweepId).toBe(sweepId);
    expect(jobs.every((j) => j.sweep?.id === sweepId && j.state === "queued")).toBe(true);
    const combos = jobs.map((j) => `${j.spec?.env.LR}/${j.spec?.env.SEED}`);
    expect([...combos].sort()).toEqual(["0.01/1", "0.01/2", "0.01/3", "0.1/1", "0.1/2", "0.1/3"]);
    for (const job of jobs) {
      expect(job.labels).toMatchObject({ suite: "grid", LR: job.spec?.env.LR, SEED: job.spec?.env.SEED });
      expect(job.spec?.command).toEqual(["python", "train.py", "--lr", job.spec?.env.LR]);
    }
    const sweep = await client.getSweep(sweepId);
    expect(sweep).toMatchObject({ id: sweepId, total: 6, maxParallel: 3, state: "active", done: 0 });
    expect(sweep.elements.map((e) => e.jobId)).toEqual(jobs.map((j) => j.id));
  });

  it("with wait, returns final states in element order, a failed element included, without one wait per element", async () => {
    const { client, requests } = countingClient();
    const running = autoAgent(world.agent);
    const done: number[] = [];
    const outcomes = ["completed", "failed", "completed", "completed"];
    const jobs = await client
      .sweep(
        outcomes.map((outcome, i) => spec(`waited-${i}`, { labels: { outcome } })),
        { wait: { timeout: 30_000, pollMs: 50 }, onDone: (_job, i) => done.push(i), concurrency: 2 },
      )
      .finally(() => running.stop());
    expect(jobs.map((j) => j.state)).toEqual(outcomes);
    expect(jobs.map((j) => j.name)).toEqual(["waited-0", "waited-1", "waited-2", "waited-3"]);
    expect(jobs[1]?.exitCode).toBe(1);
    expect([...done].sort()).toEqual([0, 1, 2, 3]);
    expect(requests.filter((r) => r.includes("/events"))).toEqual([]);
  });

  it("with a wait timeout, gives up with a WaitTimeoutError naming the sweep; the sweep keeps going", async () => {
    const started = Date.now();
    const err = await world.user
      .sweep([spec("slow-0"), spec("slow-1")], { wait: { timeout: 800, pollMs: 100 } })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WaitTimeoutError);
    const { job } = err as WaitTimeoutError;
    expect(job).toMatchObject({ id: expect.stringMatching(/^swp_/), state: "active" });
    expect((err as Error).message).toMatch(/^sweep swp_\S+ is still active after 1s \(0 of 2 done\)$/);
    expect(Date.now() - started).toBeLessThan(3_000);
    expect((await world.user.getSweep(job.id)).state).toBe("active");
    await world.user.cancelSweep(job.id);
  });

  it("replays the same key and body as the same sweep, and refuses the key with another body", async () => {
    const key = `replay-${Date.now()}`;
    const input = { base: spec("replay"), params: [{ env: { LR: "1" } }, { env: { LR: "2" } }] };
    const first = await world.user.sweep(input, { idempotencyKey: key });
    const again = await world.user.sweep(input, { idempotencyKey: key });
    expect(again.map((j) => j.id)).toEqual(first.map((j) => j.id));
    expect(first.map((j) => j.name)).toEqual(["replay-0", "replay-1"]);
    const err = await world.user
      .sweep({ ...input, params: [{ env: { LR: "3" } }] }, { idempotencyKey: key })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SlurmgateError);
    expect(err).toMatchObject({ status: 409, code: "idempotency_conflict" });
  });

  it("a grid past the limit is a typed 422 naming grid, and stores nothing", async () => {
    const values = (n: number) => Array.from({ length: n }, (_, i) => i);
    const side = Math.ceil(Math.sqrt(MAX_SWEEP_ELEMENTS)) + 1;
    const before = (await world.user.listPage({ pageSize: 500 })).items.length;
    const err = await world.user
      .sweep({ base: spec("huge"), grid: { A: values(side), B: values(side) } })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SlurmgateError);
    expect(err).toMatchObject({ status: 422, code: "validation_failed" });
    const fields = [(err as SlurmgateError).field, ...(err as SlurmgateError).errors.map((e) => e.field)];
    expect(fields.some((f) => f !== undefined && /(^|\.)grid(\.|$)/.test(f))).toBe(true);
    expect((await world.user.listPage({ pageSize: 500 })).items.length).toBe(before);
  });

  it("unknown fields, in the request and in a point, are named", async () => {
    const top = await world.user
      .createSweep({ base: spec("typo"), grid: { LR: [1] }, maxParallell: 2 } as never)
      .catch((e: unknown) => e as SlurmgateError);
    expect(top).toBeInstanceOf(SlurmgateError);
    expect(JSON.stringify((top as SlurmgateError).problem)).toContain("maxParallell");
    const point = await world.user
      .sweep({ base: spec("typo"), params: [{ env: { A: "1" } }, { resources: { time: "1h" } } as never] })
      .catch((e: unknown) => e as SlurmgateError);
    expect(point).toBeInstanceOf(SlurmgateError);
    const fields = [(point as SlurmgateError).field, ...(point as SlurmgateError).errors.map((e) => e.field)];
    expect(fields.some((f) => f?.includes("points.1"))).toBe(true);
  });
});

describe("sweepProgress", () => {
  it("yields each element once as it ends, reads element pages only when the counts move, and ends with the sweep", async () => {
    const created = await world.user.createSweep({
      specs: [0, 1, 2].map((i) => spec(`progress-${i}`)),
    });
    const { client, requests } = countingClient();
    const seen: SweepElement[] = [];
    const following = (async () => {
      for await (const element of client.sweepProgress(created.id, { pollMs: 50 })) {
        seen.push(element);
      }
    })();
    await sleep(600);
    const pageReads = () =>
      requests.filter((r) => r.startsWith(`GET /v1/sweeps/${created.id}`) && !r.includes("limit=1"));
    expect(seen).toEqual([]);
    expect(pageReads()).toEqual([]);
    expect(requests.length).toBeGreaterThanOrEqual(2);
    // Idle reads back off: well under one per 50 ms.
    expect(requests.length).toBeLessThan(10);

    const [a, b, c] = created.jobIds as [string, string, string];
    await world.agent.start(b);
    await world.agent.finish(b, "failed", 2);
    await until("element 1", () => seen.length === 1);
    expect(seen[0]).toMatchObject({ index: 1, jobId: b, state: "failed", exitCode: 2 });
    await world.agent.start(a);
    await world.agent.finish(a, "completed", 0);
    await world.agent.start(c);
    await world.agent.finish(c, "completed", 0);
    await following;
    expect(seen.map((e) => e.index).sort()).toEqual([0, 1, 2]);
    expect(seen.filter((e) => e.index === 1)).toHaveLength(1);
    // One page read per change at most (three changes, one final read).
    expect(pageReads().length).toBeLessThanOrEqual(4);
    // Already over: yields every element at once and ends.
    const replay: number[] = [];
    for await (const element of world.user.sweepProgress(created.id)) {
      replay.push(element.index);
    }
    expect(replay).toEqual([0, 1, 2]);
  }, 30_000);

  it("stops at once, mid-iteration, when its signal aborts", async () => {
    const created = await world.user.createSweep({ specs: [0, 1].map((i) => spec(`abort-${i}`)) });
    await world.agent.start(created.jobIds[0] as string);
    await world.agent.finish(created.jobIds[0] as string, "completed", 0);
    const controller = new AbortController();
    const seen: number[] = [];
    let abortedAt = 0;
    const err = await (async () => {
      for await (const element of world.user.sweepProgress(created.id, { signal: controller.signal, pollMs: 5_000 })) {
        seen.push(element.index);
        setTimeout(() => {
          abortedAt = Date.now();
          controller.abort();
        }, 100);
      }
    })().catch((e: unknown) => e);
    expect(seen).toEqual([0]);
    expect(isAbortError(err)).toBe(true);
    expect(Date.now() - abortedAt).toBeLessThan(1_000);
  });
});

describe("getSweep, sweepResults, cancelSweep, listSweeps", () => {
  it("pages elements in element order and streams one result line per element, in order, with its result", async () => {
    const created = await world.user.createSweep({ specs: [0, 1, 2].map((i) => spec(`results-${i}`)) });
    for (const [i, id] of created.jobIds.entries()) {
      await world.agent.start(id);
      await world.agent.report(id, {
        state: i === 1 ? "failed" : "completed",
        exitCode: i === 1 ? 3 : 0,
        result: { loss: i / 10 },
      });
    }
    const first = await world.user.getSweep(created.id, { limit: 2 });
    expect(first.elements.map((e) => e.index)).toEqual([0, 1]);
    expect(first.nextCursor).toBeTruthy();
    const second = await world.user.getSweep(created.id, { limit: 2, cursor: first.nextCursor ?? undefined });
    expect(second.elements.map((e) => e.index)).toEqual([2]);
    expect(second.nextCursor).toBeNull();
    // One element failed: the sweep never says completed.
    expect(second).toMatchObject({ state: "failed", done: 3, total: 3 });

    const lines = [];
    for await (const line of world.user.sweepResults(created.id)) {
      lines.push(line);
    }
    expect(lines.map((l) => [l.index, l.jobId, l.state, l.exitCode, l.result])).toEqual([
      [0, created.jobIds[0], "completed", 0, { loss: 0 }],
      [1, created.jobIds[1], "failed", 3, { loss: 0.1 }],
      [2, created.jobIds[2], "completed", 0, { loss: 0.2 }],
    ]);
  });

  it("cancels a queued sweep at once, and asks the agent to stop the elements it holds", async () => {
    const queued = await world.user.createSweep({ specs: [0, 1].map((i) => spec(`cancel-q-${i}`)) });
    const cancelled = await world.user.cancelSweep(queued.id);
    expect(cancelled).toMatchObject({ id: queued.id, state: "cancelled", done: 2, total: 2 });
    expect(cancelled.counts).toMatchObject({ cancelled: 2 });
    expect((await world.user.cancelSweep(queued.id)).state).toBe("cancelled");

    const live = await world.user.createSweep({ specs: [0, 1].map((i) => spec(`cancel-l-${i}`)) });
    const [a, b] = live.jobIds as [string, string];
    await world.agent.start(a);
    await world.agent.leaseJob(b);
    const asked = await world.user.cancelSweep(live.id);
    expect(asked.state).toBe("active");
    expect((await world.user.get(a)).cancelRequested).toBe(true);
    expect((await world.user.get(b)).cancelRequested).toBe(true);
    await world.agent.finish(a, "cancelled", 0);
    await world.agent.finish(b, "cancelled", 0);
    expect((await world.user.getSweep(live.id)).state).toBe("cancelled");
  });

  it("lists your sweeps newest first; another user's sweep is a 404 and not listed", async () => {
    const older = await world.user.createSweep({ specs: [spec("list-a")] });
    const newer = await world.user.createSweep({ specs: [spec("list-b")] });
    const ids: string[] = [];
    for await (const s of world.user.listSweeps({ pageSize: 1, max: 2 })) {
      ids.push(s.id);
    }
    expect(ids).toEqual([newer.id, older.id]);

    await world.admin.admin.users.upsert({ name: "mallory" });
    await world.admin.admin.grants.upsert({ user: "mallory", cluster: CLUSTER });
    const token = (await world.admin.admin.tokens.create({ kind: "user", user: "mallory" })).token;
    const mallory = createClient({ baseUrl: gw.url, token });
    await expect(mallory.getSweep(newer.id)).rejects.toMatchObject({ status: 404, code: "not_found" });
    await expect(mallory.cancelSweep(newer.id)).rejects.toMatchObject({ status: 404 });
    const drain = async () => {
      for await (const _ of mallory.sweepResults(newer.id)) {
        // nothing
      }
    };
    await expect(drain()).rejects.toMatchObject({ status: 404 });
    const theirs: string[] = [];
    for await (const s of mallory.listSweeps()) {
      theirs.push(s.id);
    }
    expect(theirs).toEqual([]);
  });
});
