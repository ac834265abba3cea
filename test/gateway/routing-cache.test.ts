/**
 * Routing a job that names staged caches (pure): it goes only where every named cache is staged,
 * a job no cluster has the caches for is a 422 naming the cache, a pinned job is left to its
 * cluster's agent (which checks again at lease time), and preflight says so per cluster.
 */
import { describe, expect, it } from "vitest";
import { ApiProblem, codeToStatus } from "../../gateway/problem.ts";
import { groupKey } from "../../gateway/services/sweep-group.ts";
import { explainRouting } from "../../gateway/routing-explain.ts";
import { type ClusterCandidate, routeJob } from "../../gateway/routing.ts";
import { ClusterConfig, type Grant, Inventory, JobSpec, type JobSpecInput } from "../../schemas/index.ts";
import { sampleInventory } from "../helpers/gateway.ts";

const NOW = Date.UTC(2026, 10, 30);

function candidate(name: string, caches: string[] | null, alive = true): readonly [string, ClusterCandidate] {
  const inventory =
    caches === null
      ? null
      : Inventory.parse({
          ...sampleInventory("a100"),
          caches: caches.map((c) => ({ name: c, bytes: 10, stagedAt: "2026-11-30T00:00:00.000Z" })),
        });
  return [
    name,
    {
      config: ClusterConfig.parse({ name, sharedRoots: ["/shared"] }),
      inventory,
      alive,
      lastSeenAt: alive ? NOW : NOW - 3_600_000,
    },
  ];
}

const grants: Grant[] = ["alpha", "beta", "gamma"].map((cluster) => ({ user: "alice", cluster, partitions: ["*"] }));
const job = (extra: Partial<JobSpecInput> = {}) => JobSpec.parse({ name: "j", command: ["true"], ...extra });

function refusal(fn: () => unknown): ApiProblem {
  try {
    fn();
  } catch (err) {
    if (err instanceof ApiProblem) {
      return err;
    }
    throw err;
  }
  throw new Error("expected a refusal");
}

describe("routing with cache", () => {
  const world = new Map([
    candidate("alpha", ["images/vllm"]),
    candidate("beta", ["models/llama-3.1-8b", "images/vllm"]),
    candidate("gamma", null),
  ]);

  it("prefers the cluster that has every named cache over the first in grant order", () => {
    expect(routeJob(job(), grants, world, NOW).cluster).toBe("alpha");
    const routed = routeJob(job({ cache: ["models/llama-3.1-8b", "images/vllm"] }), grants, world, NOW);
    expect([routed.cluster, routed.reason]).toEqual(["beta", null]);
    expect(routeJob(job({ cache: ["images/vllm"] }), grants, world, NOW).cluster).toBe("alpha");
  });

  it("refuses with 422 naming the missing cache when no cluster has all of them", () => {
    const p = refusal(() => routeJob(job({ cache: ["images/vllm", "models/nowhere"] }), grants, world, NOW));
    expect(codeToStatus(p.code)).toBe(422);
    expect(p.field).toBe("body.cache.1");
    expect(p.message).toMatch(/^cache\.1: models\/nowhere is not staged on alpha; on offer: images\/vllm \|/);
    expect(p.errors?.map((e) => e.field)).toEqual(["body.cache.1", "body.cache.1", "body.cache.0"]);
    expect(p.errors?.[2]?.message).toMatch(/gamma's agent has not reported what it has staged/);
  });

  it("does not route to a cluster whose only agent is down just because it has the cache", () => {
    const down = new Map([candidate("alpha", []), candidate("beta", ["models/m"], false)]);
    const p = refusal(() => routeJob(job({ cache: ["models/m"] }), grants, down, NOW));
    expect(p.message).toMatch(/only beta could run this job and no agent there is alive/);
  });

  it("leaves a pinned job to its cluster's agent, saying the cache was not reported there", () => {
    const routed = routeJob(job({ cluster: "alpha", cache: ["models/llama-3.1-8b"] }), grants, world, NOW);
    expect(routed.cluster).toBe("alpha");
    expect(routed.reason).toMatch(/models\/llama-3\.1-8b not staged on alpha .*cache_missing/);
    const there = routeJob(job({ cluster: "beta", cache: ["models/llama-3.1-8b"] }), grants, world, NOW);
    expect(there.reason).toBeNull();
  });

  it("explains the cache rule per cluster in preflight", () => {
    const { preflight: pre } = explainRouting(job({ cache: ["models/llama-3.1-8b"] }), grants, world, NOW);
    expect(pre.cluster).toBe("beta");
    const byName = Object.fromEntries(pre.candidates.map((c) => [c.cluster, c]));
    expect(byName.beta).toMatchObject({ fits: true, chosen: true });
    expect(byName.alpha).toMatchObject({ fits: false });
    expect(byName.alpha?.reason).toMatch(
      /^cache\.0: models\/llama-3\.1-8b is not staged on alpha \(on offer: images\/vllm\)/,
    );
    expect(byName.gamma?.reason).toMatch(/has not reported what it has staged/);
  });

  it("an inventory with more than 1,000 caches, or a malformed name, is refused", () => {
    const entry = (name: string) => ({ name, bytes: 1, stagedAt: "x" });
    const base = sampleInventory("a100");
    expect(
      Inventory.safeParse({ ...base, caches: Array.from({ length: 1_001 }, (_, i) => entry(`models/m${i}`)) }).success,
    ).toBe(false);
    expect(Inventory.safeParse({ ...base, caches: [entry("models/../etc")] }).success).toBe(false);
    expect(Inventory.safeParse({ ...base, caches: [{ ...entry("models/m"), bytes: -1 }] }).success).toBe(false);
  });
});

describe("sweep elements naming caches", () => {
  it("are not grouped into one Slurm array, so each is checked for its caches and gets their env", async () => {
    const at = { owner: "alice", cluster: "beta", partition: "gpu" };
    expect(await groupKey(job(), at)).toMatch(/^[0-9a-f]{32}$/);
    expect(await groupKey(job({ cache: ["models/llama-3.1-8b"] }), at)).toBeNull();
  });
});
