/**
 * Recipe 000 (docs/recipes/000-offline-eval.ts) run as written on the real test clusters: the model
 * is staged on alpha only (its real default name, a tiny stand-in directory), each backend's image
 * is a stand-in .sif under the shared root, and the measuring tool is a stand-in that reads the
 * model offline and writes a result. Every element must go to alpha, run in its backend's image
 * with the model bound read-only, and its result must come back in element order, aggregated.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stageCache } from "../../agent/stage.ts";
import { createClient } from "../../client/index.ts";
import { run } from "../../docs/recipes/000-offline-eval.ts";
import { type E2E, REPO, slurmClusters, startE2E } from "./harness.ts";

const shared = slurmClusters().alpha.sharedRoot;
const tag = Math.random().toString(36).slice(2, 8);
let cacheRoot: string;
let source: string;
let images: Record<string, string>;
let e2e: E2E;

/** Stands in for `llem run`: checks it is offline, reads the model, writes its measurement. */
const MEASURE = [
  "bash",
  "-c",
  [
    "while (($#)); do case $1 in --backend) b=$2; shift 2;; --batch-size) bs=$2; shift 2;; --model) m=$2; shift 2;; --output) out=$2; shift 2;; *) shift;; esac; done",
    'w=$(cat "$m/config.json")',
    'printf \'{"backend":"%s","batchSize":%s,"weights":"%s","offline":"%s","tokensPerJoule":%s}\' "$b" "$bs" "$w" "$HF_HUB_OFFLINE" "$bs" > "$out"',
  ].join("; "),
  "llem-stand-in",
];

beforeAll(async () => {
  cacheRoot = mkdtempSync(join(shared, "recipe000-cache-"));
  source = mkdtempSync(join(shared, "recipe000-download-"));
  writeFileSync(join(source, "config.json"), `weights-${tag}`);
  await stageCache({ cacheRoot, source, name: "llama-3.1-8b" });
  mkdirSync(join(shared, "images"), { recursive: true });
  images = {
    pytorch: join(shared, "images", `llem-pytorch-${tag}.sif`),
    vllm: join(shared, "images", `llem-vllm-${tag}.sif`),
  };
  for (const image of Object.values(images)) {
    writeFileSync(image, "");
  }
  e2e = await startE2E();
  const apptainer = join(REPO, "test/e2e/bin/apptainer");
  e2e.startAgent("alpha", { SLURMGATE_CACHE_ROOT: cacheRoot, SLURMGATE_APPTAINER: apptainer });
  e2e.startAgent("beta", { SLURMGATE_APPTAINER: apptainer });
  await e2e.waitClustersAlive();
});

afterAll(async () => {
  await e2e?.close();
  for (const path of [cacheRoot, source, ...Object.values(images ?? {})]) {
    if (path) {
      rmSync(path, { recursive: true, force: true });
    }
  }
});

describe("recipe 000: offline evaluation over backends", () => {
  it("runs backend × batch size on the cluster with the model, each in its image, and aggregates the results", async () => {
    const client = createClient({ baseUrl: e2e.url, token: e2e.alice });
    const report = await run(client, { images, batchSizes: [1, 8], measure: MEASURE, time: "5m", maxParallel: 2 });

    expect(report.sweepId).toMatch(/^swp_/);
    expect(report.measurements.map((m) => [m.backend, m.batchSize, m.state, m.cluster])).toEqual([
      ["pytorch", 1, "completed", "alpha"],
      ["pytorch", 8, "completed", "alpha"],
      ["vllm", 1, "completed", "alpha"],
      ["vllm", 8, "completed", "alpha"],
    ]);
    for (const m of report.measurements) {
      // The stand-in read the staged model offline, and was told the backend and batch size.
      expect(m.result).toEqual({
        backend: m.backend,
        batchSize: m.batchSize,
        weights: `weights-${tag}`,
        offline: "1",
        tokensPerJoule: m.batchSize,
      });
      // It ran in its backend's image, with the model bound read-only.
      const argv = readFileSync(join(shared, "alice", m.jobId, "apptainer-argv.nul"), "utf8").split("\0");
      expect(argv).toContain(images[m.backend]);
      const model = join(cacheRoot, "models", "llama-3.1-8b");
      expect(argv.join(" ")).toContain(`--bind ${model}:${model}:ro`);
    }
    expect(report.byBackend).toEqual({
      pytorch: { completed: 2, of: 2, means: { batchSize: 4.5, tokensPerJoule: 4.5 } },
      vllm: { completed: 2, of: 2, means: { batchSize: 4.5, tokensPerJoule: 4.5 } },
    });
  }, 300_000);

  it("is refused at once, naming the cache, when no cluster has the model staged", async () => {
    const client = createClient({ baseUrl: e2e.url, token: e2e.alice });
    const refused = await run(client, { model: `models/nowhere-${tag}`, images, batchSizes: [1], time: "5m" }).then(
      () => null,
      (err: Error & { status?: number; field?: string }) => err,
    );
    expect(refused?.status).toBe(422);
    expect(refused?.message).toContain(`models/nowhere-${tag} is not staged`);
  });
});
