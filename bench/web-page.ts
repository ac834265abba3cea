/**
 * The jobs page's time to first render at 100,000 jobs (BENCH_QUICK: 20,000): a real gateway
 * process over a seeded history, Debian's chromium, navigation start to the first row in the
 * document by the page's own clock. The floor is the API call the page waits for (the same first
 * page of `GET /v1/jobs`, timed from Node), so the ratio is what the page adds on top of its data.
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@libsql/client";
import { chromium } from "playwright-core";
import { runMigrations } from "../gateway/scripts/migrate.ts";
import { startGatewayProcess } from "../test/helpers/gateway-process.ts";
import { seedHistory } from "./history-seed.ts";
import { type BenchOptions, percentile, type Row, sampleMs } from "./types.ts";

const CHROMIUM = "/usr/bin/chromium";

export async function run({ quick, log }: BenchOptions): Promise<Row[]> {
  if (!existsSync(CHROMIUM)) {
    log(`web: ${CHROMIUM} is missing, section skipped`);
    return [];
  }
  const jobs = quick ? 20_000 : 100_000;
  const loads = quick ? 5 : 20;
  const dir = mkdtempSync(join(tmpdir(), "slurmgate-bench-web-"));
  const url = `file:${join(dir, "history.db")}`;
  await runMigrations(url);
  const loader = createClient({ url });
  await seedHistory(loader, jobs, Date.now());
  loader.close();
  const gateway = await startGatewayProcess({}, { dbUrl: url });
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: process.getuid?.() === 0 ? ["--no-sandbox"] : [],
  });
  try {
    const admin = (path: string, body: unknown) =>
      fetch(gateway.url + path, {
        method: "POST",
        headers: { authorization: `Bearer ${gateway.adminToken}`, "content-type": "application/json" },
        body: JSON.stringify(body),
      }).then((r) => r.json() as Promise<Record<string, unknown>>);
    await admin("/v1/admin/users", { name: "u0" });
    const token = String((await admin("/v1/admin/tokens", { kind: "user", user: "u0" })).token);
    const page = await browser.newPage();
    await page.addInitScript((t) => {
      sessionStorage.setItem("slurmgate.token", t);
      new MutationObserver((_, observer) => {
        if (document.querySelector("tr[data-job]")) {
          (window as unknown as { firstRowAt: number }).firstRowAt = performance.now();
          observer.disconnect();
        }
      }).observe(document, { childList: true, subtree: true });
    }, token);
    const renders: number[] = [];
    // One load first to warm chromium's process and the gateway's caches; not counted.
    for (let i = 0; i <= loads; i++) {
      await page.goto(`${gateway.url}/ui/`);
      await page.locator("tr[data-job]").first().waitFor();
      const at = await page.evaluate(() => (window as unknown as { firstRowAt: number }).firstRowAt);
      if (i > 0) {
        renders.push(at);
      }
    }
    const api = await sampleMs(loads, () =>
      fetch(`${gateway.url}/v1/jobs?limit=50`, { headers: { authorization: `Bearer ${token}` } }).then((r) => r.text()),
    );
    const p50 = percentile(renders, 50);
    const floor = percentile(api, 50);
    log(`web: first render at ${jobs} jobs p50 ${p50.toFixed(0)} ms (API first page p50 ${floor.toFixed(1)} ms)`);
    return [
      {
        section: "web",
        metric: `jobs page first render, ${jobs} jobs (floor: its GET /v1/jobs)`,
        ours: p50,
        floor,
        unit: "ms",
        ratio: p50 / floor,
        p50,
        p99: percentile(renders, 99),
        n: renders.length,
        target: "< 1000 ms",
      },
    ];
  } finally {
    await browser.close();
    await gateway.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
