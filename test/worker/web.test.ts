/**
 * The jobs page and /docs from the Worker in real workerd: the same HTML, hashed assets and
 * headers as Node (bundled into the Worker, no CDN, no static-asset service needed), and the page
 * signs in against the Worker's own API in chromium with its CSP intact.
 */
import { launchChromium } from "../helpers/chromium.ts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DOCS_CSP, PAGE_CSP } from "../../gateway/routes/web.ts";
import { WEB_ASSETS } from "../../gateway/web/assets.generated.ts";
import { startWorkerTarget, type WorkerTarget } from "../helpers/worker-target.ts";

describe("the web page on the Worker in workerd", () => {
  let target: WorkerTarget;

  beforeAll(async () => {
    target = await startWorkerTarget({ vars: { SLURMGATE_RATE_LIMIT_PER_SECOND: "0" } });
  }, 120_000);

  afterAll(async () => {
    await target?.close();
  });

  it("redirects / to /ui/ and serves the page with the strict CSP, revalidated every time", async () => {
    const root = await fetch(`${target.baseUrl}/`, { redirect: "manual" });
    expect(root.status).toBe(302);
    expect(root.headers.get("location")).toBe("/ui/");
    const page = await fetch(`${target.baseUrl}/ui/`);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-security-policy")).toBe(PAGE_CSP);
    expect(PAGE_CSP).not.toMatch(/unsafe-(inline|eval)/);
    expect(page.headers.get("cache-control")).toBe("no-cache");
    expect(page.headers.get("x-content-type-options")).toBe("nosniff");
    expect(await page.text()).toContain(`/ui/assets/${WEB_ASSETS.app.name}`);
  });

  it("serves every asset byte for byte, immutable, and /docs with its own CSP", async () => {
    for (const asset of Object.values(WEB_ASSETS)) {
      const res = await fetch(`${target.baseUrl}/ui/assets/${asset.name}`);
      expect(res.status, asset.name).toBe(200);
      expect(res.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
      expect(res.headers.get("content-type")).toBe(asset.type);
      expect(await res.text()).toBe(asset.body);
    }
    const docs = await fetch(`${target.baseUrl}/docs`);
    expect(docs.headers.get("content-security-policy")).toBe(DOCS_CSP);
    expect(DOCS_CSP).toContain("script-src 'self';");
    const html = await docs.text();
    expect(html).toContain(`/docs/assets/${WEB_ASSETS.swaggerJs.name}`);
    expect(html).toContain(`/docs/assets/${WEB_ASSETS.docsInit.name}`);
    const unknown = await fetch(`${target.baseUrl}/ui/assets/app.ffffffffffff.js`);
    expect(unknown.status).toBe(404);
  });

  it("signs in in chromium against the Worker and shows the jobs page, with no CSP violation", async () => {
    const browser = await launchChromium();
    try {
      const page = await browser.newPage();
      const problems: string[] = [];
      await page.addInitScript(() => {
        document.addEventListener("securitypolicyviolation", (e) =>
          console.error(`CSP violation: ${e.violatedDirective}`),
        );
      });
      page.on("console", (m) => m.type() === "error" && problems.push(m.text()));
      page.on("pageerror", (err) => problems.push(String(err)));
      await page.goto(`${target.baseUrl}/`);
      await page.getByLabel("API token").fill(target.adminToken);
      await page.getByRole("button", { name: "Sign in" }).click();
      await page.getByRole("heading", { name: "My jobs" }).waitFor();
      await page.getByRole("link", { name: "Users" }).click();
      await page.getByRole("cell", { name: "admin" }).first().waitFor();
      await page.goto(`${target.baseUrl}/docs`);
      await page.locator(".opblock-post", { hasText: "/v1/jobs" }).first().waitFor();
      expect(problems).toEqual([]);
    } finally {
      await browser.close();
    }
  }, 60_000);
});
