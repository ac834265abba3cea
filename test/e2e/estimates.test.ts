/**
 * Slurm's own start estimate in a preflight, through real agents on both test clusters: the gateway
 * asks, each agent runs `sbatch --test-only` as the job would be submitted, and the answer is what
 * Slurm says when asked directly. Nothing is queued by asking.
 */
import { spawnSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Preflight } from "../../schemas/index.ts";
import { type AgentProcess, type E2E, slurm, slurmClusters, startE2E } from "./harness.ts";

let e2e: E2E;
const agents: AgentProcess[] = [];

beforeAll(async () => {
  e2e = await startE2E(
    { SLURMGATE_ESTIMATE_SECONDS: "15" },
    { alpha: { allowedSbatchArgs: ["--constraint", "--begin"] } },
  );
  agents.push(
    e2e.startAgent("alpha", { SLURMGATE_ALLOWED_SBATCH_ARGS: "--constraint,--begin" }),
    e2e.startAgent("beta"),
  );
  await e2e.waitClustersAlive();
}, 120_000);

afterAll(async () => {
  await Promise.all(agents.map((a) => a.stop()));
  await e2e?.close();
});

async function preflight(spec: Record<string, unknown>): Promise<Preflight> {
  const res = await fetch(`${e2e.url}/v1/jobs/preflight`, {
    method: "POST",
    headers: { authorization: `Bearer ${e2e.alice}`, "content-type": "application/json" },
    body: JSON.stringify(spec),
  });
  expect(res.status).toBe(200);
  return (await res.json()) as Preflight;
}

const queued = (cluster: "alpha" | "beta") => slurm(cluster, "squeue", ["-h", "-o", "%i"]).split("\n").filter(Boolean);

describe("preflight estimates on real Slurm", () => {
  it("gives each cluster's estimate as Slurm gives it, and queues nothing", async () => {
    const before = { alpha: queued("alpha").length, beta: queued("beta").length };
    const asked = Date.now();
    const plan = await preflight({ name: "estimate-me", command: ["true"], resources: { time: "5m" } });
    expect(plan.cluster).toBe("alpha");
    const byCluster = new Map(plan.candidates.map((c) => [c.cluster, c]));
    for (const cluster of ["alpha", "beta"] as const) {
      const estimate = byCluster.get(cluster)?.estimate;
      expect(estimate?.startAt, JSON.stringify(estimate)).toEqual(expect.any(String));
      // Slurm's own answer to the same question, asked directly.
      const direct = spawnSync("sbatch", ["--test-only", "--time=5", "--wrap=true"], {
        env: { ...process.env, SLURM_CONF: slurmClusters()[cluster].slurmConf, TZ: "UTC" },
        encoding: "utf8",
      }).stderr;
      const said = / on nodes (\S+) in partition (\S+)/.exec(direct);
      expect(said, direct).not.toBeNull();
      expect(estimate).toMatchObject({ nodes: said?.[1], partition: said?.[2] });
      const start = Date.parse(estimate!.startAt!);
      expect(start).toBeGreaterThan(asked - 120_000);
      expect(estimate).toMatchObject({ partition: "cpu", nodes: slurmClusters()[cluster].node });
      expect(estimate?.reason).toContain(`Slurm on ${cluster} expects it to start at`);
    }
    expect(queued("alpha").length).toBeLessThanOrEqual(before.alpha);
    expect(queued("beta").length).toBeLessThanOrEqual(before.beta);
  }, 60_000);

  it("passes on Slurm's refusal in its own words", async () => {
    const plan = await preflight({
      name: "too-big",
      command: ["true"],
      cluster: "alpha",
      partition: "cpu",
      resources: { time: "5m" },
      extraSbatchArgs: ["--constraint=no-such-feature"],
    });
    const alpha = plan.candidates.find((c) => c.cluster === "alpha");
    expect(alpha?.fits, alpha?.reason).toBe(true);
    expect(alpha?.estimate?.startAt).toBeNull();
    expect(alpha?.estimate?.reason).toBe("no estimate from alpha: allocation failure: Invalid feature specification");
  }, 60_000);

  it("follows what the job asks: a start held two hours is estimated two hours out", async () => {
    const asked = Date.now();
    const plan = await preflight({
      name: "later",
      command: ["true"],
      cluster: "alpha",
      resources: { time: "5m" },
      extraSbatchArgs: ["--begin=now+7200"],
    });
    const start = Date.parse(plan.candidates[0]?.estimate?.startAt ?? "");
    expect(start - asked).toBeGreaterThan(7_100_000);
    expect(start - asked).toBeLessThan(7_400_000);
  }, 60_000);
});
