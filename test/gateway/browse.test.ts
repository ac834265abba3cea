/**
 * Browsing a job's directory through the gateway: the lexical path rule, who may browse, a job
 * without a directory, and the asks channel with agents played by requests with real agent tokens
 * against a real in-process gateway (on time, late, refusing, corrupt).
 */
import { describe, expect, it } from "vitest";
import { BROWSE_LIMITS } from "../../schemas/browse.ts";
import { FILE_LIMITS } from "../../schemas/files.ts";
import { createWorld, expectProblemShape } from "./world.ts";

type Ask = {
  id: string;
  kind: string;
  owner: string;
  jobId: string;
  attempt: number;
  path: string;
  from?: string;
  bytes?: number;
};

async function world(seconds = "3") {
  return createWorld({ SLURMGATE_BROWSE_SECONDS: seconds });
}
type W = Awaited<ReturnType<typeof world>>;

/** A job of alice's that reached Slurm on alpha. */
async function submittedJob(w: W): Promise<string> {
  const job = await w.submit(w.tokens.alice, { cluster: "alpha" });
  const { body } = await w.lease(w.tokens.alphaAgent);
  const lease = body.leases.find((l) => l.jobId === job.id)!;
  const res = await w.report(w.tokens.alphaAgent, [
    { jobId: job.id, epoch: lease.epoch, state: "submitted", slurmJobId: "4242" },
  ]);
  expect(res.body.outcomes[0]?.status).toBe("applied");
  return job.id;
}

/** A job of alice's whose attempt 1 reached Slurm and timed out, queued again as attempt 2. */
async function requeuedJob(w: W): Promise<string> {
  const job = await w.submit(w.tokens.alice, {
    cluster: "alpha",
    retries: { max: 1, onTimeout: true, backoffSeconds: 600 },
  });
  const { body } = await w.lease(w.tokens.alphaAgent);
  const { epoch } = body.leases.find((l) => l.jobId === job.id)!;
  await w.report(w.tokens.alphaAgent, [
    { jobId: job.id, epoch, state: "running", slurmJobId: "4242" },
    { jobId: job.id, epoch, state: "timeout" },
  ]);
  expect(await w.job(job.id)).toMatchObject({ state: "queued", attempt: 2 });
  return job.id;
}

async function takeAsks(w: W, agentId = "agent-1", wait = 5): Promise<Ask[]> {
  const res = await w.call<{ asks: Ask[] }>("POST", "/v1/agent/lease", w.tokens.alphaAgent, { agentId, max: 1, wait });
  expect(res.status).toBe(200);
  return res.body.asks;
}

function answer(w: W, id: string, body: unknown) {
  return w.call("POST", `/v1/agent/asks/${id}/answer`, w.tokens.alphaAgent, { agentId: "agent-1", answer: body });
}

const askCount = async (w: W) => Number((await w.db.client.execute("SELECT count(*) AS n FROM agent_asks")).rows[0]?.n);

describe("browse: refusals before anything is asked", () => {
  it("names every lexical violation of the path, for each route", async () => {
    const w = await world();
    const id = await submittedJob(w);
    const bad = `/${"a".repeat(300)}/../x\u0000y/${"b".repeat(FILE_LIMITS.pathChars)}`;
    for (const route of ["dir", "head", "tail"]) {
      const res = await w.call("GET", `/v1/jobs/${id}/${route}?path=${encodeURIComponent(bad)}`, w.tokens.alice);
      const problem = expectProblemShape(res, 422) as unknown as {
        field: string;
        errors: { field: string; message: string }[];
      };
      expect(problem.field).toBe("query.path");
      const messages = problem.errors
        .filter((e) => e.field === "query.path")
        .map((e) => e.message)
        .join(" | ");
      for (const want of ["characters long", "NUL", "is absolute", "'..'", "longer than 255 bytes"]) {
        expect(messages).toContain(want);
      }
    }
    for (const path of ["../etc/passwd", "a/../../b", "/etc/passwd", "a\u0000"]) {
      const res = await w.call("GET", `/v1/jobs/${id}/head?path=${encodeURIComponent(path)}`, w.tokens.alice);
      expect((expectProblemShape(res, 422) as { field?: string }).field).toBe("query.path");
    }
    expect(await askCount(w)).toBe(0);
  });

  it("refuses unknown query parameters and bytes out of range", async () => {
    const w = await world();
    const id = await submittedJob(w);
    const unknown = await w.call("GET", `/v1/jobs/${id}/dir?path=&recursive=1`, w.tokens.alice);
    expect((expectProblemShape(unknown, 422) as { field?: string }).field).toBe("query.recursive");
    for (const bytes of ["0", String(BROWSE_LIMITS.bytes + 1), "-3", "many"]) {
      const res = await w.call("GET", `/v1/jobs/${id}/tail?path=stdout&bytes=${bytes}`, w.tokens.alice);
      expect((expectProblemShape(res, 422) as { field?: string }).field).toBe("query.bytes");
    }
  });

  it("answers 404 for another user's job and for a missing one, alike", async () => {
    const w = await world();
    const id = await submittedJob(w);
    const foreign = await w.call("GET", `/v1/jobs/${id}/dir`, w.tokens.bob);
    const missing = await w.call("GET", `/v1/jobs/${id.replace(/.{4}$/, "zzzz")}/dir`, w.tokens.bob);
    expectProblemShape(foreign, 404);
    expectProblemShape(missing, 404);
    expect(await askCount(w)).toBe(0);
  });

  it("answers 409 with the reason for a job that has not reached Slurm", async () => {
    const w = await world();
    const job = await w.submit(w.tokens.alice, { cluster: "alpha" });
    const res = await w.call<{ detail: string }>("GET", `/v1/jobs/${job.id}/dir`, w.tokens.alice);
    expectProblemShape(res, 409);
    expect(res.body.detail).toContain("has not been submitted to Slurm yet (state queued)");
    expect(await askCount(w)).toBe(0);
  });

  it("answers 503 when no agent of the cluster is connected", async () => {
    const w = await world();
    const id = await submittedJob(w);
    await w.call("POST", "/v1/agent/goodbye", w.tokens.alphaAgent, { agentId: "agent-1" });
    const res = await w.call<{ detail: string }>("GET", `/v1/jobs/${id}/dir`, w.tokens.alice);
    expectProblemShape(res, 503);
    expect(res.body.detail).toContain("no agent of cluster alpha is connected");
  });
});

describe("browse through the agent", () => {
  it("hands the held lease call the ask at once and returns the agent's listing", async () => {
    const w = await world();
    const id = await submittedJob(w);
    const held = takeAsks(w, "agent-1", 20);
    await new Promise((r) => setTimeout(r, 200));
    const t0 = Date.now();
    const listing = w.call("GET", `/v1/jobs/${id}/dir?path=results`, w.tokens.alice);
    const [ask, ...more] = await held;
    expect(more).toEqual([]);
    expect(ask).toEqual({ id: ask!.id, kind: "list_dir", owner: "alice", jobId: id, attempt: 1, path: "results" });
    const value = {
      path: "results",
      entries: [{ name: "a.json", type: "file", size: 3, mtime: "2026-11-30T10:00:00.000Z" }],
      truncated: false,
    };
    expect((await answer(w, ask!.id, { ok: true, value })).status).toBe(204);
    const res = await listing;
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ ...value, attempt: 1 });
    expect(Date.now() - t0).toBeLessThan(2_000);
    expect(await askCount(w)).toBe(0);
  });

  it("asks head and tail with the byte count, and passes the bytes on", async () => {
    const w = await world();
    const id = await submittedJob(w);
    for (const from of ["head", "tail"]) {
      const read = w.call("GET", `/v1/jobs/${id}/${from}?path=stdout&bytes=5`, w.tokens.alice);
      const [ask] = await takeAsks(w);
      expect(ask).toMatchObject({ kind: "read_file", from, bytes: 5, path: "stdout" });
      const value = { path: "stdout", size: 11, offset: from === "head" ? 0 : 6, data: "aGVsbG8=", truncated: true };
      await answer(w, ask!.id, { ok: true, value });
      expect((await read).body).toEqual({ ...value, attempt: 1 });
    }
  });

  it("turns the agent's path refusal into a 422 naming path, and its inability into a 409", async () => {
    const w = await world();
    const id = await submittedJob(w);
    const read = w.call<{ field: string; detail: string }>("GET", `/v1/jobs/${id}/head?path=passwd`, w.tokens.alice);
    const [ask] = await takeAsks(w);
    const reason = '"passwd" is a symlink; symlinks are listed, never followed';
    await answer(w, ask!.id, { ok: true, value: { refused: "path", reason } });
    const res = await read;
    expect(expectProblemShape(res, 422)).toMatchObject({ field: "query.path" });
    expect(res.body.detail).toContain(reason);

    const list = w.call<{ detail: string }>("GET", `/v1/jobs/${id}/dir`, w.tokens.alice);
    const [ask2] = await takeAsks(w);
    await answer(w, ask2!.id, { ok: true, value: { refused: "unsupported", reason: "over SSH" } });
    const unsupported = await list;
    expectProblemShape(unsupported, 409);
    expect(unsupported.body.detail).toContain("cannot browse job directories: over SSH");
  });

  it("answers 504 within the deadline, saying the agent did not answer, and leaves no ask behind", async () => {
    const w = await world("1");
    const id = await submittedJob(w);
    const t0 = Date.now();
    const res = await w.call<{ detail: string; code: string }>(
      "GET",
      `/v1/jobs/${id}/tail?path=stdout`,
      w.tokens.alice,
    );
    const took = Date.now() - t0;
    expectProblemShape(res, 504);
    expect(res.body.code).toBe("agent_timeout");
    expect(res.body.detail).toContain("no agent of alpha answered within 1 s");
    expect(took).toBeGreaterThanOrEqual(900);
    expect(took).toBeLessThan(3_000);
    expect(await askCount(w)).toBe(0);
    expect(await takeAsks(w, "agent-1", 0)).toEqual([]);
  });

  it("refuses a corrupt answer (to the agent, naming fields) and never shows it to the user", async () => {
    const w = await world("2");
    const id = await submittedJob(w);
    const read = w.call<{ code: string }>("GET", `/v1/jobs/${id}/head?path=stdout`, w.tokens.alice);
    const [ask] = await takeAsks(w);
    const corrupt = [
      { path: "stdout", size: -1, offset: 0, data: "not base64!", truncated: false },
      { entries: "x" },
      { refused: "everything", reason: "x" },
      { path: "stdout", size: 1, offset: 0, data: "QQ==", truncated: false, extra: "<script>" },
    ];
    for (const value of corrupt) {
      expectProblemShape(await answer(w, ask!.id, { ok: true, value }), 422);
    }
    const res = await read;
    expectProblemShape(res, 504);
    expect(JSON.stringify(res.body)).not.toContain("script");
  });
});

describe("browse by attempt", () => {
  const listing = (path: string) => ({
    path,
    entries: [{ name: "stderr", type: "file", size: 7, mtime: "2026-11-30T10:00:00.000Z" }],
    truncated: false,
  });

  it("a job back in the queue for a retry shows its last run's directory instead of a 409", async () => {
    const w = await world();
    const id = await requeuedJob(w);
    const res = w.call("GET", `/v1/jobs/${id}/dir`, w.tokens.alice);
    const [ask] = await takeAsks(w);
    expect(ask).toMatchObject({ kind: "list_dir", jobId: id, attempt: 1, path: "" });
    await answer(w, ask!.id, { ok: true, value: listing("") });
    expect((await res).body).toEqual({ ...listing(""), attempt: 1 });

    const tail = w.call("GET", `/v1/jobs/${id}/tail?path=stderr&attempt=1`, w.tokens.alice);
    const [ask2] = await takeAsks(w);
    expect(ask2).toMatchObject({ kind: "read_file", attempt: 1, path: "stderr" });
    await answer(w, ask2!.id, {
      ok: true,
      value: { path: "stderr", size: 3, offset: 0, data: "eHl6", truncated: false },
    });
    expect((await tail).body).toMatchObject({ data: "eHl6", attempt: 1 });

    // Attempt 2 has not reached Slurm: asked for by name it is a 409 with the reason, nothing asked.
    const now = await w.call<{ detail: string }>("GET", `/v1/jobs/${id}/dir?attempt=2`, w.tokens.alice);
    expectProblemShape(now, 409);
    expect(now.body.detail).toContain(`attempt 2 of job ${id} has not been submitted to Slurm yet (state queued)`);
    const unknown = await w.call<{ detail: string; field: string }>(
      "GET",
      `/v1/jobs/${id}/dir?attempt=3`,
      w.tokens.alice,
    );
    expectProblemShape(unknown, 404);
    expect(unknown.body).toMatchObject({ field: "query.attempt" });
    expect(unknown.body.detail).toContain("no attempt 3");
    expectProblemShape(await w.call("GET", `/v1/jobs/${id}/dir`, w.tokens.bob), 404);
    expectProblemShape(await w.call("GET", `/v1/jobs/${id}/dir?attempt=1`, w.tokens.bob), 404);
    expect(await askCount(w)).toBe(0);
  });

  it("once the next attempt reaches Slurm it is the default, and the earlier one stays readable by name", async () => {
    const w = await world();
    const id = await requeuedJob(w);
    await w.db.client.execute({ sql: "UPDATE jobs SET run_after = 0 WHERE id = ?", args: [id] });
    const { body } = await w.lease(w.tokens.alphaAgent);
    const { epoch } = body.leases.find((l) => l.jobId === id)!;
    await w.report(w.tokens.alphaAgent, [{ jobId: id, epoch, state: "submitted", slurmJobId: "4243" }]);
    for (const [query, attempt] of [
      ["", 2],
      ["&attempt=1", 1],
      ["&attempt=2", 2],
    ] as const) {
      const res = w.call("GET", `/v1/jobs/${id}/dir?path=${query}`, w.tokens.alice);
      const [ask] = await takeAsks(w);
      expect(ask, query).toMatchObject({ attempt });
      await answer(w, ask!.id, { ok: true, value: listing("") });
      expect((await res).body).toMatchObject({ attempt });
    }
  });

  it("refuses a hostile attempt with a 422 naming query.attempt, before anything is asked", async () => {
    const w = await world();
    const id = await requeuedJob(w);
    for (const route of ["dir", "head", "tail"]) {
      for (const bad of ["-1", "0", "abc", "1.5", "99999999999999999999", ""]) {
        const res = await w.call("GET", `/v1/jobs/${id}/${route}?path=stdout&attempt=${bad}`, w.tokens.alice);
        expect((expectProblemShape(res, 422) as { field?: string }).field, `${route} ${bad}`).toBe("query.attempt");
      }
    }
    expect(await askCount(w)).toBe(0);
  });
});
