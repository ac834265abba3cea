/**
 * Signing in to the web page with OpenID Connect, in Debian's chromium, against a real gateway and
 * real `oidc-provider`s: the user clicks "Sign in with …", fills the provider's login and consent
 * pages, and lands on the jobs page as the mapped user. Then the hostile cases: a wrong or missing
 * `state`, a replayed callback, an ID token for another `nonce`, an issuer not offered to browsers,
 * a name the gateway refuses, and an ID token that expires with and without a refresh token.
 * CSP violations and console errors of the page's own origin must stay at zero, and no code or
 * token may appear in a URL or a console message.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OidcIssuer } from "../../gateway/auth/oidc-config.ts";
import { launchChromium } from "../helpers/chromium.ts";
import { freePort, type GatewayProcess, ROOT, startGatewayProcess } from "../helpers/gateway-process.ts";
import { sampleInventory } from "../helpers/gateway.ts";
import {
  OIDC_BROWSER_CLIENT_ID,
  OIDC_CLIENT_ID,
  type OidcTestProvider,
  startOidcProvider,
} from "../helpers/oidc-provider.ts";

const ARTIFACTS = join(ROOT, "test-artifacts");
const USER_PATTERN = "^[a-z][a-z0-9-]{1,31}$";

const issuerConfig = (issuer: string, browser: boolean) => ({
  issuer,
  audience: [OIDC_CLIENT_ID, OIDC_BROWSER_CLIENT_ID],
  ...(browser ? { browserClientId: OIDC_BROWSER_CLIENT_ID } : {}),
  user: { claim: "preferred_username", pattern: USER_PATTERN },
});

const WAIT = { timeout: 20_000 };

const host = (issuer: string) => new URL(issuer).host;

describe("signing in to the web page with OpenID Connect", () => {
  let browser: Browser;
  let gateway: GatewayProcess;
  /** Offered to browsers; long-lived tokens. */
  let op: OidcTestProvider;
  /** Trusted for API tokens only: never offered, never in connect-src. */
  let apiOnly: OidcTestProvider;
  /** Offered; ID tokens live 8 s; refresh tokens issued. */
  let short: OidcTestProvider;
  /** Offered; ID tokens live 8 s; no refresh token. */
  let brief: OidcTestProvider;
  let carolJob: string;
  let bobJob: string;
  const violations: string[] = [];
  const consoleErrors: string[] = [];
  const consoleAll: string[] = [];
  /** Every URL our origin's pages were at, and every request the browser made. */
  const urls: string[] = [];

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    const port = await freePort();
    const origin = `http://127.0.0.1:${port}`;
    const browserClient = { redirectUris: [`${origin}/ui/`] };
    op = await startOidcProvider({ browserClient });
    apiOnly = await startOidcProvider();
    short = await startOidcProvider({ browserClient, idTokenTtlSeconds: 8 });
    brief = await startOidcProvider({ browserClient: { ...browserClient, refresh: false }, idTokenTtlSeconds: 8 });
    const issuers = [
      issuerConfig(op.issuer, true),
      issuerConfig(apiOnly.issuer, false),
      issuerConfig(short.issuer, true),
      issuerConfig(brief.issuer, true),
    ];
    gateway = await startGatewayProcess({ PORT: String(port), SLURMGATE_OIDC_ISSUERS: JSON.stringify(issuers) });
    const call = async <T>(method: string, path: string, token: string, body?: unknown) => {
      const res = await fetch(gateway.url + path, {
        method,
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.text();
      if (!res.ok) {
        throw new Error(`${method} ${path}: ${res.status} ${text}`);
      }
      return JSON.parse(text) as T;
    };
    const admin = gateway.adminToken;
    await call("POST", "/v1/admin/clusters", admin, { name: "alpha", description: "test", sharedRoots: ["/shared"] });
    for (const user of ["carol", "bob"]) {
      await call("POST", "/v1/admin/users", admin, { name: user });
      await call("POST", "/v1/admin/grants", admin, { user, cluster: "alpha" });
    }
    const agent = (
      await call<{ token: string }>("POST", "/v1/admin/tokens", admin, { kind: "agent", cluster: "alpha" })
    ).token;
    await call("PUT", "/v1/agent/inventory", agent, sampleInventory("a100", "oidc-agent"));
    const submit = async (user: string, name: string) =>
      (
        await call<{ id: string }>("POST", "/v1/jobs", await op.issueIdToken({ preferred_username: user }), {
          name,
          command: ["echo", "hi"],
          cluster: "alpha",
        })
      ).id;
    carolJob = await submit("carol", "carols-job");
    bobJob = await submit("bob", "bobs-job");
    browser = await launchChromium();
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await gateway?.stop();
    for (const p of [op, apiOnly, short, brief]) {
      await p?.close();
    }
  });

  async function newPage(): Promise<Page> {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    await page.addInitScript(() => {
      document.addEventListener("securitypolicyviolation", (e) => {
        console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`);
      });
    });
    page.on("console", (m) => {
      consoleAll.push(m.text());
      // The provider's own dev pages are not ours to judge.
      if (!m.location().url.startsWith(gateway.url)) {
        return;
      }
      if (m.text().startsWith("CSP violation")) {
        violations.push(m.text());
      } else if (m.type() === "error" && !/status of 40[13]/.test(m.text())) {
        consoleErrors.push(m.text());
      }
    });
    page.on("pageerror", (err) => consoleErrors.push(String(err)));
    page.on("request", (r) => urls.push(r.url()));
    page.on("framenavigated", (f) => urls.push(f.url()));
    return page;
  }

  /** Plays the person at the provider: log in as `user` with any password, then consent. */
  async function atProvider(page: Page, provider: OidcTestProvider, user: string) {
    await page.waitForURL((u) => u.href.startsWith(provider.issuer));
    await page.locator('input[name="login"]').fill(user);
    await page.locator('input[name="password"]').fill("any password");
    await page.getByRole("button", { name: "Sign-in" }).click();
    await page.getByRole("button", { name: "Continue" }).click();
  }

  async function signInWith(page: Page, provider: OidcTestProvider, user: string) {
    await page.goto(`${gateway.url}/ui/`);
    await page.getByRole("button", { name: `Sign in with ${host(provider.issuer)}` }).click();
    await atProvider(page, provider, user);
  }

  const tokenPosts = (p: OidcTestProvider) => p.requests.filter((r) => r === "POST /token").length;
  const stored = (page: Page) =>
    page.evaluate(() => ({
      session: Object.fromEntries(Object.entries(sessionStorage)),
      local: Object.keys(localStorage).length,
    }));
  const shot = (page: Page, name: string) => page.screenshot({ path: join(ARTIFACTS, `web-oidc-${name}.png`) });

  it("a browser client id must be an audience the gateway verifies, and needs a user rule", () => {
    const base = { issuer: "https://idp.example.org", user: { claim: "preferred_username" } };
    expect(OidcIssuer.safeParse({ ...base, audience: "slurmgate", browserClientId: "web" }).success).toBe(false);
    expect(OidcIssuer.safeParse({ ...base, audience: ["slurmgate", "web"], browserClientId: "web" }).success).toBe(
      true,
    );
    const trustOnly = { issuer: base.issuer, audience: "web", browserClientId: "web" };
    const ci = { match: { repository: "o/r" }, actAs: "ci" };
    expect(OidcIssuer.safeParse({ ...trustOnly, trust: [ci] }).success).toBe(false);
  });

  it("offers only the issuers configured for browsers, and only their origins join connect-src", async () => {
    const res = await fetch(`${gateway.url}/ui/`);
    const csp = res.headers.get("content-security-policy") ?? "";
    const connect = /connect-src ([^;]*)/.exec(csp)?.[1]?.split(" ") ?? [];
    expect(connect.sort()).toEqual(
      ["'self'", new URL(op.issuer).origin, new URL(short.issuer).origin, new URL(brief.issuer).origin].sort(),
    );
    expect(csp).toContain("script-src 'self';");
    expect(csp).not.toMatch(/unsafe-(inline|eval)/);
    await res.text();

    const page = await newPage();
    await page.goto(`${gateway.url}/ui/`);
    const buttons = await page.getByRole("button", { name: /^Sign in with / }).allTextContents();
    expect(buttons.map((b) => b.trim()).sort()).toEqual(
      [op, short, brief].map((p) => `Sign in with ${host(p.issuer)}`).sort(),
    );
    await shot(page, "sign-in");
    await page.close();
  });

  it("signs in at the provider and lands on the jobs page as the mapped user, with no code in the URL", async () => {
    const page = await newPage();
    const before = tokenPosts(op);
    await signInWith(page, op, "carol");
    await page.getByRole("heading", { name: "My jobs" }).waitFor();
    await expect.poll(() => page.locator(".who").textContent(), WAIT).toBe("carol");
    await page.locator(`tr[data-job="${carolJob}"]`).waitFor();
    expect(await page.locator(`tr[data-job="${bobJob}"]`).count()).toBe(0);
    expect(tokenPosts(op)).toBe(before + 1);

    expect(new URL(page.url()).search).toBe("");
    expect(await page.evaluate(() => location.href)).not.toMatch(/code=|state=/);
    const { session, local } = await stored(page);
    expect(local).toBe(0);
    const idToken = session["slurmgate.token"] ?? "";
    expect(idToken.split(".")).toHaveLength(3);
    for (const u of urls) {
      expect(u).not.toContain(idToken);
    }
    for (const m of consoleAll) {
      expect(m).not.toContain(idToken);
    }
    await page.locator(`tr[data-job="${carolJob}"]`).click();
    await page.getByRole("heading", { name: /carols-job/ }).waitFor();
    await shot(page, "signed-in");

    // Sign-out forgets every credential of the tab.
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("button", { name: `Sign in with ${host(op.issuer)}` }).waitFor();
    expect(Object.keys((await stored(page)).session).filter((k) => k.startsWith("slurmgate"))).toEqual([]);

    // The callback replayed (history, a leaked link): refused by the page, nothing is exchanged.
    const callback = urls.find((u) => u.startsWith(`${gateway.url}/ui/?`) && u.includes("code="));
    expect(callback).toBeDefined();
    const posts = tokenPosts(op);
    await page.goto(callback as string);
    await expect.poll(async () => (await page.getByRole("alert").first().textContent()) ?? "", WAIT).toMatch("state");
    expect(tokenPosts(op)).toBe(posts);
    expect(new URL(page.url()).search).toBe("");
    await page.close();
  }, 60_000);

  it("a callback with a wrong or missing state is refused and nothing is exchanged", async () => {
    const page = await newPage();
    // A real code from the provider, but for a state this tab never issued.
    await page.route(
      (u) => u.href.startsWith(`${op.issuer}/auth?`),
      (route) => {
        const u = new URL(route.request().url());
        u.searchParams.set("state", "forged-state");
        return route.continue({ url: u.href });
      },
    );
    const posts = tokenPosts(op);
    await signInWith(page, op, "carol");
    await expect.poll(async () => (await page.getByRole("alert").first().textContent()) ?? "", WAIT).toMatch("state");
    expect(tokenPosts(op)).toBe(posts);
    expect(new URL(page.url()).search).toBe("");
    await page.unroute(() => true);

    // No state at all, with a sign-in under way in this tab.
    await page.getByRole("button", { name: `Sign in with ${host(op.issuer)}` }).click();
    await page.waitForURL((u) => u.href.startsWith(op.issuer));
    await page.goto(`${gateway.url}/ui/?code=made-up`);
    await expect.poll(async () => (await page.getByRole("alert").first().textContent()) ?? "", WAIT).toMatch("state");
    expect(tokenPosts(op)).toBe(posts);
    expect((await stored(page)).session["slurmgate.token"]).toBeUndefined();
    await shot(page, "refused-state");
    await page.close();
  }, 60_000);

  it("an ID token issued for another nonce is refused by the page", async () => {
    const page = await newPage();
    await page.route(
      (u) => u.href.startsWith(`${op.issuer}/auth?`),
      (route) => {
        const u = new URL(route.request().url());
        u.searchParams.set("nonce", "someone-elses-nonce");
        return route.continue({ url: u.href });
      },
    );
    await signInWith(page, op, "carol");
    await expect.poll(async () => (await page.getByRole("alert").first().textContent()) ?? "", WAIT).toMatch("nonce");
    expect((await stored(page)).session["slurmgate.token"]).toBeUndefined();
    expect(await page.locator(".who").count()).toBe(0);
    await page.close();
  }, 60_000);

  it("a person whose name the gateway refuses sees the gateway's reason", async () => {
    const page = await newPage();
    await signInWith(page, op, "Mallory_X");
    const alert = page.getByRole("alert");
    await expect.poll(async () => (await alert.first().textContent()) ?? "", WAIT).toMatch(/^40[13] /);
    await expect.poll(async () => (await alert.first().textContent()) ?? "", WAIT).toMatch("preferred_username");
    expect((await stored(page)).session["slurmgate.token"]).toBeUndefined();
    await shot(page, "refused-user");
    await page.close();
  }, 60_000);

  it("an expiring ID token is refreshed with the refresh token; without one, back to sign-in saying so", async () => {
    const page = await newPage();
    await signInWith(page, short, "carol");
    await expect.poll(() => page.locator(".who").textContent(), WAIT).toBe("carol");
    const first = (await stored(page)).session["slurmgate.token"];
    expect(JSON.parse((await stored(page)).session["slurmgate.oidc"] ?? "{}").refreshToken).toBeTruthy();
    await page.waitForTimeout(9_000);
    const posts = tokenPosts(short);
    await page.reload();
    await expect.poll(() => page.locator(".who").textContent(), WAIT).toBe("carol");
    await page.locator(`tr[data-job="${carolJob}"]`).waitFor();
    expect(tokenPosts(short)).toBeGreaterThan(posts);
    const renewed = (await stored(page)).session["slurmgate.token"] ?? "";
    const exp = JSON.parse(Buffer.from(renewed.split(".")[1] ?? "", "base64url").toString()).exp as number;
    expect(exp * 1000).toBeGreaterThan(Date.now());
    expect(renewed).not.toBe(first);
    await page.close();

    const other = await newPage();
    await signInWith(other, brief, "carol");
    await expect.poll(() => other.locator(".who").textContent(), WAIT).toBe("carol");
    expect(JSON.parse((await stored(other)).session["slurmgate.oidc"] ?? "{}").refreshToken).toBeUndefined();
    await other.waitForTimeout(9_000);
    await other.reload();
    await expect
      .poll(async () => (await other.getByRole("alert").first().textContent()) ?? "", WAIT)
      .toMatch("expired; sign in again");
    expect((await stored(other)).session["slurmgate.token"]).toBeUndefined();
    await shot(other, "expired");
    await other.close();
  }, 90_000);

  it("kept the CSP: no violation and no console error on the page's own origin", () => {
    expect(violations).toEqual([]);
    expect(consoleErrors).toEqual([]);
  });
});
