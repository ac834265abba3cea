/**
 * The Worker bundles the way `wrangler deploy` would (dry run, offline) and stays small: gzip under
 * 1 MiB keeps cold starts fast and leaves room under Cloudflare's 3 MiB free-plan limit.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, expect, it } from "vitest";
import { buildWorker, GZIP_BUDGET_BYTES } from "../../gateway/scripts/build-worker.ts";

const outdir = mkdtempSync(join(tmpdir(), "slurmgate-build-"));
afterAll(() => rmSync(outdir, { recursive: true, force: true }));

it("wrangler deploy --dry-run bundles gateway/worker.ts under the size budget, without Node built-ins", () => {
  const build = buildWorker(outdir);
  // Shown in the test output so CI logs keep a size history.
  process.stdout.write(`worker bundle: ${build.bytes} bytes, gzip ${build.gzipBytes} bytes\n`);
  expect(build.gzipBytes).toBeLessThan(GZIP_BUDGET_BYTES);
  const code = readFileSync(build.file, "utf8");
  // No nodejs_compat: a `node:` import would fail at deploy time.
  expect(code).not.toMatch(/from\s*["']node:/);
  expect(code).not.toMatch(/require\(["']node:/);
}, 60_000);
