/**
 * The client in a real browser (Debian's chromium, driven by playwright-core) on a page served from
 * another loopback origin than a real gateway process: the listed origin can call the API and read
 * its answers and refusals; an unlisted one is blocked by the browser itself. No chromium → the
 * test fails, it never skips.
 */
import { createServer, type Server } from "node:http";
import { build } from "esbuild";
import type { Browser, Page } from "playwright-core";
import { launchChromium } from "../helpers/chromium.ts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort, type GatewayProcess, ROOT, startGatewayProcess } from "../helpers/gateway-process.ts";
import { type OidcTestProvider, startOidcProvider } from "../helpers/oidc-provider.ts";

type Site = { origin: string; server: Server };

/** A page origin serving an empty page and the client bundled for browsers at /client.js. */
async function startSite(clientJs: string): Promise<Site> {
  const port = await freePort();
  const server = createServer((req, res) => {
    if (req.url === "/client.js") {
      res.writeHead(200, { "content-type": "text/javascript" }).end(clientJs);
    } else {
      res
        .writeHead(200, { "content-type": "text/html" })
        .end(
          '<!doctype html><title>page</title><script type="module">import { createClient } from "/client.js"; window.createClient = createClient;</script>',
        );
    }
  });
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  return { origin: `http://127.0.0.1:${port}`, server };
}

/** What a page script saw: a value, or the error the client threw (with the problem's fields if any). */
type Outcome = {
  ok: boolean;
  value?: unknown;
  error?: { name: string; message: string; status?: number; code?: string; field?: string; requestId?: string };
};

/**
 * Runs `body` in the page as the body of an async function with `createClient`, `gateway` and
 * `token` in scope. Sent as source text, so the test runner's transforms never touch it.
 */
function inPage(page: Page, body: string, gateway: string, token: string): Promise<Outcome> {
  return page.evaluate(`(async () => {
    const createClient = window.createClient;
    const gateway = ${JSON.stringify(gateway)};
    const token = ${JSON.stringify(token)};
    try {
      return { ok: true, value: await (async () => { ${body} })() };
    } catch (err) {
      return { ok: false, error: { name: err.name, message: err.message, status: err.status, code: err.code,
        field: err.field, requestId: err.problem?.requestId } };
    }
  })()`);
}

describe("the client in chromium, across origins", () => {
  let browser: Browser;
  let allowed: Site;
  let other: Site;
  let gateway: GatewayProcess;
  let wildcard: GatewayProcess;
  let token: string;
  let op: OidcTestProvider;
  const consoleLines: string[] = [];

  beforeAll(async () => {
    const bundle = await build({
      entryPoints: [`${ROOT}/client/index.ts`],
      bundle: true,
      format: "esm",
      platform: "browser",
      target: "es2022",
      write: false,
    });
    const clientJs = bundle.outputFiles[0]?.text ?? "";
    allowed = await startSite(clientJs);
    other = await startSite(clientJs);
    op = await startOidcProvider();
    const issuers = [{ issuer: op.issuer, audience: "slurmgate", user: { claim: "preferred_username" } }];
    [gateway, wildcard] = await Promise.all([
      startGatewayProcess({
        SLURMGATE_CORS_ORIGINS: allowed.origin,
        SLURMGATE_OIDC_ISSUERS: JSON.stringify(issuers),
      }),
      startGatewayProcess({ SLURMGATE_CORS_ORIGINS: "*" }),
    ]);
    // Seeded from Node (same origin as nothing): a user with a token on each gateway.
    token = await seedUser(gateway);
    browser = await launchChromium();
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await Promise.all([gateway?.stop(), wildcard?.stop(), op?.close()]);
    for (const site of [allowed, other]) {
      site?.server.close();
    }
  });

  async function open(site: Site): Promise<Page> {
    const page = await browser.newPage();
    page.on("console", (m) => consoleLines.push(`${site.origin}: ${m.text()}`));
    await page.goto(`${site.origin}/`);
    await page.waitForFunction("typeof window.createClient === 'function'");
    return page;
  }

  it("a listed origin calls GET /v1/me with a token and reads the answer and its X-Request-Id", async () => {
    const page = await open(allowed);
    const me = await inPage(page, "return await createClient({ baseUrl: gateway, token }).me();", gateway.url, token);
    expect(me, consoleLines.join("\n")).toMatchObject({ ok: true, value: { user: "alice", kind: "user" } });

    const raw = await inPage(
      page,
      `const res = await fetch(gateway + "/v1/me", { headers: { authorization: "Bearer " + token, "x-request-id": "page-1" } });
       return { status: res.status, requestId: res.headers.get("x-request-id") };`,
      gateway.url,
      token,
    );
    expect(raw).toMatchObject({ ok: true, value: { status: 200, requestId: "page-1" } });
    await page.close();
  });

  it("a listed origin reads the gateway's refusals as typed errors (401, 422), not as network failures", async () => {
    const page = await open(allowed);
    const unauthorized = await inPage(
      page,
      `return await createClient({ baseUrl: gateway, token: "sgu_not-a-real-token", retry: { attempts: 1 } }).me();`,
      gateway.url,
      token,
    );
    expect(unauthorized.error).toMatchObject({ name: "SlurmgateError", status: 401, code: "unauthorized" });
    expect(unauthorized.error?.requestId).toBeTruthy();

    // POST with authorization, content-type and idempotency-key: a preflight the gateway must pass.
    const invalid = await inPage(
      page,
      `return await createClient({ baseUrl: gateway, token, retry: { attempts: 1 } })
         .submit({ name: "web", command: ["true"], walltime: "1h" });`,
      gateway.url,
      token,
    );
    expect(invalid.error).toMatchObject({
      name: "SlurmgateError",
      status: 422,
      code: "validation_failed",
      field: "body.walltime",
    });
    await page.close();
  });

  it("a listed origin calls with an ID token from the identity provider, and reads a refused one", async () => {
    const page = await open(allowed);
    const idToken = await op.issueIdToken({ preferred_username: "alice" });
    const me = await inPage(page, "return await createClient({ baseUrl: gateway, token }).me();", gateway.url, idToken);
    expect(me, consoleLines.join("\n")).toMatchObject({
      ok: true,
      value: { user: "alice", via: { kind: "oidc", issuer: op.issuer } },
    });

    const forged = `${idToken.slice(0, idToken.lastIndexOf(".") + 1)}AAAA`;
    const refused = await inPage(
      page,
      "return await createClient({ baseUrl: gateway, token, retry: { attempts: 1 } }).me();",
      gateway.url,
      forged,
    );
    expect(refused.error).toMatchObject({ name: "SlurmgateError", status: 401, code: "unauthorized" });
    await page.close();
  });

  it("a listed origin cannot use a method no route serves: the browser blocks it at the preflight", async () => {
    const page = await open(allowed);
    const patch = await inPage(
      page,
      `return (await fetch(gateway + "/v1/me", { method: "PATCH", headers: { authorization: "Bearer " + token } })).status;`,
      gateway.url,
      token,
    );
    expect(patch).toMatchObject({ ok: false, error: { name: "TypeError" } });
    await page.close();
  });

  it("an unlisted origin is blocked by the browser, through the client and through plain fetch", async () => {
    const page = await open(other);
    const viaClient = await inPage(
      page,
      "return await createClient({ baseUrl: gateway, token, retry: { attempts: 1 } }).me();",
      gateway.url,
      token,
    );
    expect(viaClient.ok).toBe(false);
    expect(viaClient.error?.name).toBe("NetworkError");
    expect(viaClient.error?.status).toBeUndefined();

    const viaFetch = await inPage(
      page,
      `return (await fetch(gateway + "/v1/me", { headers: { authorization: "Bearer " + token } })).status;`,
      gateway.url,
      token,
    );
    expect(viaFetch).toMatchObject({ ok: false, error: { name: "TypeError" } });

    // Even a request needing no preflight: the gateway answers, the browser withholds the answer.
    const simple = await inPage(page, `return (await fetch(gateway + "/healthz")).status;`, gateway.url, token);
    expect(simple).toMatchObject({ ok: false, error: { name: "TypeError" } });
    await page.close();
  });

  it("with `*` any origin may call with a token, but never with the browser's credentials", async () => {
    const wildToken = await seedUser(wildcard);
    const page = await open(other);
    const me = await inPage(
      page,
      "return (await createClient({ baseUrl: gateway, token }).me()).user;",
      wildcard.url,
      wildToken,
    );
    expect(me).toMatchObject({ ok: true, value: "alice" });

    const withCredentials = await inPage(
      page,
      `return (await fetch(gateway + "/v1/me", { credentials: "include", headers: { authorization: "Bearer " + token } })).status;`,
      wildcard.url,
      wildToken,
    );
    expect(withCredentials).toMatchObject({ ok: false, error: { name: "TypeError" } });
    await page.close();
  });
});

/** Creates user alice through the admin API and returns a token of hers. */
async function seedUser(gw: GatewayProcess): Promise<string> {
  const admin = (method: string, path: string, body: unknown) =>
    fetch(gw.url + path, {
      method,
      headers: { authorization: `Bearer ${gw.adminToken}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    }).then(async (res) => {
      const json = (await res.json()) as Record<string, unknown>;
      if (!res.ok) {
        throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
      }
      return json;
    });
  await admin("POST", "/v1/admin/users", { name: "alice" });
  const created = await admin("POST", "/v1/admin/tokens", { kind: "user", user: "alice", label: "browser" });
  return String(created.token);
}
