/**
 * Hono's own refusals (media type, method) are problems with their own status, every answer
 * carries a request id, and every 5xx is logged with the id its problem body shows.
 */
import { HTTPException } from "hono/http-exception";
import { describe, expect, it, vi } from "vitest";
import openapi from "../../client/openapi.json" with { type: "json" };
import { Problem } from "../../schemas/index.ts";
import { createWorld, expectProblemShape, spec } from "./world.ts";

type Operation = {
  requestBody?: { content: Record<string, unknown> };
  responses: Record<string, unknown>;
  tags?: string[];
};

/** Every operation of the published document that takes a body. */
const bodyRoutes = Object.entries(openapi.paths as Record<string, Record<string, Operation>>).flatMap(([path, ops]) =>
  Object.entries(ops)
    .filter(([, op]) => op.requestBody)
    .map(([method, op]) => ({
      method: method.toUpperCase(),
      path,
      tag: op.tags?.[0] ?? "",
      documents415: "415" in op.responses,
      accepts: Object.keys(op.requestBody!.content)[0]!,
    })),
);

async function asResult(res: Response) {
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : undefined };
}

describe("unsupported media types", () => {
  it("every route with a body answers 415 naming header.content-type and what it accepts", async () => {
    const w = await createWorld();
    const tokenFor = (tag: string) =>
      tag === "agent" ? w.tokens.alphaAgent : tag === "admin" ? w.tokens.admin : w.tokens.alice;
    expect(bodyRoutes.length).toBeGreaterThanOrEqual(7);
    const contentTypes: (string | undefined)[] = [
      "text/plain",
      "application/xml",
      "multipart/form-data; boundary=x",
      "application/x-www-form-urlencoded",
      "application/jsonx",
      "",
      undefined,
    ];
    for (const route of bodyRoutes) {
      expect(route.documents415, `${route.method} ${route.path} documents its 415`).toBe(true);
      const path = route.path.replace(/\{[^}]+\}/g, "x");
      for (const type of contentTypes) {
        const headers: Record<string, string> = { authorization: `Bearer ${tokenFor(route.tag)}` };
        if (type !== undefined) {
          headers["content-type"] = type;
        }
        const res = await asResult(
          await w.app.request(path, {
            method: route.method,
            headers,
            body: new TextEncoder().encode(JSON.stringify(spec())),
          }),
        );
        const problem = expectProblemShape(res, 415);
        expect(problem).toMatchObject({ code: "unsupported_media_type", field: "header.content-type" });
        expect((problem as { detail?: string }).detail).toContain(`send Content-Type: ${route.accepts}`);
        expect(Problem.safeParse(res.body).success).toBe(true);
      }
    }
    expect(w.logs.filter((l) => l.level === "error")).toEqual([]);
  });

  it("JSON with parameters or a +json suffix is still JSON; an empty body without a type is a 422", async () => {
    const w = await createWorld();
    const auth = { authorization: `Bearer ${w.tokens.alice}` };
    const withCharset = await w.app.request("/v1/jobs", {
      method: "POST",
      headers: { ...auth, "content-type": "application/json; charset=utf-8" },
      body: JSON.stringify(spec()),
    });
    expect(withCharset.status).toBe(201);
    const empty = await asResult(await w.app.request("/v1/jobs", { method: "POST", headers: auth }));
    expect(expectProblemShape(empty, 422).code).toBe("validation_failed");
  });
});

describe("methods", () => {
  it("a known path with the wrong method is a 405 with Allow; an unknown path a 404", async () => {
    const w = await createWorld();
    const auth = { authorization: `Bearer ${w.tokens.alice}` };
    const cases: [string, string, string][] = [
      ["PUT", "/v1/jobs", "POST, GET, HEAD"],
      ["DELETE", "/v1/jobs/job_1", "GET, HEAD"],
      ["GET", "/v1/jobs/job_1/cancel", "POST"],
      ["PATCH", "/v1/me", "GET, HEAD"],
      ["POST", "/healthz", "GET, HEAD"],
    ];
    for (const [method, path, allow] of cases) {
      const res = await asResult(await w.app.request(path, { method, headers: auth }));
      expect(expectProblemShape(res, 405).code).toBe("method_not_allowed");
      expect(res.headers.get("allow")).toBe(allow);
    }
    const unknown = await asResult(await w.app.request("/v1/jobs/a/b/c", { headers: auth }));
    expect(expectProblemShape(unknown, 404).code).toBe("not_found");
  });

  it("an HTTPException of a status the table does not know is still a 4xx problem, never a 500", async () => {
    const w = await createWorld();
    w.app.get("/teapot", () => {
      throw new HTTPException(418, { message: "short and stout" });
    });
    const res = await asResult(await w.app.request("/teapot"));
    expect(expectProblemShape(res, 400)).toMatchObject({ code: "bad_request", detail: "short and stout" });
  });
});

describe("request ids", () => {
  it("every answer carries X-Request-Id, and every problem body the same id", async () => {
    const w = await createWorld();
    const ok = await w.app.request("/healthz");
    expect(ok.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
    const seen = new Set<string>();
    for (const [path, init] of [
      ["/v1/jobs", { method: "POST", body: "{" }],
      ["/v1/me", {}],
      ["/nowhere", {}],
      ["/v1/jobs", { method: "POST", headers: { authorization: `Bearer ${w.tokens.alice}` }, body: "{" }],
    ] as [string, RequestInit][]) {
      const res = await asResult(await w.app.request(path, init));
      const id = res.headers.get("x-request-id");
      expect(id).toBeTruthy();
      expect(res.body.requestId).toBe(id);
      expect(Problem.parse(res.body).requestId).toBe(id);
      seen.add(id as string);
    }
    expect(seen.size).toBe(4);
  });

  it("a sane incoming X-Request-Id is kept; a hostile one is replaced", async () => {
    const w = await createWorld();
    const kept = await asResult(await w.app.request("/v1/me", { headers: { "x-request-id": "trace-42_ABC=" } }));
    expect(kept.headers.get("x-request-id")).toBe("trace-42_ABC=");
    expect(kept.body.requestId).toBe("trace-42_ABC=");
    for (const hostile of ["a b", "x".repeat(129), "<script>", "id;drop", "ä", "a\tb"]) {
      const res = await asResult(await w.app.request("/v1/me", { headers: { "x-request-id": hostile } }));
      const id = res.headers.get("x-request-id");
      expect(id).not.toBe(hostile);
      expect(id).toMatch(/^[0-9a-f-]{36}$/);
      expect(res.body.requestId).toBe(id);
    }
  });
});

describe("5xx answers are logged with their request id", () => {
  it("an unhandled error is a 500 problem whose requestId is in exactly one error log line", async () => {
    const w = await createWorld();
    w.db.client.close();
    const res = await asResult(
      await w.app.request("/v1/me", {
        headers: { authorization: `Bearer ${w.tokens.alice}`, "x-request-id": "req-broken-db" },
      }),
    );
    expect(expectProblemShape(res, 500)).toMatchObject({ code: "internal", requestId: "req-broken-db" });
    expect(res.body.detail).not.toMatch(/libsql|sqlite|closed/i);
    const lines = w.logs.filter((l) => l.requestId === "req-broken-db");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: "error", status: 500, path: "/v1/me", method: "GET" });
    expect(String(lines[0]?.error)).toBeTruthy();
  });

  it("a thrown 503 problem and a returned 5xx are logged once each, with their ids", async () => {
    const w = await createWorld();
    const { ApiProblem } = await import("../../gateway/problem.ts");
    w.app.get("/thrown", () => {
      throw new ApiProblem("unavailable", "database away");
    });
    w.app.get("/returned", (c) => c.text("upstream down", 502));
    const thrown = await asResult(await w.app.request("/thrown", { headers: { "x-request-id": "t1" } }));
    expect(expectProblemShape(thrown, 503)).toMatchObject({ requestId: "t1" });
    const returned = await w.app.request("/returned", { headers: { "x-request-id": "r1" } });
    expect(returned.status).toBe(502);
    expect(w.logs.filter((l) => l.requestId === "t1")).toMatchObject([{ level: "error", status: 503 }]);
    expect(w.logs.filter((l) => l.requestId === "r1")).toMatchObject([{ level: "error", status: 502 }]);
    // 4xx are the caller's business, not the operator's: no error lines for them.
    await w.app.request("/v1/me");
    expect(w.logs.filter((l) => l.level === "error")).toHaveLength(2);
  });
});

describe("the Worker's own answer before the app runs", () => {
  it("a misconfigured Worker's 503 carries a request id too, in header, body and log line", async () => {
    const { default: worker } = await import("../../gateway/worker.ts");
    const lines: string[] = [];
    const spy = vi.spyOn(console, "error").mockImplementation((line: string) => void lines.push(line));
    try {
      const res = await worker.fetch(
        new Request("http://gateway.test/v1/me", { headers: { "x-request-id": "edge-7" } }),
        {},
        { waitUntil: () => {} },
      );
      const body = await asResult(res);
      expect(expectProblemShape(body, 503)).toMatchObject({ code: "unavailable", requestId: "edge-7" });
      expect(res.headers.get("x-request-id")).toBe("edge-7");
      expect(lines.map((l) => JSON.parse(l))).toMatchObject([{ level: "error", requestId: "edge-7" }]);
      const fresh = await worker.fetch(
        new Request("http://gateway.test/healthz", { headers: { "x-request-id": "not ok!" } }),
        {},
        { waitUntil: () => {} },
      );
      const id = fresh.headers.get("x-request-id");
      expect(id).toMatch(/^[0-9a-f-]{36}$/);
      expect((await fresh.json()).requestId).toBe(id);
    } finally {
      spy.mockRestore();
    }
  });
});
