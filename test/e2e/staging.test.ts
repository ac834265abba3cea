/**
 * Offline clusters on real Slurm (alpha): a model staged under the agent's cache root shows in its
 * inventory (GET /v1/clusters, `slurmgate clusters alpha`), a job naming it is routed there and
 * reads it through $SLURMGATE_CACHE_… with HF_HUB_OFFLINE=1, a container gets it bound read-only,
 * a cache no cluster has is refused at submission, and one removed after routing is `cache_missing`.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { removeCache, stageCache } from "../../agent/stage.ts";
import type { ClusterView } from "../../schemas/index.ts";
import { runCli } from "../cli/support.ts";
import { type AgentProcess, type E2E, REPO, slurmClusters, sshAgentEnv, startE2E } from "./harness.ts";

const shared = slurmClusters().alpha.sharedRoot;
const tag = Math.random().toString(36).slice(2, 8);
const model = `tiny-${tag}`;
const ref = `models/${model}`;
const envName = `SLURMGATE_CACHE_MODELS_TINY_${tag.toUpperCase()}`;
const canary = `weights-${tag}`;
let cacheRoot: string;
let betaCacheRoot: string;
const betaRef = `models/beta-only-${tag}`;
let source: string;
let agentEnv: Record<string, string>;
let e2e: E2E;
let alpha: AgentProcess;

beforeAll(async () => {
  cacheRoot = mkdtempSync(join(shared, "cache-"));
  source = mkdtempSync(join(shared, "download-"));
  mkdirSync(join(source, "tokenizer"));
  writeFileSync(join(source, "config.json"), canary);
  writeFileSync(join(source, "tokenizer", "vocab.txt"), "a\n");
  await stageCache({ cacheRoot, source, name: model });
  // beta's agent runs in SSH mode: its cache listing is read on the login node, through the executor.
  betaCacheRoot = mkdtempSync(join(shared, "cache-beta-"));
  await stageCache({ cacheRoot: betaCacheRoot, source, name: betaRef.slice("models/".length) });
  e2e = await startE2E();
  agentEnv = { SLURMGATE_CACHE_ROOT: cacheRoot, SLURMGATE_APPTAINER: join(REPO, "test/e2e/bin/apptainer") };
  alpha = e2e.startAgent("alpha", agentEnv);
  e2e.startAgent("beta", { ...sshAgentEnv(), SLURMGATE_CACHE_ROOT: betaCacheRoot });
  await e2e.waitClustersAlive();
});

afterAll(async () => {
  await e2e?.close();
  for (const dir of [cacheRoot, betaCacheRoot, source]) {
    if (dir) {
      rmSync(dir, { recursive: true, force: true });
    }
  }
});

describe("staged caches on an offline cluster", () => {
  it("shows the cache in alpha's inventory, on GET /v1/clusters and in `slurmgate clusters alpha`", async () => {
    const res = await fetch(`${e2e.url}/v1/clusters`, { headers: { authorization: `Bearer ${e2e.alice}` } });
    const { items } = (await res.json()) as { items: ClusterView[] };
    const byName = Object.fromEntries(items.map((c) => [c.name, c]));
    expect(byName.alpha?.inventory?.caches).toEqual([
      { name: ref, bytes: canary.length + 2, stagedAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) },
    ]);
    // beta's agent is in SSH mode and still lists what is staged on its login node.
    expect(byName.beta?.inventory?.mode).toBe("ssh");
    expect(byName.beta?.inventory?.caches).toEqual([
      { name: betaRef, bytes: canary.length + 2, stagedAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) },
    ]);
    const cli = await runCli(["clusters", "alpha"], { env: { SLURMGATE_URL: e2e.url, SLURMGATE_TOKEN: e2e.alice } });
    expect(cli.code).toBe(0);
    expect(cli.stdout).toContain(`staged: ${ref} (${canary.length + 2} bytes, `);
  });

  it("routes a job naming the cache to alpha, where it reads the cache offline", async () => {
    const job = await e2e.submit(e2e.alice, {
      name: "reads-cache",
      cache: [ref],
      command: ["bash", "-c", `cat "$${envName}/config.json"; echo " hf=$HF_HUB_OFFLINE tf=$TRANSFORMERS_OFFLINE"`],
    });
    expect(job.cluster).toBe("alpha");
    const done = await e2e.waitTerminal(e2e.alice, job.id);
    expect(done.state).toBe("completed");
    expect(await e2e.logs(e2e.alice, job.id)).toBe(`${canary} hf=1 tf=1\n`);
  });

  it("routes a job naming a cache only beta's SSH-mode agent lists to beta, where it reads it", async () => {
    const name = `SLURMGATE_CACHE_MODELS_BETA_ONLY_${tag.toUpperCase()}`;
    const job = await e2e.submit(e2e.alice, {
      name: "reads-beta-cache",
      cache: [betaRef],
      command: ["bash", "-c", `cat "$${name}/config.json"`],
    });
    expect(job.cluster).toBe("beta");
    const done = await e2e.waitTerminal(e2e.alice, job.id);
    expect(done.state).toBe("completed");
    expect(await e2e.logs(e2e.alice, job.id)).toBe(canary);
  });

  it("binds the cache read-only into a container job", async () => {
    mkdirSync(join(shared, "images"), { recursive: true });
    writeFileSync(join(shared, "images", "tool.sif"), "");
    const job = await e2e.submit(e2e.alice, {
      name: "cache-in-container",
      cache: [ref],
      container: { image: join(shared, "images", "tool.sif") },
      command: ["bash", "-c", `ls "$${envName}"`],
    });
    const done = await e2e.waitTerminal(e2e.alice, job.id);
    expect(done.state).toBe("completed");
    expect(await e2e.logs(e2e.alice, job.id)).toBe("config.json\ntokenizer\n");
    const argv = readFileSync(join(shared, "alice", job.id, "apptainer-argv.nul"), "utf8").split("\0");
    const path = join(cacheRoot, "models", model);
    expect(argv.join(" ")).toContain(`--bind ${path}:${path}:ro`);
  });

  it("refuses at submission a cache no cluster has, naming the field", async () => {
    const res = await fetch(`${e2e.url}/v1/jobs`, {
      method: "POST",
      headers: { authorization: `Bearer ${e2e.alice}`, "content-type": "application/json" },
      body: JSON.stringify({ name: "nope", command: ["true"], cache: [ref, "models/nowhere"] }),
    });
    expect(res.status).toBe(422);
    expect(res.headers.get("content-type")).toContain("application/problem+json");
    const problem = (await res.json()) as { field: string; detail: string; code: string };
    expect(problem).toMatchObject({ code: "unsatisfiable", field: "body.cache.1" });
    expect(problem.detail).toMatch(/models\/nowhere is not staged on alpha/);
  });

  it("a cache removed after routing is refused by the agent at lease time: cache_missing", async () => {
    await alpha.stop();
    // Routed while alpha's last inventory still lists the cache; the agent is away, so it waits.
    const job = await e2e.submit(e2e.alice, { name: "too-late", cluster: "alpha", cache: [ref], command: ["true"] });
    expect(job.reason).not.toMatch(/not staged/);
    expect(await removeCache(cacheRoot, ref)).toBe(true);
    alpha = e2e.startAgent("alpha", agentEnv);
    const done = await e2e.waitTerminal(e2e.alice, job.id);
    expect(done).toMatchObject({ state: "rejected", code: "cache_missing" });
    expect(done.reason).toMatch(new RegExp(`^cache ${ref}: .* is not staged on this cluster$`));
  });
});
