/**
 * `npm run build:worker`: bundles the Worker exactly as `wrangler deploy` would (`--dry-run`, no
 * account needed) into dist/worker and prints its size and gzip size. Cloudflare's limit is on the
 * gzip size (3 MiB free, 10 MiB paid); we keep under 1 MiB so cold starts stay fast.
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
export const GZIP_BUDGET_BYTES = 1024 * 1024;

export type WorkerBuild = { file: string; bytes: number; gzipBytes: number };

export function buildWorker(outdir = join(ROOT, "dist/worker")): WorkerBuild {
  const run = spawnSync("npx", ["wrangler", "deploy", "--dry-run", "--outdir", outdir], {
    cwd: ROOT,
    encoding: "utf8",
    // Offline: no banner update check, no metrics.
    env: { ...process.env, WRANGLER_SEND_METRICS: "false", WRANGLER_HIDE_BANNER: "true", NO_COLOR: "1" },
  });
  if (run.status !== 0) {
    throw new Error(`wrangler deploy --dry-run failed (${run.status}):\n${run.stdout}${run.stderr}`);
  }
  const file = join(outdir, "worker.js");
  const code = readFileSync(file);
  return { file, bytes: code.length, gzipBytes: gzipSync(code, { level: 9 }).length };
}

const kib = (bytes: number) => `${(bytes / 1024).toFixed(1)} KiB`;

if (import.meta.url === `file://${process.argv[1]}`) {
  try {
    const build = buildWorker(process.argv[2]);
    process.stdout.write(`${build.file}: ${kib(build.bytes)}, gzip ${kib(build.gzipBytes)}\n`);
    if (build.gzipBytes > GZIP_BUDGET_BYTES) {
      process.stderr.write(`gzip size is over the ${kib(GZIP_BUDGET_BYTES)} budget\n`);
      process.exit(1);
    }
  } catch (err) {
    process.stderr.write(`build:worker: ${(err as Error).message}\n`);
    process.exit(1);
  }
}
