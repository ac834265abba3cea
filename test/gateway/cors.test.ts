/**
 * CORS through the real app: a listed origin's preflight is answered without a token, its answers
 * (refusals included) carry the headers a browser needs to show them to the page, and every other
 * origin gets nothing a browser would accept.
 */
import { Hono } from "hono";
import { describe, expect, it } from "vitest";
import openapi from "../../client/openapi.json" with { type: "json" };
import { parseGatewayConfig } from "../../gateway/config.ts";
import { CORS_ALLOW_HEADERS, CORS_MAX_AGE_SECONDS, cors } from "../../gateway/middleware/cors.ts";
import { createWorld, expectProblemShape, spec } from "./world.ts";

const APP = "https://app.example.org";
const OTHER = "https://notebook.example.org:8443";

/** Every method the published API serves, and HEAD beside GET. */
const apiMethods = [
  ...new Set([
    "GET",
    "HEAD",
    ...Object.values(openapi.paths as Record<string, Record<string, unknown>>).flatMap((ops) =>
      Object.keys(ops).map((m) => m.toUpperCase()),
    ),
  ]),
].sort();

const listOf = (header: string | null) =>
  (header ?? "")
    .split(",")
    .map((v) => v.trim().toLowerCase())
    .filter((v) => v !== "");

function corsHeaders(headers: Headers): string[] {
  return [...headers.keys()].filter((name) => name.startsWith("access-control-"));
}

const preflight = (method: string, headers: Record<string, string> = {}) => ({
  "access-control-request-method": method,
  ...headers,
});

describe("CORS preflight", () => {
  it("answers a listed origin's preflight 204 without a token, with the API's methods and the client's headers", async () => {
    const w = await createWorld({ SLURMGATE_CORS_ORIGINS: `${APP}, ${OTHER}` });
    for (const origin of [APP, OTHER]) {
      const res = await w.call(
        "OPTIONS",
        "/v1/jobs",
        undefined,
        undefined,
        preflight("POST", { origin, "access-control-request-headers": "authorization,content-type,idempotency-key" }),
      );
      expect(res.status).toBe(204);
      expect(res.body).toBeUndefined();
      expect(res.headers.get("access-control-allow-origin")).toBe(origin);
      expect(res.headers.get("access-control-allow-credentials")).toBe("true");
      expect(
        listOf(res.headers.get("access-control-allow-methods"))
          .map((m) => m.toUpperCase())
          .sort(),
      ).toEqual(apiMethods);
      expect(listOf(res.headers.get("access-control-allow-headers"))).toEqual(
        expect.arrayContaining(["authorization", "content-type", "idempotency-key", "x-request-id", "if-none-match"]),
      );
      expect(res.headers.get("access-control-max-age")).toBe(String(CORS_MAX_AGE_SECONDS));
      expect(listOf(res.headers.get("vary"))).toContain("origin");
    }
  });

  it("allows every request header the OpenAPI document declares, so a new one cannot be forgotten", () => {
    type Operation = { parameters?: { in: string; name: string }[] };
    const declared = Object.values(openapi.paths as Record<string, Record<string, Operation>>).flatMap((ops) =>
      Object.values(ops).flatMap((op) => (op.parameters ?? []).filter((p) => p.in === "header").map((p) => p.name)),
    );
    expect(declared.length).toBeGreaterThan(0);
    for (const name of declared) {
      expect(CORS_ALLOW_HEADERS as readonly string[]).toContain(name.toLowerCase());
    }
  });

  it("answers the preflight of every route, including admin and agent routes, before authentication", async () => {
    const w = await createWorld({ SLURMGATE_CORS_ORIGINS: APP });
    for (const [path, ops] of Object.entries(openapi.paths as Record<string, Record<string, unknown>>)) {
      for (const method of Object.keys(ops)) {
        const res = await w.call(
          "OPTIONS",
          path.replace(/\{[^}]+\}/g, "x"),
          undefined,
          undefined,
          preflight(method.toUpperCase(), { origin: APP }),
        );
        expect(res.status, `${method} ${path}`).toBe(204);
        expect(res.headers.get("access-control-allow-origin")).toBe(APP);
      }
    }
  });

  it("refuses an unlisted origin's preflight with a 403 problem and no CORS header at all", async () => {
    const w = await createWorld({ SLURMGATE_CORS_ORIGINS: APP });
    const lookalikes = [
      "https://evil.example",
      `${APP}.evil.example`, // suffix
      "https://evil-app.example.org",
      "http://app.example.org", // another scheme
      `${APP}:444`, // another port
      "https://APP.example.org", // browsers never send upper case; an exact list never matches it
      `${APP}/`,
      "null", // sandboxed iframes and file: pages
      "",
      `${APP} ${APP}`,
      `https://${"a".repeat(10_000)}.example`,
    ];
    for (const origin of lookalikes) {
      const res = await w.call("OPTIONS", "/v1/me", undefined, undefined, preflight("GET", { origin }));
      const problem = expectProblemShape(res, 403);
      expect(problem.field, origin).toBe("header.origin");
      expect(corsHeaders(res.headers), origin).toEqual([]);
      expect(JSON.stringify(res.body).length).toBeLessThan(1_000);
    }
  });

  it("refuses every preflight when no origin is configured (the default)", async () => {
    const w = await createWorld();
    const res = await w.call("OPTIONS", "/v1/me", undefined, undefined, preflight("GET", { origin: APP }));
    expectProblemShape(res, 403);
    expect(corsHeaders(res.headers)).toEqual([]);
  });

  it("does not offer a method no route serves, so the browser blocks it", async () => {
    const w = await createWorld({ SLURMGATE_CORS_ORIGINS: APP });
    for (const method of ["PATCH", "TRACE", "CONNECT", "QUERY", "get, PATCH"]) {
      const res = await w.call("OPTIONS", "/v1/me", undefined, undefined, preflight(method, { origin: APP }));
      expect(res.status).toBe(204);
      expect(listOf(res.headers.get("access-control-allow-methods")).map((m) => m.toUpperCase())).not.toContain(
        method.toUpperCase(),
      );
      expect(res.headers.get("access-control-allow-methods")).not.toMatch(/PATCH|TRACE|CONNECT|QUERY|\*/);
    }
  });

  it("keeps a plain OPTIONS (no Origin, or no Access-Control-Request-Method) a 405 or 401 as before", async () => {
    const w = await createWorld({ SLURMGATE_CORS_ORIGINS: APP });
    const bare = await w.call("OPTIONS", "/healthz", undefined);
    expectProblemShape(bare, 405);
    expect(bare.headers.get("allow")).toContain("GET");
    expect(corsHeaders(bare.headers)).toEqual([]);

    // A cross-origin OPTIONS that is not a preflight is an actual request: 405, readable by the page.
    const actual = await w.call("OPTIONS", "/v1/me", w.tokens.alice, undefined, { origin: APP });
    expectProblemShape(actual, 405);
    expect(actual.headers.get("access-control-allow-origin")).toBe(APP);
    expect(actual.headers.get("access-control-allow-methods")).toBeNull();

    // Without a token and without the preflight header it is not let past authentication.
    expectProblemShape(await w.call("OPTIONS", "/v1/me", undefined, undefined, { origin: APP }), 401);
    // A preflight header without Origin is not a browser's preflight either.
    expectProblemShape(await w.call("OPTIONS", "/v1/me", undefined, undefined, preflight("GET")), 401);
  });
});

describe("CORS on actual requests", () => {
  it("lets a listed origin read the answer and the headers the client uses", async () => {
    const w = await createWorld({ SLURMGATE_CORS_ORIGINS: APP });
    const me = await w.call("GET", "/v1/me", w.tokens.alice, undefined, { origin: APP });
    expect(me.status).toBe(200);
    expect(me.headers.get("access-control-allow-origin")).toBe(APP);
    expect(me.headers.get("access-control-allow-credentials")).toBe("true");
    expect(listOf(me.headers.get("access-control-expose-headers"))).toEqual(
      expect.arrayContaining(["x-request-id", "retry-after", "location", "etag"]),
    );
    expect(listOf(me.headers.get("vary"))).toContain("origin");

    const created = await w.call("POST", "/v1/jobs", w.tokens.alice, spec(), { origin: APP, "idempotency-key": "k1" });
    expect(created.status).toBe(201);
    expect(created.headers.get("location")).toMatch(/^\/v1\/jobs\//);
    expect(created.headers.get("access-control-allow-origin")).toBe(APP);
  });

  it("gives an unlisted origin the answer but no Access-Control-Allow-Origin, so the browser withholds it", async () => {
    const w = await createWorld({ SLURMGATE_CORS_ORIGINS: APP });
    for (const origin of ["https://evil.example", "null", `${APP}.evil.example`]) {
      const res = await w.call("GET", "/v1/me", w.tokens.alice, undefined, { origin });
      expect(res.status).toBe(200);
      expect(corsHeaders(res.headers), origin).toEqual([]);
      expect(listOf(res.headers.get("vary"))).toContain("origin");
    }
  });

  it("answers `*` as `*` and never allows credentials with it; a listed origin beside it keeps its own", async () => {
    const w = await createWorld({ SLURMGATE_CORS_ORIGINS: `*, ${APP}` });
    for (const origin of ["https://anyone.example", "null"]) {
      const pre = await w.call("OPTIONS", "/v1/me", undefined, undefined, preflight("GET", { origin }));
      expect(pre.status).toBe(204);
      expect(pre.headers.get("access-control-allow-origin")).toBe("*");
      expect(pre.headers.get("access-control-allow-credentials")).toBeNull();
      const res = await w.call("GET", "/v1/me", w.tokens.alice, undefined, { origin });
      expect(res.headers.get("access-control-allow-origin")).toBe("*");
      expect(res.headers.get("access-control-allow-credentials")).toBeNull();
    }
    const listed = await w.call("GET", "/v1/me", w.tokens.alice, undefined, { origin: APP });
    expect(listed.headers.get("access-control-allow-origin")).toBe(APP);
    expect(listed.headers.get("access-control-allow-credentials")).toBe("true");

    const only = await createWorld({ SLURMGATE_CORS_ORIGINS: "*" });
    const res = await only.call("GET", "/v1/me", only.tokens.alice, undefined, { origin: APP });
    expect(res.headers.get("access-control-allow-origin")).toBe("*");
    expect(res.headers.get("access-control-allow-credentials")).toBeNull();
  });

  it("puts the CORS headers on problems too (401, 404, 405, 413, 415, 422, 429), or the page could not read them", async () => {
    const w = await createWorld({ SLURMGATE_CORS_ORIGINS: APP, SLURMGATE_BODY_LIMIT_BYTES: "1024" });
    const h = { origin: APP };
    const cases: [number, ReturnType<typeof w.call>][] = [
      [401, w.call("GET", "/v1/me", undefined, undefined, h)],
      [401, w.call("GET", "/v1/me", "sgu_not-a-token", undefined, h)],
      [404, w.call("GET", "/v1/nowhere", w.tokens.bob, undefined, h)],
      [405, w.call("PUT", "/v1/me", w.tokens.bob, undefined, h)],
      [413, w.call("POST", "/v1/jobs", w.tokens.bob, spec({ env: { A: "x".repeat(4_000) } }), h)],
      [415, w.call("POST", "/v1/jobs", w.tokens.bob, "{}", { ...h, "content-type": "text/plain" })],
      [422, w.call("POST", "/v1/jobs", w.tokens.bob, { ...spec(), walltime: "1h" }, h)],
    ];
    for (const [status, pending] of cases) {
      const res = await pending;
      expectProblemShape(res, status);
      expect(res.headers.get("access-control-allow-origin"), String(status)).toBe(APP);
      expect(listOf(res.headers.get("access-control-expose-headers"))).toContain("x-request-id");
    }
    // A bucket of one request: the second is a 429 whose Retry-After the page must be able to read.
    const rl = await createWorld({
      SLURMGATE_CORS_ORIGINS: APP,
      SLURMGATE_RATE_LIMIT_PER_SECOND: "1",
      SLURMGATE_RATE_LIMIT_BURST: "1",
    });
    await rl.call("GET", "/v1/me", rl.tokens.alice, undefined, h);
    const limited = await rl.call("GET", "/v1/me", rl.tokens.alice, undefined, h);
    expectProblemShape(limited, 429);
    expect(limited.headers.get("access-control-allow-origin")).toBe(APP);
    expect(limited.headers.get("retry-after")).toMatch(/^\d+$/);
    expect(listOf(limited.headers.get("access-control-expose-headers"))).toContain("retry-after");
  });

  it("puts the CORS headers on a 500 from a broken database", async () => {
    const w = await createWorld({ SLURMGATE_CORS_ORIGINS: APP });
    await w.db.client.execute("DROP TABLE tokens");
    const res = await w.call("GET", "/v1/me", "sgu_whatever", undefined, { origin: APP });
    expectProblemShape(res, 500);
    expect(res.headers.get("access-control-allow-origin")).toBe(APP);
    expect(res.headers.get("x-request-id")).toBeTruthy();
  });
});

describe("CORS on answers it did not build", () => {
  it("still adds its headers to a Response whose headers are immutable (a redirect, a fetched answer)", async () => {
    const app = new Hono();
    app.use("*", cors({ origins: [APP], routes: () => app.routes }));
    app.get("/moved", () => Response.redirect("https://elsewhere.example/", 302));
    const res = await app.request("/moved", { headers: { origin: APP } });
    expect(res.status).toBe(302);
    expect(res.headers.get("location")).toBe("https://elsewhere.example/");
    expect(res.headers.get("access-control-allow-origin")).toBe(APP);
    expect(res.headers.get("vary")).toBe("Origin");
  });
});

describe("SLURMGATE_CORS_ORIGINS", () => {
  it("takes exact origins and `*`", () => {
    expect(
      parseGatewayConfig({ SLURMGATE_CORS_ORIGINS: ` ${APP} ,http://127.0.0.1:5173,*,` }).SLURMGATE_CORS_ORIGINS,
    ).toEqual([APP, "http://127.0.0.1:5173", "*"]);
    expect(parseGatewayConfig({}).SLURMGATE_CORS_ORIGINS).toEqual([]);
  });

  it("stops start-up on an entry a browser's Origin could never equal, naming the variable and the fix", () => {
    const cases: [string, RegExp][] = [
      [`${APP}/`, /write https:\/\/app\.example\.org \(got/],
      ["HTTPS://App.Example.org", /write https:\/\/app\.example\.org \(got/],
      [`${APP}:443`, /write https:\/\/app\.example\.org \(got/],
      [`${APP}/ui`, /write https:\/\/app\.example\.org \(got/],
      ["app.example.org", /not an origin/],
      ["null", /not an origin/],
      ["file:///tmp/page.html", /not an http\(s\) origin/],
      ["*.example.org", /not an origin/],
    ];
    for (const [value, message] of cases) {
      expect(() => parseGatewayConfig({ SLURMGATE_CORS_ORIGINS: value }), value).toThrow(
        /^invalid SLURMGATE_CORS_ORIGINS: /,
      );
      expect(() => parseGatewayConfig({ SLURMGATE_CORS_ORIGINS: value }), value).toThrow(message);
    }
  });
});
