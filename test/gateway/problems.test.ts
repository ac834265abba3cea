/**
 * Every refusal is RFC 9457 problem+json whose `field` names the culprit.
 */
import { describe, expect, it } from "vitest";
import { createWorld, expectProblemShape, spec } from "./world.ts";

async function jobCount(w: Awaited<ReturnType<typeof createWorld>>) {
  const rs = await w.db.client.execute("SELECT count(*) AS n FROM jobs");
  return Number(rs.rows[0]?.n);
}

describe("problem+json refusals", () => {
  it("400 malformed JSON names the body", async () => {
    const w = await createWorld();
    const res = await w.call("POST", "/v1/jobs", w.tokens.alice, "{not json");
    expect(expectProblemShape(res, 400)).toMatchObject({ code: "bad_request", field: "body" });
  });

  it("401 without a token, with an unknown token, and with a malformed header", async () => {
    const w = await createWorld();
    for (const headers of [{}, { authorization: "Bearer sgu_nope" }, { authorization: "Basic abc" }] as Record<
      string,
      string
    >[]) {
      const res = await w.call("GET", "/v1/jobs", undefined, undefined, headers);
      expect(expectProblemShape(res, 401)).toMatchObject({ code: "unauthorized", field: "header.authorization" });
      expect(res.headers.get("www-authenticate")).toMatch(/^Bearer realm="slurmgate"/);
    }
  });

  it("403 when an agent token calls the user API, and when a user pins an ungranted cluster", async () => {
    const w = await createWorld();
    const agent = await w.call("POST", "/v1/jobs", w.tokens.alphaAgent, spec());
    expect(expectProblemShape(agent, 403)).toMatchObject({ code: "forbidden", field: "header.authorization" });
    await w.cluster("gamma");
    const pinned = await w.call("POST", "/v1/jobs", w.tokens.alice, spec({ cluster: "gamma" }));
    expect(expectProblemShape(pinned, 403)).toMatchObject({ code: "forbidden", field: "cluster" });
    expect(await jobCount(w)).toBe(0);
  });

  it("404 names the path id, and unknown routes are problems too", async () => {
    const w = await createWorld();
    const res = await w.call("GET", "/v1/jobs/job_00000000000000000000000000", w.tokens.alice);
    expect(expectProblemShape(res, 404)).toMatchObject({ code: "not_found", field: "path.id" });
    const route = await w.call("GET", "/nowhere", undefined);
    expect(expectProblemShape(route, 404).code).toBe("not_found");
  });

  it("409 idempotency conflict names the header", async () => {
    const w = await createWorld();
    await w.submit(w.tokens.alice, {}, { "idempotency-key": "k1" });
    const res = await w.call("POST", "/v1/jobs", w.tokens.alice, spec({ name: "other" }), { "idempotency-key": "k1" });
    expect(expectProblemShape(res, 409)).toMatchObject({
      code: "idempotency_conflict",
      field: "header.idempotency-key",
    });
  });

  it("413 for a body over the limit, with content-length and chunked, without side effects", async () => {
    const w = await createWorld({ SLURMGATE_BODY_LIMIT_BYTES: "1024" });
    const big = JSON.stringify(spec({ command: ["echo", "x".repeat(4_000)] }));
    const sized = await w.call("POST", "/v1/jobs", w.tokens.alice, big);
    expect(expectProblemShape(sized, 413)).toMatchObject({ code: "payload_too_large", field: "body" });

    const bytes = new TextEncoder().encode(big);
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < bytes.length; i += 500) {
          controller.enqueue(bytes.subarray(i, i + 500));
        }
        controller.close();
      },
    });
    const raw = await w.app.request("/v1/jobs", {
      method: "POST",
      body,
      duplex: "half",
      headers: { authorization: `Bearer ${w.tokens.alice}`, "content-type": "application/json" },
    } as RequestInit);
    const chunked = { status: raw.status, headers: raw.headers, body: await raw.json() };
    expect(expectProblemShape(chunked, 413)).toMatchObject({ code: "payload_too_large", field: "body" });
    expect(await jobCount(w)).toBe(0);

    // A small chunked body still goes through.
    const small = new TextEncoder().encode(JSON.stringify(spec()));
    const ok = await w.app.request("/v1/jobs", {
      method: "POST",
      body: new ReadableStream({
        start(c) {
          c.enqueue(small);
          c.close();
        },
      }),
      duplex: "half",
      headers: { authorization: `Bearer ${w.tokens.alice}`, "content-type": "application/json" },
    } as RequestInit);
    expect(ok.status).toBe(201);
    expect(await jobCount(w)).toBe(1);
  });

  it("422 from schema validation names the field", async () => {
    const w = await createWorld();
    const cases: [unknown, string][] = [
      [spec({ resources: { time: "forever" } }), "body.resources.time"],
      [spec({ name: "bad name; rm -rf /" }), "body.name"],
      [{ name: "both", command: ["a"], script: "echo" }, "body.command"],
      [spec({ env: { LD_PRELOAD: "/evil.so" } }), "body.env.LD_PRELOAD"],
      [spec({ workdir: "../escape" }), "body.workdir"],
    ];
    for (const [body, field] of cases) {
      const res = await w.call("POST", "/v1/jobs", w.tokens.alice, body);
      expect(expectProblemShape(res, 422)).toMatchObject({ code: "validation_failed", field });
    }
    const query = await w.call("GET", "/v1/jobs?limit=0", w.tokens.alice);
    expect(expectProblemShape(query, 422)).toMatchObject({ field: "query.limit" });
    expect(await jobCount(w)).toBe(0);
  });

  it("422 unsatisfiable names the field and what is on offer", async () => {
    const w = await createWorld();
    const cases: [Record<string, unknown>, string, RegExp][] = [
      [{ partition: "nope" }, "body.partition", /on offer: cpu, short, gpu/],
      [{ partition: "gpu", resources: { gpus: { count: 1, type: "v100" } } }, "body.resources.gpus.type", /a100/],
      [{ partition: "gpu", resources: { gpus: { count: 8, type: "a100" } } }, "body.resources.gpus.count", /2/],
      [{ partition: "short", resources: { time: "2h" } }, "body.resources.time", /10m/],
      [{ resources: { cpusPerTask: 64 } }, "body.resources.cpusPerTask", /on offer: 2/],
      [{ resources: { memPerNode: "64G" } }, "body.resources.memPerNode", /4000M/],
    ];
    for (const [extra, field, offer] of cases) {
      const res = await w.call("POST", "/v1/jobs", w.tokens.alice, spec(extra));
      const problem = expectProblemShape(res, 422) as unknown as { code: string; field: string; detail: string };
      expect(problem).toMatchObject({ code: "unsatisfiable", field });
      expect(problem.detail).toMatch(offer);
    }
    expect(await jobCount(w)).toBe(0);
  });

  it("429 with Retry-After once a token's bucket is empty", async () => {
    const w = await createWorld({ SLURMGATE_RATE_LIMIT_PER_SECOND: "1", SLURMGATE_RATE_LIMIT_BURST: "2" });
    expect((await w.call("GET", "/v1/me", w.tokens.alice)).status).toBe(200);
    expect((await w.call("GET", "/v1/me", w.tokens.alice)).status).toBe(200);
    const res = await w.call("GET", "/v1/me", w.tokens.alice);
    expect(expectProblemShape(res, 429)).toMatchObject({ code: "rate_limited", field: "header.authorization" });
    expect(Number(res.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
  });
});
