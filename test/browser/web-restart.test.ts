/**
 * Worst timing for the open jobs page: the gateway is killed (SIGKILL) and started again on the
 * same port and database while the page is open; the page's event stream reconnects by itself and
 * a job submitted after the restart still appears without a reload. Then the token is revoked
 * under the open page: its next call returns it to the sign-in form, saying why.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser } from "playwright-core";
import { launchChromium } from "../helpers/chromium.ts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort, type GatewayProcess, startGatewayProcess } from "../helpers/gateway-process.ts";
import { sampleInventory } from "../helpers/gateway.ts";

describe("the open jobs page across a gateway restart and a revoked token", () => {
  let dir: string;
  let dbUrl: string;
  let port: number;
  let gateway: GatewayProcess;
  let browser: Browser;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "slurmgate-web-restart-"));
    dbUrl = `file:${join(dir, "gateway.db")}`;
    port = await freePort();
    gateway = await startGatewayProcess({ PORT: String(port) }, { dbUrl });
    browser = await launchChromium();
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await gateway?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const call = async <T>(method: string, path: string, token: string, body?: unknown): Promise<T> => {
    const res = await fetch(gateway.url + path, {
      method,
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!res.ok) {
      throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
    }
    return (res.status === 204 ? undefined : await res.json()) as T;
  };

  it("keeps following after a SIGKILL and restart, and signs out readably when the token is revoked", async () => {
    const admin = gateway.adminToken;
    await call("POST", "/v1/admin/clusters", admin, { name: "alpha", sharedRoots: ["/shared"] });
    await call("POST", "/v1/admin/users", admin, { name: "alice" });
    await call("POST", "/v1/admin/grants", admin, { user: "alice", cluster: "alpha" });
    const alice = (await call<{ token: string }>("POST", "/v1/admin/tokens", admin, { kind: "user", user: "alice" }))
      .token;
    const agent = (
      await call<{ token: string }>("POST", "/v1/admin/tokens", admin, { kind: "agent", cluster: "alpha" })
    ).token;
    await call("PUT", "/v1/agent/inventory", agent, sampleInventory("a100", "restart-agent"));
    const submit = (name: string) =>
      call<{ id: string }>("POST", "/v1/jobs", alice, { name, command: ["true"], cluster: "alpha" });

    const page = await browser.newPage();
    const errors: string[] = [];
    page.on("pageerror", (err) => errors.push(String(err)));
    await page.goto(`${gateway.url}/`);
    await page.getByLabel("API token").fill(alice);
    await page.getByRole("button", { name: "Sign in" }).click();
    const before = await submit("before");
    await page.locator(`tr[data-job="${before.id}"]`).waitFor({ timeout: 10_000 });

    process.kill(gateway.pid, "SIGKILL");
    await gateway.stop();
    gateway = await startGatewayProcess({ PORT: String(port) }, { dbUrl });
    const after = await submit("after");
    await page.locator(`tr[data-job="${after.id}"]`).waitFor({ timeout: 20_000 });
    // Nothing repeated by the resumed stream: each job is on the page once.
    expect(await page.locator(`tr[data-job="${before.id}"]`).count()).toBe(1);

    const tokens = await call<{ items: { id: string; user: string | null; kind: string }[] }>(
      "GET",
      "/v1/admin/tokens?user=alice",
      admin, // the first process's bootstrap admin: the restarted one finds an admin and makes none
    );
    for (const t of tokens.items.filter((t) => t.kind === "user")) {
      await call("DELETE", `/v1/admin/tokens/${t.id}`, admin);
    }
    await page.getByRole("link", { name: "Clusters" }).click();
    await page.getByLabel("API token").waitFor({ timeout: 10_000 });
    expect(await page.getByRole("alert").textContent()).toMatch(/^Signed out: 401 /);
    expect(await page.evaluate(() => sessionStorage.getItem("slurmgate.token"))).toBeNull();
    expect(errors).toEqual([]);
    await page.close();
  }, 120_000);
});
