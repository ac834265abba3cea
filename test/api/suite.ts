/**
 * The HTTP API suite, independent of where the gateway runs: it only speaks HTTP with fetch and
 * seeds everything through the admin and agent APIs. Run it against Node (node.test.ts) or any
 * other target that offers { baseUrl, adminToken, close }.
 */
import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

export type ApiTarget = { baseUrl: string; adminToken: string; close(): Promise<void> };

type Res<T> = { status: number; headers: Headers; body: T };
type Job = {
  id: string;
  state: string;
  cluster: string;
  lastSeq: number;
  cancelRequested: boolean;
  slurmJobId: string | null;
};
type Lease = { jobId: string; epoch: number; attempt: number; owner: string };

export function defineApiSuite(label: string, createTarget: () => Promise<ApiTarget>) {
  describe(`HTTP API (${label})`, () => {
    let target: ApiTarget;
    const run = Math.random().toString(36).slice(2, 8);
    const alice = `alice_${run}`;
    const bob = `bob_${run}`;
    const cluster = `c${run}`;
    const tokens = { alice: "", bob: "", agent: "" };

    async function call<T = Record<string, unknown>>(
      method: string,
      path: string,
      token: string | undefined,
      body?: unknown,
      headers: Record<string, string> = {},
    ): Promise<Res<T>> {
      const res = await fetch(target.baseUrl + path, {
        method,
        headers: {
          ...(token ? { authorization: `Bearer ${token}` } : {}),
          ...(body !== undefined ? { "content-type": "application/json" } : {}),
          ...headers,
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.text();
      return { status: res.status, headers: res.headers, body: (text ? JSON.parse(text) : undefined) as T };
    }

    const ok = async <T>(res: Promise<Res<T>>, status = 200) => {
      const r = await res;
      expect(r.status, JSON.stringify(r.body)).toBe(status);
      return r.body;
    };

    const submit = (token: string, extra: Record<string, unknown> = {}, headers?: Record<string, string>) =>
      call<Job>("POST", "/v1/jobs", token, { name: "api", command: ["echo", "hi"], cluster, ...extra }, headers);

    const lease = (agentId = "api-agent", extra: Record<string, unknown> = {}) =>
      ok(
        call<{ leases: Lease[]; cancels: { jobId: string }[]; lost: string[] }>(
          "POST",
          "/v1/agent/lease",
          tokens.agent,
          {
            agentId,
            wait: 0,
            max: 100,
            ...extra,
          },
        ),
      );

    const report = (reports: Record<string, unknown>[]) =>
      ok(
        call<{ outcomes: { jobId: string; status: string }[] }>("POST", "/v1/agent/reports", tokens.agent, {
          agentId: "api-agent",
          reports,
        }),
      );

    beforeAll(async () => {
      target = await createTarget();
      const admin = target.adminToken;
      await ok(call("POST", "/v1/admin/users", admin, { name: alice }));
      await ok(call("POST", "/v1/admin/users", admin, { name: bob }));
      await ok(call("POST", "/v1/admin/clusters", admin, { name: cluster, sharedRoots: ["/shared"] }));
      await ok(call("POST", "/v1/admin/grants", admin, { user: alice, cluster }));
      await ok(call("POST", "/v1/admin/grants", admin, { user: bob, cluster, partitions: ["debug"] }));
      const mint = async (body: Record<string, unknown>) =>
        (await ok(call<{ token: string }>("POST", "/v1/admin/tokens", admin, body), 201)).token;
      tokens.alice = await mint({ kind: "user", user: alice });
      tokens.bob = await mint({ kind: "user", user: bob });
      tokens.agent = await mint({ kind: "agent", cluster });
      await ok(
        call("PUT", "/v1/agent/inventory", tokens.agent, {
          slurmVersion: "22.05.8",
          apptainerVersion: "1.3.4",
          accounting: true,
          agentVersion: "0.1.0",
          agentId: "api-agent",
          partitions: [
            {
              name: "debug",
              default: true,
              state: "up",
              nodes: 2,
              maxTimeSeconds: 3600,
              maxCpusPerNode: 4,
              maxMemMBPerNode: 8000,
              maxNodes: null,
              gpus: [],
            },
            {
              name: "gpu",
              default: false,
              state: "up",
              nodes: 1,
              maxTimeSeconds: 7200,
              maxCpusPerNode: 8,
              maxMemMBPerNode: 16000,
              maxNodes: null,
              gpus: [{ type: "a100", count: 2 }],
            },
          ],
        }),
      );
    });

    afterAll(async () => {
      await target?.close();
    });

    it("serves health and its OpenAPI document", async () => {
      expect(await ok(call("GET", "/healthz", undefined))).toMatchObject({ ok: true });
      const doc = await ok(
        call<{ openapi: string; paths: Record<string, unknown> }>("GET", "/openapi.json", undefined),
      );
      expect(doc.openapi).toBe("3.1.0");
      expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(["/v1/jobs", "/v1/jobs/{id}", "/v1/agent/lease"]));
    });

    it("refuses missing, unknown and wrong-kind tokens with problem+json", async () => {
      for (const token of [undefined, "sgu_unknownunknownunknownunknownunknownunkno"]) {
        const res = await call<{ code: string }>("GET", "/v1/jobs", token);
        expect(res.status).toBe(401);
        expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
        expect(res.body.code).toBe("unauthorized");
      }
      expect((await call("GET", "/v1/jobs", tokens.agent)).status).toBe(403);
      expect((await call("POST", "/v1/agent/lease", tokens.alice, { agentId: "x" })).status).toBe(403);
      expect((await call("GET", "/v1/admin/users", tokens.alice)).status).toBe(403);
      expect(await ok(call("GET", "/v1/me", tokens.agent))).toMatchObject({ kind: "agent", cluster });
    });

    it("submits, refuses what no partition can run, and honours Idempotency-Key", async () => {
      const job = await ok(submit(tokens.alice), 201);
      expect(job).toMatchObject({ state: "queued", cluster });
      const tooLong = await call<{ code: string; field: string }>("POST", "/v1/jobs", tokens.alice, {
        name: "x",
        command: ["true"],
        cluster,
        resources: { time: "5h" },
      });
      expect([tooLong.status, tooLong.body.code, tooLong.body.field]).toEqual([
        422,
        "unsatisfiable",
        "body.resources.time",
      ]);
      const badTime = await call<{ field: string }>("POST", "/v1/jobs", tokens.alice, {
        name: "x",
        command: ["a"],
        resources: { time: "later" },
      });
      expect([badTime.status, badTime.body.field]).toEqual([422, "body.resources.time"]);
      const key = { "idempotency-key": `k-${run}` };
      const first = await ok(submit(tokens.alice, { name: "idem" }, key), 201);
      const again = await ok(submit(tokens.alice, { name: "idem" }, key), 200);
      expect(again.id).toBe(first.id);
      const conflict = await call<{ code: string }>(
        "POST",
        "/v1/jobs",
        tokens.alice,
        { name: "other", command: ["a"], cluster },
        key,
      );
      expect([conflict.status, conflict.body.code]).toEqual([409, "idempotency_conflict"]);
      const notGranted = await call<{ field: string }>("POST", "/v1/jobs", tokens.bob, {
        name: "x",
        command: ["a"],
        cluster,
        partition: "gpu",
      });
      expect([notGranted.status, notGranted.body.field]).toEqual([422, "body.partition"]);
    });

    it("lists own jobs newest first with cursor pagination and filters", async () => {
      const mine: string[] = [];
      for (let i = 0; i < 5; i++) {
        mine.push((await ok(submit(tokens.bob, { labels: { batch: run } }), 201)).id);
      }
      const seen: string[] = [];
      let cursor: string | null = null;
      do {
        const page: { items: Job[]; nextCursor: string | null } = await ok(
          call("GET", `/v1/jobs?limit=2${cursor ? `&cursor=${cursor}` : ""}`, tokens.bob),
        );
        seen.push(...page.items.map((j) => j.id));
        cursor = page.nextCursor;
      } while (cursor);
      expect(seen).toEqual([...mine].reverse());
      const labelled = await ok(
        call<{ items: Job[] }>("GET", `/v1/jobs?label=batch%3D${run}&state=queued`, tokens.bob),
      );
      expect(labelled.items).toHaveLength(5);
      const aliceSees = await ok(call<{ items: Job[] }>("GET", `/v1/jobs?label=batch%3D${run}`, tokens.alice));
      expect(aliceSees.items).toEqual([]);
      expect((await call("GET", `/v1/jobs/${mine[0]}`, tokens.alice)).status).toBe(404);
    });

    it("leases, reports, follows events and logs to completion", async () => {
      const job = await ok(submit(tokens.alice, { name: "walk" }), 201);
      const etagRes = await fetch(`${target.baseUrl}/v1/jobs/${job.id}`, {
        headers: { authorization: `Bearer ${tokens.alice}` },
      });
      const etag = etagRes.headers.get("etag")!;
      await etagRes.arrayBuffer();
      const notModified = await fetch(`${target.baseUrl}/v1/jobs/${job.id}`, {
        headers: { authorization: `Bearer ${tokens.alice}`, "if-none-match": etag },
      });
      expect(notModified.status).toBe(304);
      await notModified.arrayBuffer();

      const leased = (await lease()).leases.find((l) => l.jobId === job.id)!;
      expect(leased).toMatchObject({ owner: alice, attempt: 1 });
      const events = call<{ events: { state?: string }[] }>(
        "GET",
        `/v1/jobs/${job.id}/events?after=2&wait=10`,
        tokens.alice,
      );
      const out = await report([
        {
          jobId: job.id,
          epoch: leased.epoch,
          state: "running",
          slurmJobId: "31337",
          logs: [{ stream: "stdout", offset: 0, data: btoa("hello\n") }],
        },
      ]);
      expect(out.outcomes).toEqual([{ jobId: job.id, status: "applied", cancelRequested: false }]);
      expect((await ok(events)).events.map((e) => e.state)).toEqual(["running"]);
      const dup = await report([{ jobId: job.id, epoch: leased.epoch, state: "running" }]);
      expect(dup.outcomes[0]?.status).toBe("duplicate");
      const stale = await report([{ jobId: job.id, epoch: leased.epoch - 1, state: "completed" }]);
      expect(stale.outcomes[0]?.status).toBe("stale");
      await report([{ jobId: job.id, epoch: leased.epoch, state: "completed", exitCode: 0, result: { ok: 1 } }]);
      const done = await ok(
        call<Job & { result: unknown; events: unknown[] }>("GET", `/v1/jobs/${job.id}`, tokens.alice),
      );
      expect(done).toMatchObject({ state: "completed", slurmJobId: "31337", result: { ok: 1 } });
      expect(done.events).toHaveLength(done.lastSeq);
      const logs = await ok(call<{ data: string; complete: boolean }>("GET", `/v1/jobs/${job.id}/logs`, tokens.alice));
      expect(logs).toMatchObject({ data: "hello\n", complete: true });
    });

    it("stores a script body once, answers the script whole, and refuses a body under the wrong hash", async () => {
      const body = `\nsg_body=1 # ${run} é ✓\n`.repeat(500);
      const sha = createHash("sha256").update(body, "utf8").digest("hex");
      const a = await ok(submit(tokens.alice, { name: "sa" }), 201);
      const b = await ok(submit(tokens.alice, { name: "sb" }), 201);
      const leases = (await lease()).leases;
      const epoch = (id: string) => leases.find((l) => l.jobId === id)!.epoch;
      const head = (id: string) => `#!/bin/bash\nsg_job_id='${id}'\n`;
      const wrong = await call("POST", "/v1/agent/reports", tokens.agent, {
        reports: [{ jobId: a.id, epoch: epoch(a.id), state: "submitted", script: head(a.id), scriptBody: sha }],
        scriptBodies: { [sha]: `${body}x` },
      });
      expect(wrong.status).toBe(422);
      expect((wrong.body as { field?: string }).field).toBe(`body.scriptBodies.${sha}`);
      const out = await ok(
        call<{ outcomes: { status: string }[] }>("POST", "/v1/agent/reports", tokens.agent, {
          reports: [a, b].map((job) => ({
            jobId: job.id,
            epoch: epoch(job.id),
            state: "submitted",
            script: head(job.id),
            scriptBody: sha,
          })),
          scriptBodies: { [sha]: body },
        }),
      );
      expect(out.outcomes.map((o) => o.status)).toEqual(["applied", "applied"]);
      for (const job of [a, b]) {
        const res = await fetch(`${target.baseUrl}/v1/jobs/${job.id}/script`, {
          headers: { authorization: `Bearer ${tokens.alice}` },
        });
        expect(res.headers.get("content-type")).toBe("text/plain; charset=utf-8");
        expect(await res.text()).toBe(head(job.id) + body);
      }
    });

    it("cancels queued jobs at once and held jobs through the agent", async () => {
      const queued = await ok(submit(tokens.alice, { name: "cq" }), 201);
      expect(await ok(call<Job>("POST", `/v1/jobs/${queued.id}/cancel`, tokens.alice), 202)).toMatchObject({
        state: "cancelled",
      });
      const held = await ok(submit(tokens.alice, { name: "ch" }), 201);
      const l = (await lease("cancel-agent")).leases.find((x) => x.jobId === held.id)!;
      expect(await ok(call<Job>("POST", `/v1/jobs/${held.id}/cancel`, tokens.alice), 202)).toMatchObject({
        state: "leased",
        cancelRequested: true,
      });
      const orders = await lease("cancel-agent", { holding: [held.id] });
      expect(orders.cancels.map((c) => c.jobId)).toEqual([held.id]);
      await report([{ jobId: held.id, epoch: l.epoch, state: "cancelled" }]);
      expect((await ok(call<Job>("GET", `/v1/jobs/${held.id}`, tokens.alice))).state).toBe("cancelled");
      expect((await call("POST", `/v1/jobs/${held.id}/cancel`, tokens.bob)).status).toBe(404);
    });

    it("takes a sweep in one request, leases its elements as one array, streams results, cancels the rest", async () => {
      const body = { base: { name: "sw", command: ["run", "{I}"], cluster }, grid: { I: [0, 1, 2] }, maxParallel: 2 };
      const sweep = await ok(call<{ id: string; jobIds: string[] }>("POST", "/v1/sweeps", tokens.alice, body), 201);
      expect(sweep.jobIds).toHaveLength(3);
      type Batched = Lease & { batch: { id: string; index: number; size: number; maxParallel: number } | null };
      const leases = (await lease("sweep-agent", { max: 1 })).leases as Batched[];
      const mine = leases.filter((l) => sweep.jobIds.includes(l.jobId));
      expect(mine.map((l) => [l.jobId, l.batch?.index, l.batch?.size, l.batch?.maxParallel])).toEqual(
        sweep.jobIds.map((id, i) => [id, i, 3, 2]),
      );
      const first = mine[0]!;
      await report([{ jobId: first.jobId, epoch: first.epoch, state: "completed", exitCode: 0, result: { ok: 1 } }]);
      const res = await fetch(`${target.baseUrl}/v1/sweeps/${sweep.id}/results`, {
        headers: { authorization: `Bearer ${tokens.alice}` },
      });
      expect(res.headers.get("content-type")).toMatch(/^application\/x-ndjson/);
      const lines = (await res.text())
        .trim()
        .split("\n")
        .map((line) => JSON.parse(line) as { index: number; state: string; result: unknown });
      expect(lines.map((l) => [l.index, l.state, l.result])).toEqual([
        [0, "completed", { ok: 1 }],
        [1, "leased", null],
        [2, "leased", null],
      ]);
      const cancelled = await ok(
        call<{ state: string; counts: Record<string, number> }>("POST", `/v1/sweeps/${sweep.id}/cancel`, tokens.alice),
        202,
      );
      expect(cancelled).toMatchObject({ state: "active", counts: { completed: 1, leased: 2 } });
      expect((await call("GET", `/v1/sweeps/${sweep.id}`, tokens.bob)).status).toBe(404);
    });

    it("shows the cluster, its partitions and a live agent", async () => {
      const list = await ok(
        call<{ items: { name: string; alive: boolean; partitions: string[] }[] }>("GET", "/v1/clusters", tokens.bob),
      );
      expect(list.items).toEqual([expect.objectContaining({ name: cluster, alive: true, partitions: ["debug"] })]);
    });
  });
}
