/**
 * The jobs page with a real agent on the real test cluster alpha (test/e2e/harness.ts): a job's
 * output lines appear on the open page while it still runs, its state goes to `completed` with
 * exit code 0 without a reload, and a long job cancelled from the page ends `cancelled` in Slurm.
 * Needs the Slurm test clusters up; without them (or without chromium) it fails, never skips.
 * In the e2e project (one file at a time), with small jobs, so other suites' jobs cannot keep
 * alpha's node busy past the waits below.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { launchChromium } from "../helpers/chromium.ts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type E2E, REPO, slurm, startE2E } from "./harness.ts";

const ARTIFACTS = join(REPO, "test-artifacts");

describe("the jobs page with a real agent on Slurm cluster alpha", () => {
  let e2e: E2E;
  let browser: Browser;
  const problems: string[] = [];

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    e2e = await startE2E();
    e2e.startAgent("alpha");
    await e2e.waitClustersAlive(60_000, ["alpha"]);
    browser = await launchChromium();
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await e2e?.close();
  });

  async function openJob(id: string): Promise<Page> {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    await page.addInitScript(() => {
      document.addEventListener("securitypolicyviolation", (e) =>
        console.error(`CSP violation: ${e.violatedDirective}`),
      );
    });
    page.on("console", (m) => m.type() === "error" && problems.push(m.text()));
    page.on("pageerror", (err) => problems.push(String(err)));
    await page.goto(`${e2e.url}/`);
    await page.getByLabel("API token").fill(e2e.alice);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.locator(`tr[data-job="${id}"]`).click();
    await page.getByRole("heading", { name: new RegExp(id) }).waitFor();
    return page;
  }

  it("logs follow while the job runs, and it completes on the open page", async () => {
    const job = await e2e.submit(e2e.alice, {
      name: "counting",
      cluster: "alpha",
      resources: { memPerNode: "64M" },
      command: ["bash", "-c", 'for i in 1 2 3 4 5 6 7 8; do echo "line $i"; sleep 1; done'],
    });
    const page = await openJob(job.id);
    const stdout = page.locator('pre[data-stream="stdout"]');
    // Seen part-way: the first line is on the page while the last is not written yet.
    await expect
      .poll(
        async () => {
          const text = (await stdout.textContent()) ?? "";
          return text.includes("line 1") && !text.includes("line 8");
        },
        { timeout: 150_000, interval: 200 },
      )
      .toBe(true);
    expect(await page.locator("#job-state").textContent()).toBe("running");
    await page.screenshot({ path: join(ARTIFACTS, "web-slurm-running.png"), fullPage: true });
    await expect.poll(() => page.locator("#job-state").textContent(), { timeout: 60_000 }).toBe("completed");
    await expect.poll(() => stdout.textContent(), { timeout: 30_000 }).toContain("line 8");
    expect(await page.locator("dl.facts").textContent()).toMatch(/Exit code0/);
    await page.screenshot({ path: join(ARTIFACTS, "web-slurm-completed.png"), fullPage: true });
    await page.close();
  }, 300_000);

  it("a running job cancelled from the page is scancelled in Slurm and shows cancelled", async () => {
    const job = await e2e.submit(e2e.alice, {
      name: "long",
      cluster: "alpha",
      resources: { memPerNode: "64M" },
      command: ["sleep", "300"],
    });
    const page = await openJob(job.id);
    await expect.poll(() => page.locator("#job-state").textContent(), { timeout: 150_000 }).toBe("running");
    await page.getByRole("button", { name: "Cancel job" }).click();
    await expect.poll(() => page.locator("#job-state").textContent(), { timeout: 60_000 }).toBe("cancelled");
    const slurmId = (await e2e.job(e2e.alice, job.id)).slurmJobId!;
    // Slurm itself no longer runs it (squeue forgets an ended job, or refuses its id).
    let state = "";
    try {
      state = slurm("alpha", "squeue", ["-h", "-j", slurmId, "-o", "%T"]).trim();
    } catch {
      // "Invalid job id": already purged from the controller's memory
    }
    expect(["", "CANCELLED", "COMPLETING"]).toContain(state);
    await page.screenshot({ path: join(ARTIFACTS, "web-slurm-cancelled.png"), fullPage: true });
    await page.close();
    expect(problems).toEqual([]);
  }, 300_000);
});
