/**
 * Sweeps over the real HTTP app: expansion (specs, base × points × grid), every element a job,
 * refusals all at once by element path, idempotency, ownership, the state fold, paging, the
 * ndjson results, cancel of the whole sweep and of one element, and corrupt element rows.
 */
import { describe, expect, it } from "vitest";
import { MAX_SWEEP_ELEMENTS } from "../../schemas/index.ts";
import { foldSweepState } from "../../gateway/services/sweeps.ts";
import { type World, createWorld, expectProblemShape, spec } from "./world.ts";

type Created = { id: string; jobIds: string[]; total: number; state: string; counts: Record<string, number> };
type Element = { index: number; jobId: string; name: string; state: string; labels: Record<string, string> };
type Detail = Created & { elements: Element[]; nextCursor: string | null; done: number; updatedAt: string };
type Problem = { code: string; field: string; detail: string; errors: { field: string; message: string }[] };
type StoredJob = {
  id: string;
  name: string;
  state: string;
  code: string | null;
  labels: Record<string, string>;
  spec: { command: string[]; env: Record<string, string> } | null;
  sweep: { id: string; index: number } | null;
};

const submitSweep = (w: World, body: unknown, token = w.tokens.alice, headers?: Record<string, string>) =>
  w.call<Created & Problem>("POST", "/v1/sweeps", token, body, headers);

async function created(w: World, body: unknown, token = w.tokens.alice): Promise<Created> {
  const res = await submitSweep(w, body, token);
  if (res.status !== 201) {
    throw new Error(`sweep refused: ${res.status} ${JSON.stringify(res.body)}`);
  }
  return res.body;
}

async function count(w: World, sql: string): Promise<number> {
  return Number((await w.db.client.execute(sql)).rows[0]?.n);
}

async function jobsOf(w: World, ids: string[]): Promise<StoredJob[]> {
  const out: StoredJob[] = [];
  for (const id of ids) {
    out.push((await w.call<StoredJob>("GET", `/v1/jobs/${id}`, w.tokens.alice)).body);
  }
  return out;
}

/** Leases every queued element on alpha and reports each element's state as given. */
async function drive(w: World, sweep: Created, states: Record<number, Record<string, unknown>>) {
  const leased = await w.lease(w.tokens.alphaAgent, "agent-1", { max: 100 });
  const epochs = new Map(leased.body.leases.map((l) => [l.jobId, l.epoch]));
  const reports = Object.entries(states).map(([index, report]) => {
    const jobId = sweep.jobIds[Number(index)]!;
    return { jobId, epoch: epochs.get(jobId), ...report };
  });
  const res = await w.report(w.tokens.alphaAgent, reports);
  expect(res.body.outcomes.map((o) => o.status)).toEqual(reports.map(() => "applied"));
  return epochs;
}

describe("POST /v1/sweeps: expansion", () => {
  it("stores a list of specs as jobs in element order, each a job with sweep {id, index}", async () => {
    const w = await createWorld();
    const specs = ["a", "b", "c"].map((name) => spec({ name, cluster: "alpha", labels: { who: name } }));
    const res = await submitSweep(w, { name: "abc", specs });
    expect(res.status).toBe(201);
    expect(res.headers.get("location")).toBe(`/v1/sweeps/${res.body.id}`);
    expect(res.body).toMatchObject({ name: "abc", total: 3, state: "active", counts: { queued: 3 }, done: 0 });
    expect(res.body.id).toMatch(/^swp_/);
    expect(res.body.jobIds).toHaveLength(3);
    const jobs = await jobsOf(w, res.body.jobIds);
    expect(jobs.map((j) => [j.name, j.state, j.sweep, j.labels])).toEqual([
      ["a", "queued", { id: res.body.id, index: 0 }, { who: "a" }],
      ["b", "queued", { id: res.body.id, index: 1 }, { who: "b" }],
      ["c", "queued", { id: res.body.id, index: 2 }, { who: "c" }],
    ]);
    const events = (await w.job(res.body.jobIds[2]!)).events;
    expect(events).toEqual([
      expect.objectContaining({
        seq: 1,
        type: "state",
        state: "queued",
        actor: "user:alice",
        detail: "routed to alpha",
      }),
    ]);
    // A job on its own is no element; label filters find elements like any job.
    const plain = await w.submit(w.tokens.alice);
    expect((await w.job(plain.id)) as unknown as StoredJob).toMatchObject({ sweep: null });
    const labelled = await w.call<{ items: { id: string }[] }>("GET", "/v1/jobs?label=who%3Db", w.tokens.alice);
    expect(labelled.body.items.map((j) => j.id)).toEqual([res.body.jobIds[1]]);
  });

  it("merges points over the base: env and labels key by key, command replaced, default names", async () => {
    const w = await createWorld();
    const sweep = await created(w, {
      base: spec({ name: "train", command: ["python", "t.py"], env: { A: "base", B: "base" }, labels: { p: "x" } }),
      points: [{ env: { B: "p0" } }, { name: "custom", command: ["python", "other.py"], labels: { q: "1" } }, {}],
    });
    const jobs = await jobsOf(w, sweep.jobIds);
    expect(jobs.map((j) => [j.name, j.spec?.command, j.spec?.env, j.labels])).toEqual([
      ["train-0", ["python", "t.py"], { A: "base", B: "p0" }, { p: "x" }],
      ["custom", ["python", "other.py"], { A: "base", B: "base" }, { p: "x", q: "1" }],
      ["train-2", ["python", "t.py"], { A: "base", B: "base" }, { p: "x" }],
    ]);
    expect(sweep.total).toBe(3);
  });

  it("expands a grid: every combination, points outer, last name fastest; env, labels and {NAME} in argv", async () => {
    const w = await createWorld();
    const sweep = await created(w, {
      base: spec({ name: "g", command: ["run", "--lr={LR}", "--seed={SEED}", "{UNKNOWN}"], labels: { p: "x" } }),
      points: [{ env: { P: "0" } }, { env: { P: "1" } }],
      grid: { LR: [0.1, 0.01], SEED: [1, true, "s"] },
    });
    expect(sweep.total).toBe(12);
    const jobs = await jobsOf(w, sweep.jobIds);
    const seen = jobs.map((j) => `${j.spec?.env.P}/${j.spec?.env.LR}/${j.spec?.env.SEED}`);
    expect(seen).toEqual([
      "0/0.1/1",
      "0/0.1/true",
      "0/0.1/s",
      "0/0.01/1",
      "0/0.01/true",
      "0/0.01/s",
      "1/0.1/1",
      "1/0.1/true",
      "1/0.1/s",
      "1/0.01/1",
      "1/0.01/true",
      "1/0.01/s",
    ]);
    expect(jobs[4]).toMatchObject({
      name: "g-4",
      labels: { p: "x", LR: "0.01", SEED: "true" },
      spec: { command: ["run", "--lr=0.01", "--seed=true", "{UNKNOWN}"] },
    });
  });

  it("refuses unknown fields at every level, each by name", async () => {
    const w = await createWorld();
    const res = await submitSweep(w, {
      bogus: 1,
      base: { ...spec(), resources: { cpus: 2 } },
      points: [{ nmae: "x" }],
      grid: { LR: [1] },
    });
    const problem = expectProblemShape(res, 422) as unknown as Problem;
    expect(problem.code).toBe("validation_failed");
    expect(res.body.errors.map((e) => e.field).sort()).toEqual(
      ["body.base.resources.cpus", "body.bogus", "body.points.0.nmae"].sort(),
    );
    const listed = await submitSweep(w, { specs: [spec(), { ...spec(), walltime: "1h" }] });
    expect(listed.status).toBe(422);
    expect(listed.body.errors.map((e) => e.field)).toEqual(["body.specs.1.walltime"]);
    expect(await count(w, "SELECT count(*) AS n FROM jobs")).toBe(0);
  });

  it("lists every violation at once with the element's path, and stores nothing", async () => {
    const w = await createWorld();
    const res = await submitSweep(w, {
      specs: [
        spec({ name: "ok" }),
        spec({ name: "big", partition: "gpu", resources: { gpus: { count: 9 } } }),
        spec({ name: "fine" }),
        spec({ name: "pinned", cluster: "nowhere" }),
        spec({ name: "slow", cluster: "alpha", partition: "short", resources: { time: "2h" } }),
      ],
    });
    expectProblemShape(res, 422);
    const fields = res.body.errors.map((e) => e.field);
    expect(fields).toEqual(
      expect.arrayContaining([
        "body.specs.1.resources.gpus.count",
        "body.specs.3.cluster",
        "body.specs.4.resources.time",
      ]),
    );
    expect(fields.some((f) => f.startsWith("body.specs.0") || f.startsWith("body.specs.2"))).toBe(false);
    expect(res.body.detail).toMatch(/problems: \(1\)/);

    const expanded = await submitSweep(w, {
      base: spec({ name: "b" }),
      points: [{}, { env: { SLURM_JOB_ID: "1" } }],
      grid: { _LR: [1], N: ["x".repeat(200)] },
    });
    expect(expanded.status).toBe(422);
    const byField = Object.fromEntries(expanded.body.errors.map((e) => [e.field, e.message]));
    expect(Object.keys(byField).sort()).toEqual(
      ["body.grid.N", "body.grid._LR", "body.points.1.env.SLURM_JOB_ID"].sort(),
    );
    expect(byField["body.grid._LR"]).toMatch(/_LR: label keys/);
    // A value that makes an argv item too long is the grid's fault, named by the grid.
    const long = await submitSweep(w, {
      base: spec({ name: "b", command: ["run", "{V}".repeat(170)] }),
      grid: { V: ["v".repeat(100)] },
    });
    expect(long.status).toBe(422);
    expect(long.body.errors.map((e) => e.field)).toEqual(["body.grid"]);
    // A fault of the base is listed once, not once per element.
    const fromBase = await submitSweep(w, {
      base: spec({ name: "x", partition: "gpu", resources: { gpus: { count: 9 } } }),
      grid: { I: [1, 2, 3, 4] },
    });
    expect(fromBase.status).toBe(422);
    expect(new Set(fromBase.body.errors.map((e) => e.field))).toEqual(new Set(["body.base.resources.gpus.count"]));
    expect(await count(w, "SELECT count(*) AS n FROM jobs")).toBe(0);
    expect(await count(w, "SELECT count(*) AS n FROM sweeps")).toBe(0);
  });

  it("refuses a body that is not JSON with 415 problem+json, and malformed JSON with 400", async () => {
    const w = await createWorld();
    const wrong = await w.request("POST", "/v1/sweeps", {
      token: w.tokens.alice,
      body: JSON.stringify({ specs: [spec()] }),
      headers: { "content-type": "text/plain" },
    });
    expect(wrong.status).toBe(415);
    expect(wrong.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    expect(((await wrong.json()) as Problem).field).toBe("header.content-type");
    const broken = await w.request("POST", "/v1/sweeps", { token: w.tokens.alice, body: "{specs: [" });
    expect(broken.status).toBe(400);
  });

  it(`refuses more than ${MAX_SWEEP_ELEMENTS} elements with 422 naming grid or points, before expanding`, async () => {
    const w = await createWorld();
    const big = Array.from({ length: 1_000 }, (_, i) => i);
    const grid = await submitSweep(w, { base: spec(), grid: { A: big, B: big, C: big } });
    expectProblemShape(grid, 422);
    expect(grid.body.field).toBe("body.grid");
    expect(grid.body.detail).toMatch(/1000000000 elements/);
    const points = await submitSweep(w, {
      base: spec(),
      points: Array.from({ length: 101 }, () => ({})),
      grid: { A: Array.from({ length: 100 }, (_, i) => i) },
    });
    expect([points.status, points.body.field]).toEqual([422, "body.grid"]);
    const listed = await submitSweep(w, { specs: Array.from({ length: MAX_SWEEP_ELEMENTS + 1 }, () => spec()) });
    expect(listed.status).toBe(422);
    expect(listed.body.field).toBe("body.specs");
    const neither = await submitSweep(w, { name: "x" });
    expect([neither.status, neither.body.field]).toEqual([422, "body.specs"]);
    const both = await submitSweep(w, { specs: [spec()], base: spec(), grid: { A: [1] } });
    expect([both.status, both.body.field]).toEqual([422, "body.base"]);
    const bare = await submitSweep(w, { base: spec() });
    expect([bare.status, bare.body.field]).toEqual([422, "body.points"]);
    expect(await count(w, "SELECT count(*) AS n FROM jobs")).toBe(0);
  });

  it("counts every element against the per-user cap of live jobs", async () => {
    const w = await createWorld({ SLURMGATE_MAX_QUEUED_PER_USER: "10" });
    for (let i = 0; i < 3; i++) {
      await w.submit(w.tokens.alice);
    }
    const over = await submitSweep(w, { base: spec(), grid: { I: [1, 2, 3, 4, 5, 6, 7, 8] } });
    expectProblemShape(over, 429);
    expect(over.headers.get("retry-after")).toBe("30");
    expect(await count(w, "SELECT count(*) AS n FROM jobs")).toBe(3);
    const fits = await submitSweep(w, { base: spec(), grid: { I: [1, 2, 3, 4, 5, 6, 7] } });
    expect(fits.status).toBe(201);
    const single = await w.call("POST", "/v1/jobs", w.tokens.alice, spec());
    expect(single.status).toBe(429);
    // More than the cap itself can never fit: no point in retrying.
    const never = await submitSweep(
      w,
      { base: spec(), grid: { I: Array.from({ length: 11 }, (_, i) => i) } },
      w.tokens.bob,
    );
    expectProblemShape(never, 422);
    expect(never.body.detail).toMatch(/11 jobs at once is more than the 10/);
  });
});

describe("POST /v1/sweeps: Idempotency-Key", () => {
  it("answers the same sweep for the same key and body, duplicates nothing, and refuses another body", async () => {
    const w = await createWorld();
    const headers = { "idempotency-key": "grid-1" };
    const body = { base: spec(), grid: { LR: [1, 2, 3] } };
    const first = await submitSweep(w, body, w.tokens.alice, headers);
    expect(first.status).toBe(201);
    const again = await submitSweep(w, { grid: { LR: [1, 2, 3] }, base: spec() }, w.tokens.alice, headers);
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(first.body.id);
    expect(again.body.jobIds).toEqual(first.body.jobIds);
    expect(await count(w, "SELECT count(*) AS n FROM jobs")).toBe(3);
    expect(await count(w, "SELECT count(*) AS n FROM sweeps")).toBe(1);
    const other = await submitSweep(w, { base: spec(), grid: { LR: [1, 2] } }, w.tokens.alice, headers);
    expectProblemShape(other, 409);
    expect(other.body.code).toBe("idempotency_conflict");
    // Keys are per user.
    const bobs = await submitSweep(w, body, w.tokens.bob, headers);
    expect(bobs.status).toBe(201);
    expect(bobs.body.id).not.toBe(first.body.id);
  });

  it("stores one sweep for 10 concurrent requests with one key", async () => {
    const w = await createWorld();
    const headers = { "idempotency-key": "burst" };
    const body = { base: spec(), grid: { LR: [1, 2, 3] } };
    const results = await Promise.all(Array.from({ length: 10 }, () => submitSweep(w, body, w.tokens.alice, headers)));
    expect(results.map((r) => r.status).sort()).toEqual([200, 200, 200, 200, 200, 200, 200, 200, 200, 201]);
    expect(new Set(results.map((r) => r.body.id)).size).toBe(1);
    expect(await count(w, "SELECT count(*) AS n FROM jobs")).toBe(3);
  });
});

describe("reading sweeps", () => {
  it("hides another user's sweep (404 on every route) and shows it to an admin", async () => {
    const w = await createWorld();
    const sweep = await created(w, { specs: [spec()] });
    for (const [method, path] of [
      ["GET", `/v1/sweeps/${sweep.id}`],
      ["GET", `/v1/sweeps/${sweep.id}/results`],
      ["POST", `/v1/sweeps/${sweep.id}/cancel`],
      ["GET", "/v1/sweeps/swp_00000000000000000000000000"],
      ["GET", "/v1/sweeps/not-an-id"],
    ] as const) {
      const res = await w.request(method, path, { token: w.tokens.bob });
      expect({ path, status: res.status }).toEqual({ path, status: 404 });
    }
    expect((await w.call<Detail>("GET", `/v1/sweeps/${sweep.id}`, w.tokens.admin)).status).toBe(200);
    expect((await w.job(sweep.jobIds[0]!)).state).toBe("queued");
    const bobs = await w.call<{ items: unknown[] }>("GET", "/v1/sweeps", w.tokens.bob);
    expect(bobs.body.items).toEqual([]);
  });

  it("lists the caller's sweeps newest first, paged", async () => {
    const w = await createWorld();
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      ids.push((await created(w, { name: `s${i}`, specs: [spec()] })).id);
    }
    await created(w, { specs: [spec()] }, w.tokens.bob);
    const first = await w.call<{ items: { id: string; total: number }[]; nextCursor: string }>(
      "GET",
      "/v1/sweeps?limit=2",
      w.tokens.alice,
    );
    expect(first.body.items.map((s) => s.id)).toEqual([ids[2], ids[1]]);
    const second = await w.call<{ items: { id: string }[]; nextCursor: string | null }>(
      "GET",
      `/v1/sweeps?limit=2&cursor=${first.body.nextCursor}`,
      w.tokens.alice,
    );
    expect(second.body).toEqual({ items: [expect.objectContaining({ id: ids[0] })], nextCursor: null });
    expect((await w.call("GET", "/v1/sweeps?limit=2&bogus=1", w.tokens.alice)).status).toBe(422);
  });

  it("pages the elements in element order", async () => {
    const w = await createWorld();
    const sweep = await created(w, { base: spec(), grid: { I: [0, 1, 2, 3, 4] } });
    const seen: string[] = [];
    let cursor = "";
    for (let page = 0; page < 5; page++) {
      const res = await w.call<Detail>("GET", `/v1/sweeps/${sweep.id}?limit=2${cursor}`, w.tokens.alice);
      expect(res.status).toBe(200);
      seen.push(...res.body.elements.map((e) => e.jobId));
      expect(res.body.elements.map((e) => e.index)).toEqual(res.body.elements.map((_, i) => page * 2 + i));
      if (!res.body.nextCursor) {
        break;
      }
      cursor = `&cursor=${res.body.nextCursor}`;
    }
    expect(seen).toEqual(sweep.jobIds);
    const bad = await w.call<Problem>("GET", `/v1/sweeps/${sweep.id}?cursor=abc`, w.tokens.alice);
    expect([bad.status, bad.body.field]).toEqual([422, "query.cursor"]);
  });

  it("folds the state from the elements: never completed while one failed or is live", async () => {
    const w = await createWorld();
    const sweep = await created(w, { base: spec({ cluster: "alpha" }), grid: { I: [0, 1, 2] } });
    const detail = async () => (await w.call<Detail>("GET", `/v1/sweeps/${sweep.id}`, w.tokens.alice)).body;
    const epochs = await drive(w, sweep, {
      0: { state: "completed", slurmJobId: "10_0", exitCode: 0 },
      1: { state: "failed", slurmJobId: "10_1", exitCode: 3 },
      2: { state: "running", slurmJobId: "10_2" },
    });
    expect(await detail()).toMatchObject({ state: "active", counts: { completed: 1, failed: 1, running: 1 }, done: 2 });
    const last = sweep.jobIds[2]!;
    await w.report(w.tokens.alphaAgent, [{ jobId: last, epoch: epochs.get(last), state: "completed", exitCode: 0 }]);
    const ended = await detail();
    expect(ended).toMatchObject({ state: "failed", counts: { completed: 2, failed: 1 }, done: 3, total: 3 });
    expect(ended.elements.map((e) => e.state)).toEqual(["completed", "failed", "completed"]);
    const changed = (await w.job(last)) as unknown as { updatedAt: string };
    expect(Date.parse(ended.updatedAt)).toBeGreaterThanOrEqual(Date.parse(changed.updatedAt));
  });

  it("foldSweepState: the rule on its own", () => {
    expect(foldSweepState({ completed: 3 }, 3)).toBe("completed");
    expect(foldSweepState({ completed: 2, queued: 1 }, 3)).toBe("active");
    expect(foldSweepState({ completed: 2, failed: 1, running: 1 }, 4)).toBe("active");
    expect(foldSweepState({ completed: 2, failed: 1 }, 3)).toBe("failed");
    expect(foldSweepState({ completed: 2, lost: 1 }, 3)).toBe("failed");
    expect(foldSweepState({ completed: 2, cancelled: 1 }, 3)).toBe("cancelled");
    expect(foldSweepState({ cancelled: 1, timeout: 1 }, 2)).toBe("failed");
    // Elements missing from the table are no evidence of success.
    expect(foldSweepState({ completed: 2 }, 3)).toBe("failed");
  });

  it("streams every element's result as JSON lines in element order", async () => {
    const w = await createWorld();
    const sweep = await created(w, { base: spec({ cluster: "alpha" }), grid: { I: [0, 1, 2] } });
    await drive(w, sweep, {
      0: { state: "completed", slurmJobId: "7_0", exitCode: 0, result: { loss: 0.5 } },
      1: {
        state: "failed",
        slurmJobId: "7_1",
        exitCode: 2,
        code: "setup_failed",
        reason: "setup line 2 exited 2: cp: cannot stat 'in.bam'",
      },
    });
    const res = await w.request("GET", `/v1/sweeps/${sweep.id}/results`, { token: w.tokens.alice });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^application\/x-ndjson/);
    const lines = (await res.text())
      .trim()
      .split("\n")
      .map((line: string) => JSON.parse(line));
    expect(lines).toEqual([
      {
        index: 0,
        jobId: sweep.jobIds[0],
        state: "completed",
        exitCode: 0,
        code: null,
        reason: null,
        result: { loss: 0.5 },
      },
      // A failed element says why, as the job does (seed 004: not just "failed, exit 2").
      {
        index: 1,
        jobId: sweep.jobIds[1],
        state: "failed",
        exitCode: 2,
        code: "setup_failed",
        reason: "setup line 2 exited 2: cp: cannot stat 'in.bam'",
        result: null,
      },
      {
        index: 2,
        jobId: sweep.jobIds[2],
        state: "leased",
        exitCode: null,
        code: null,
        reason: null,
        result: null,
      },
    ]);
  });

  it("streams a results page boundary without losing or repeating a line", async () => {
    const w = await createWorld();
    const sweep = await created(w, { base: spec(), grid: { I: Array.from({ length: 1_203 }, (_, i) => i) } });
    const res = await w.request("GET", `/v1/sweeps/${sweep.id}/results`, { token: w.tokens.alice });
    const lines = (await res.text()).trim().split("\n");
    expect(lines.map((l: string) => JSON.parse(l).jobId)).toEqual(sweep.jobIds);
  });
});

describe("cancel", () => {
  it("cancels every live element of a sweep and leaves ended ones as they are", async () => {
    const w = await createWorld();
    const sweep = await created(w, { base: spec({ cluster: "alpha" }), grid: { I: [0, 1, 2] } });
    await drive(w, sweep, {
      0: { state: "completed", slurmJobId: "9_0", exitCode: 0 },
      1: { state: "running", slurmJobId: "9_1" },
    });
    const later = await created(w, { base: spec({ cluster: "alpha" }), grid: { I: [0, 1] } });
    const res = await w.call<Detail>("POST", `/v1/sweeps/${later.id}/cancel`, w.tokens.alice);
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({ state: "cancelled", counts: { cancelled: 2 }, done: 2 });
    expect((await w.lease(w.tokens.alphaAgent, "agent-2", { max: 10 })).body.leases).toEqual([]);

    const before = await w.job(sweep.jobIds[0]!);
    const cancelled = await w.call<Detail>("POST", `/v1/sweeps/${sweep.id}/cancel`, w.tokens.alice);
    expect(cancelled.body.state).toBe("active");
    expect(await w.job(sweep.jobIds[0]!)).toEqual(before);
    const running = await w.job(sweep.jobIds[1]!);
    expect(running).toMatchObject({ state: "running", cancelRequested: true });
    expect(running.events.at(-1)).toMatchObject({ type: "cancel_requested", actor: "user:alice" });
    expect(await w.job(sweep.jobIds[2]!)).toMatchObject({ state: "leased", cancelRequested: true });
    const orders = await w.lease(w.tokens.alphaAgent, "agent-1", { holding: sweep.jobIds.slice(1) });
    expect(orders.body.cancels.map((c) => [c.jobId, c.slurmJobId]).sort()).toEqual(
      [
        [sweep.jobIds[1], "9_1"],
        [sweep.jobIds[2], null],
      ].sort(),
    );
    // Again: nothing changes, no new events.
    const seq = (await w.job(sweep.jobIds[1]!)).lastSeq;
    await w.call("POST", `/v1/sweeps/${sweep.id}/cancel`, w.tokens.alice);
    expect((await w.job(sweep.jobIds[1]!)).lastSeq).toBe(seq);
  });

  it("cancels one element through its job", async () => {
    const w = await createWorld();
    const sweep = await created(w, { base: spec(), grid: { I: [0, 1, 2] } });
    const res = await w.call<{ state: string }>("POST", `/v1/jobs/${sweep.jobIds[1]}/cancel`, w.tokens.alice);
    expect(res.body.state).toBe("cancelled");
    const detail = await w.call<Detail>("GET", `/v1/sweeps/${sweep.id}`, w.tokens.alice);
    expect(detail.body.elements.map((e) => e.state)).toEqual(["queued", "cancelled", "queued"]);
    expect(detail.body.counts).toEqual({ queued: 2, cancelled: 1 });
  });
});

describe("corrupt element rows", () => {
  it("never break GET of the sweep, its results, or its cancel", async () => {
    const w = await createWorld();
    const sweep = await created(w, { base: spec(), grid: { I: [0, 1, 2, 3] } });
    const [a, b, c] = sweep.jobIds;
    await w.db.client.execute({ sql: "UPDATE jobs SET spec = 'not json' WHERE id = ?", args: [a!] });
    await w.db.client.execute({ sql: "UPDATE jobs SET state = 'sleeping' WHERE id = ?", args: [b!] });
    await w.db.client.execute({ sql: "UPDATE jobs SET labels = '{oops', result = '[x' WHERE id = ?", args: [c!] });
    const detail = await w.call<Detail>("GET", `/v1/sweeps/${sweep.id}`, w.tokens.alice);
    expect(detail.status).toBe(200);
    expect(detail.body.elements.map((e) => e.state)).toEqual(["queued", "rejected", "queued", "queued"]);
    expect(detail.body.elements[0]).toMatchObject({ code: "invalid_spec" });
    expect(detail.body.elements[2]).toMatchObject({ labels: {} });
    expect(detail.body.counts).toEqual({ queued: 3, rejected: 1 });
    const results = await w.request("GET", `/v1/sweeps/${sweep.id}/results`, { token: w.tokens.alice });
    expect(results.status).toBe(200);
    expect((await results.text()).trim().split("\n")).toHaveLength(4);
    expect((await w.call("POST", `/v1/sweeps/${sweep.id}/cancel`, w.tokens.alice)).status).toBe(202);
    const list = await w.call("GET", "/v1/sweeps", w.tokens.alice);
    expect(list.status).toBe(200);
  });
});
