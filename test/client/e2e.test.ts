/**
 * Every client helper against a real gateway process (no mocks). The test plays the agent over
 * HTTP to move jobs through their states and ship log bytes.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient, isAbortError, type JobSpecInput, SlurmgateError, WaitTimeoutError } from "../../client/index.ts";
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
  command: ["python", "train.py"],
  resources: { time: "10m", cpusPerTask: 1 },
  ...extra,
});

/** Counts requests per path, to prove waits are long-polls and not tight loops. */
function countingClient(token: string) {
  const counts = new Map<string, number>();
  const client = createClient({
    baseUrl: gw.url,
    token,
    fetch: (request) => {
      const path = new URL(request.url).pathname;
      counts.set(path, (counts.get(path) ?? 0) + 1);
      return fetch(request);
    },
  });
  return { client, counts };
}

describe("identity and clusters", () => {
  it("me() says who the token belongs to", async () => {
    expect(await world.user.me()).toMatchObject({ kind: "user", user: "alice", cluster: null });
    expect(await world.admin.me()).toMatchObject({ kind: "admin", user: "admin" });
  });

  it("clusters() lists the granted cluster with its partitions and a live agent", async () => {
    const [cluster, ...rest] = await world.user.clusters();
    expect(rest).toEqual([]);
    expect(cluster).toMatchObject({ name: CLUSTER, alive: true, partitions: ["cpu", "gpu"] });
  });

  it("a bad token is a typed 401", async () => {
    const client = createClient({ baseUrl: gw.url, token: "sgu_nope" });
    const err = await client.me().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SlurmgateError);
    expect(err).toMatchObject({ status: 401, code: "unauthorized", retryable: false });
  });
});

describe("submit, get, cancel", () => {
  it("submits with a generated Idempotency-Key and gets the job back with its events", async () => {
    const job = await world.user.submit(spec("get-me", { labels: { suite: "get" } }));
    expect(job).toMatchObject({ state: "queued", cluster: CLUSTER, partition: "cpu", owner: "alice" });
    const got = await world.user.get(job.id);
    expect(got.id).toBe(job.id);
    expect(got.events?.[0]).toMatchObject({ seq: 1, state: "queued" });
  });

  it("replays a submission with the same key and refuses the key with another body", async () => {
    const key = `replay-${Date.now()}`;
    const first = await world.user.submit(spec("replay"), { idempotencyKey: key });
    const again = await world.user.submit(spec("replay"), { idempotencyKey: key });
    expect(again.id).toBe(first.id);
    const err = await world.user.submit(spec("replay-other"), { idempotencyKey: key }).catch((e: unknown) => e);
    expect(err).toMatchObject({ status: 409, code: "idempotency_conflict", field: "header.idempotency-key" });
  });

  it("a refused spec is a SlurmgateError naming the field", async () => {
    const err = await world.user
      .submit(spec("bad-time", { resources: { time: "forever" } }))
      .then(() => undefined)
      .catch((e: unknown) => e as SlurmgateError);
    expect(err).toBeInstanceOf(SlurmgateError);
    if (!err) {
      return;
    }
    expect(err).toMatchObject({ status: 422, code: "validation_failed", field: "body.resources.time" });
    expect(err.problem.errors?.[0]?.field).toBe("body.resources.time");
    expect(err.message).toContain("(422 validation_failed)");
  });

  it("a missing job is a 404 not_found", async () => {
    const err = await world.user.get("job_00000000000000000000000000").catch((e: unknown) => e);
    expect(err).toMatchObject({ status: 404, code: "not_found" });
  });

  it("cancel() cancels a queued job and is idempotent", async () => {
    const job = await world.user.submit(spec("cancel-me"));
    const cancelled = await world.user.cancel(job.id);
    expect(cancelled.state).toBe("cancelled");
    expect((await world.user.cancel(job.id)).state).toBe("cancelled");
  });
});

describe("list", () => {
  it("iterates every page and filters by label and state", async () => {
    const tag = `page-${Date.now()}`;
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      ids.push((await world.user.submit(spec(`page-${i}`, { labels: { batch: tag } }))).id);
    }
    const seen: string[] = [];
    for await (const job of world.user.list({ label: { batch: tag }, pageSize: 2 })) {
      seen.push(job.id);
    }
    expect(seen.sort()).toEqual([...ids].sort());
    const page = await world.user.listPage({ label: `batch=${tag}`, pageSize: 2 });
    expect(page.items).toHaveLength(2);
    expect(page.nextCursor).toBeTruthy();
    const max = [];
    for await (const job of world.user.list({ label: { batch: tag }, state: "queued", pageSize: 2, max: 3 })) {
      max.push(job);
    }
    expect(max).toHaveLength(3);
  });
});

describe("wait (long-poll)", () => {
  it("resolves when the job ends, reports every event, and makes one request per event", async () => {
    const { client, counts } = countingClient(world.userToken);
    const job = await client.submit(spec("wait-me"));
    const states: string[] = [];
    const waiting = client.wait(job.id, { onEvent: (e) => e.state && states.push(e.state) });
    await new Promise((r) => setTimeout(r, 300));
    await world.agent.start(job.id);
    await world.agent.finish(job.id, "completed", 0);
    const done = await waiting;
    expect(done).toMatchObject({ id: job.id, state: "completed", exitCode: 0 });
    expect(states).toEqual(["queued", "leased", "submitted", "running", "completed"]);
    // history (1) + at most one request per transition; a tight poll would make dozens in 300 ms.
    expect(counts.get(`/v1/jobs/${job.id}/events`)).toBeLessThanOrEqual(6);
  });

  it("stops at a state asked for with `until`", async () => {
    const job = await world.user.submit(spec("until-running"));
    const waiting = world.user.wait(job.id, { until: ["running"] });
    await world.agent.start(job.id);
    expect((await waiting).state).toBe("running");
    await world.agent.finish(job.id, "failed", 3);
    const failed = await world.user.wait(job.id);
    expect(failed).toMatchObject({ state: "failed", exitCode: 3 });
  });

  it("gives up after `timeout` with a WaitTimeoutError holding the last state", async () => {
    const job = await world.user.submit(spec("timeout"));
    const started = Date.now();
    const err = await world.user.wait(job.id, { timeout: 1_200 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WaitTimeoutError);
    expect((err as WaitTimeoutError).job.state).toBe("queued");
    expect(Date.now() - started).toBeLessThan(1_900);
  });

  it("aborts the wait and the request in flight through an AbortSignal", async () => {
    const job = await world.user.submit(spec("abort"));
    const controller = new AbortController();
    const started = Date.now();
    setTimeout(() => controller.abort(), 300);
    const err = await world.user.wait(job.id, { signal: controller.signal }).catch((e: unknown) => e);
    expect(isAbortError(err)).toBe(true);
    expect(Date.now() - started).toBeLessThan(2_000);
  });
});

describe("logs", () => {
  it("follows stdout until the job ends, and reads stderr separately", async () => {
    const job = await world.user.submit(spec("logs"));
    await world.agent.start(job.id);
    await world.agent.log(job.id, "epoch 1\n");
    const chunks: string[] = [];
    const following = (async () => {
      for await (const text of world.user.logs(job.id, { follow: true })) {
        chunks.push(text);
      }
    })();
    await new Promise((r) => setTimeout(r, 300));
    await world.agent.log(job.id, "epoch 2 ✓\n");
    await world.agent.log(job.id, "oops\n", "stderr");
    await new Promise((r) => setTimeout(r, 200));
    await world.agent.log(job.id, "done\n");
    await world.agent.finish(job.id);
    await following;
    expect(chunks.join("")).toBe("epoch 1\nepoch 2 ✓\ndone\n");
    expect(chunks.length).toBeGreaterThanOrEqual(2);

    const stderr: string[] = [];
    for await (const text of world.user.logs(job.id, { stream: "stderr" })) {
      stderr.push(text);
    }
    expect(stderr.join("")).toBe("oops\n");
    const tail = await world.user.logChunk(job.id, { offset: 8 });
    expect(tail).toMatchObject({ data: "epoch 2 ✓\ndone\n", complete: true });
  });

  it("without follow returns what exists now and ends", async () => {
    const job = await world.user.submit(spec("logs-now"));
    await world.agent.start(job.id);
    await world.agent.log(job.id, "so far\n");
    const chunks: string[] = [];
    for await (const text of world.user.logs(job.id)) {
      chunks.push(text);
    }
    expect(chunks).toEqual(["so far\n"]);
  });

  it("a follow can be aborted", async () => {
    const job = await world.user.submit(spec("logs-abort"));
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 300);
    const err = await (async () => {
      for await (const _ of world.user.logs(job.id, { follow: true, signal: controller.signal })) {
        // nothing arrives
      }
    })().catch((e: unknown) => e);
    expect(isAbortError(err)).toBe(true);
  });
});

describe("sweep", () => {
  it("submits a base × params sweep in one request, waits for all, and is re-runnable", async () => {
    const tag = `sweep-${Date.now()}`;
    const input = {
      base: spec("lr", { labels: { sweep: tag }, env: { EPOCHS: "3" } }),
      params: ["0.1", "0.01", "0.001", "0.0001"].map((lr) => ({ env: { LR: lr }, labels: { lr } })),
    };
    const { client } = countingClient(world.userToken);
    const running = autoAgent(world.agent);
    const submitted: number[] = [];
    const jobs = await client.sweep(input, {
      concurrency: 2, // bounds only the reads of the jobs back
      wait: { timeout: 30_000 },
      idempotencyKey: tag,
      onSubmit: (_job, i) => {
        submitted.push(i);
      },
    });
    await running.stop();
    expect(jobs.map((j) => j.state)).toEqual(["completed", "completed", "completed", "completed"]);
    expect(jobs.map((j) => j.name)).toEqual(["lr-0", "lr-1", "lr-2", "lr-3"]);
    expect(jobs[1]?.spec?.env).toEqual({ EPOCHS: "3", LR: "0.01" });
    expect(jobs[1]?.labels).toEqual({ sweep: tag, lr: "0.01" });
    expect(submitted.sort()).toEqual([0, 1, 2, 3]);
    const again = await client.sweep(input, { idempotencyKey: tag });
    expect(again.map((j) => j.id)).toEqual(jobs.map((j) => j.id));
  });
});

describe("admin helpers", () => {
  it("manages users, tokens, clusters and grants", async () => {
    const { admin } = world.admin;
    await admin.users.upsert({ name: "bob" });
    expect((await admin.users.list()).map((u) => u.name)).toContain("bob");
    await admin.grants.upsert({ user: "bob", cluster: CLUSTER, partitions: ["cpu"] });
    expect(await admin.grants.list({ user: "bob" })).toEqual([{ user: "bob", cluster: CLUSTER, partitions: ["cpu"] }]);
    const created = await admin.tokens.create({ kind: "user", user: "bob", label: "bob-laptop" });
    const bob = createClient({ baseUrl: gw.url, token: created.token });
    expect((await bob.me()).user).toBe("bob");
    expect((await admin.tokens.list({ user: "bob" })).map((t) => t.id)).toContain(created.id);
    await admin.tokens.revoke(created.id);
    await expect(bob.me()).rejects.toMatchObject({ status: 401 });
    await admin.grants.remove("bob", CLUSTER);
    expect(await admin.grants.list({ user: "bob" })).toEqual([]);
    expect((await admin.clusters.list()).map((c) => c.name)).toEqual([CLUSTER]);
    await expect(world.user.admin.users.list()).rejects.toMatchObject({ status: 403, code: "forbidden" });
  });

  it("raw gives { data, error } for callers who want it", async () => {
    const { data, error } = await world.user.raw.GET("/v1/jobs/{id}", {
      params: { path: { id: "job_00000000000000000000000000" } },
    });
    expect(data).toBeUndefined();
    expect(error).toMatchObject({ status: 404, code: "not_found" });
  });
});
