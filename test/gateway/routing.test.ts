/**
 * routing.ts on its own (pure): which cluster and partition a job gets, and how a refusal names
 * the field and what is on offer.
 */
import { describe, expect, it } from "vitest";
import { ApiProblem } from "../../gateway/problem.ts";
import { type ClusterCandidate, routeJob } from "../../gateway/routing.ts";
import { ClusterConfig, type Grant, JobSpec, type JobSpecInput } from "../../schemas/index.ts";
import { sampleInventory } from "../helpers/gateway.ts";

const NOW = Date.UTC(2026, 10, 22);

function candidate(name: string, gpu: "a100" | "h100" | null, alive = true, extra: Partial<ClusterConfig> = {}) {
  const c: ClusterCandidate = {
    config: ClusterConfig.parse({ name, sharedRoots: ["/shared"], ...extra }),
    inventory: gpu ? sampleInventory(gpu) : null,
    alive,
    lastSeenAt: alive ? NOW : NOW - 3_600_000,
  };
  return [name, c] as const;
}

const clusters = (...entries: (readonly [string, ClusterCandidate])[]) => new Map(entries);
const grant = (cluster: string, partitions = ["*"]): Grant => ({ user: "alice", cluster, partitions });
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

const both = clusters(candidate("alpha", "a100"), candidate("beta", "h100"));
const grants = [grant("alpha"), grant("beta")];

describe("routeJob", () => {
  it("sends a GPU job that names no partition where the GPUs are, and writes that partition into its spec", () => {
    const routed = routeJob(job({ resources: { gpus: { count: 1, type: "h100" } } }), grants, both, NOW);
    expect([routed.cluster, routed.partition, routed.spec.partition]).toEqual(["beta", "gpu", "gpu"]);
    // A job the default partition fits stays there, and its spec keeps naming no partition.
    const plain = routeJob(job({ resources: { time: "5m" } }), grants, both, NOW);
    expect([plain.cluster, plain.partition, plain.spec.partition]).toEqual(["alpha", "cpu", undefined]);
    // Only partitions the grant allows are looked at.
    const cpuOnly = [grant("alpha", ["cpu", "short"]), grant("beta", ["cpu"])];
    const refused = refusal(() => routeJob(job({ resources: { gpus: { count: 1 } } }), cpuOnly, both, NOW));
    expect(refused.field).toBe("body.resources.gpus.type");
    // Nowhere fits: the refusal is the default partition's, as before.
    const nowhere = refusal(() => routeJob(job({ resources: { gpus: { count: 64 } } }), grants, both, NOW));
    expect(nowhere.message).toMatch(/on (alpha|beta)\/cpu/);
  });

  it("routes by GPU type to the cluster that has it", () => {
    const h100 = routeJob(
      job({ partition: "gpu", resources: { gpus: { count: 1, type: "h100" } } }),
      grants,
      both,
      NOW,
    );
    expect([h100.cluster, h100.partition, h100.reason]).toEqual(["beta", "gpu", null]);
    const a100 = routeJob(
      job({ partition: "gpu", resources: { gpus: { count: 2, type: "a100" } } }),
      grants,
      both,
      NOW,
    );
    expect(a100.cluster).toBe("alpha");
    // Only beta's gpu partition allows 3 hours.
    const long = routeJob(job({ partition: "gpu", resources: { gpus: { count: 1 }, time: "3h" } }), grants, both, NOW);
    expect(long.cluster).toBe("beta");
  });

  it("uses the default partition when none is named", () => {
    expect(routeJob(job(), grants, both, NOW)).toMatchObject({ cluster: "alpha", partition: "cpu" });
  });

  it.each([
    [{ partition: "nope" }, "body.partition", "cpu, short, gpu"],
    [{ partition: "gpu", resources: { gpus: { count: 1, type: "v100" } } }, "body.resources.gpus.type", "a100 | h100"],
    [{ partition: "gpu", resources: { gpus: { count: 4, type: "a100" } } }, "body.resources.gpus.count", "2"],
    [{ partition: "gpu", resources: { time: "5h" } }, "body.resources.time", "2h | 4h"],
    [{ resources: { cpusPerTask: 2, ntasksPerNode: 2 } }, "body.resources.cpusPerTask", "2"],
    [{ resources: { memPerNode: "5G" } }, "body.resources.memPerNode", "4000M"],
    [{ resources: { memPerCpu: "3G", cpusPerTask: 2 } }, "body.resources.memPerCpu", "4000M"],
    [{ resources: { nodes: 2 } }, "body.resources.nodes", "1"],
  ] as const)("refuses %j as unsatisfiable naming %s", (extra, field, offer) => {
    const problem = refusal(() => routeJob(job(extra as Partial<JobSpecInput>), grants, both, NOW));
    expect(problem.code).toBe("unsatisfiable");
    expect(problem.status).toBe(422);
    expect(problem.field).toBe(field);
    expect(problem.message).toContain(`on offer: ${offer}`);
    expect(problem.errors?.length).toBe(2);
  });

  it("queues a job pinned to a cluster whose agent is stale, with the reason visible", () => {
    const map = clusters(candidate("alpha", "a100", false), candidate("beta", "h100"));
    const route = routeJob(job({ cluster: "alpha" }), grants, map, NOW);
    expect(route.cluster).toBe("alpha");
    expect(route.reason).toMatch(/agent has not been seen since/);
  });

  it("queues a job pinned to a cluster whose agent never reported, with the reason visible", () => {
    const map = clusters(candidate("gamma", null, false));
    const route = routeJob(job({ cluster: "gamma", partition: "cpu" }), [grant("gamma")], map, NOW);
    expect(route).toMatchObject({ cluster: "gamma", partition: "cpu" });
    expect(route.reason).toMatch(/waiting for gamma's agent/);
  });

  it("never chooses a dead cluster for an unpinned job", () => {
    const map = clusters(candidate("alpha", "a100", false), candidate("beta", "h100"));
    expect(routeJob(job(), grants, map, NOW).cluster).toBe("beta");
    const onlyDead = refusal(() =>
      routeJob(job({ partition: "gpu", resources: { gpus: { count: 1, type: "a100" } } }), grants, map, NOW),
    );
    expect(onlyDead.code).toBe("unsatisfiable");
    expect(onlyDead.field).toBe("cluster");
    expect(onlyDead.message).toMatch(/only alpha could run this job/);
  });

  it("restricts partitions to the grant", () => {
    const narrow = [grant("alpha", ["short"])];
    const refused = refusal(() => routeJob(job({ partition: "cpu" }), narrow, both, NOW));
    expect([refused.code, refused.field]).toEqual(["unsatisfiable", "body.partition"]);
    expect(refused.message).toMatch(/not granted partition 'cpu'.*on offer: short/);
    expect(routeJob(job({ partition: "short" }), narrow, both, NOW).partition).toBe("short");
    // Nor may a user reach beta without a grant, pinned or not.
    const pinned = refusal(() => routeJob(job({ cluster: "beta" }), narrow, both, NOW));
    expect([pinned.code, pinned.field]).toEqual(["forbidden", "cluster"]);
    expect(refusal(() => routeJob(job(), [], both, NOW)).code).toBe("forbidden");
  });

  it("merges a profile under the job's own values", () => {
    const map = clusters(
      candidate("alpha", "a100", true, {
        profiles: {
          big: { partition: "gpu", resources: { gpus: { count: 2, type: "a100" }, time: "2h", cpusPerTask: 2 } },
        },
      }),
    );
    const route = routeJob(job({ profile: "big", resources: { time: "1h" } }), [grant("alpha")], map, NOW);
    expect(route.partition).toBe("gpu");
    expect(route.spec.resources).toEqual({ gpus: { count: 2, type: "a100" }, time: "1h", cpusPerTask: 2 });
    const unknown = refusal(() => routeJob(job({ profile: "huge" }), [grant("alpha")], map, NOW));
    expect([unknown.field, unknown.message]).toEqual([
      "body.profile",
      "profile: profile 'huge' is not defined on alpha; on offer: big",
    ]);
  });

  it("checks services' GPUs against the GPUs a profile gives the job", () => {
    const map = clusters(
      candidate("alpha", "a100", true, {
        profiles: {
          two: { partition: "gpu", resources: { gpus: { count: 2, type: "a100" } } },
          cpu: { partition: "cpu", resources: { time: "1h" } },
        },
      }),
    );
    const svc = (gpus: number) => ({
      name: "vllm",
      command: ["x"],
      health: { tcp: true as const },
      timeoutSeconds: 5,
      gpus,
    });
    const route = routeJob(job({ profile: "two", services: [svc(1)] }), [grant("alpha")], map, NOW);
    expect(route.spec.resources.gpus).toEqual({ count: 2, type: "a100" });
    const tooMany = refusal(() => routeJob(job({ profile: "two", services: [svc(3)] }), [grant("alpha")], map, NOW));
    expect([tooMany.status, tooMany.field]).toEqual([422, "body.services.0.gpus"]);
    expect(tooMany.message).toContain("services take 3 GPUs but the job asks for 2 (resources.gpus.count)");
    const none = refusal(() => routeJob(job({ profile: "cpu", services: [svc(1)] }), [grant("alpha")], map, NOW));
    expect([none.field, none.message]).toEqual([
      "body.services.0.gpus",
      "services.0.gpus: the job asks for no GPUs (resources.gpus), so a service cannot take any",
    ]);
  });

  it("lets a job's own memory request replace a profile's, whichever form each uses", () => {
    const map = clusters(
      candidate("alpha", "a100", true, { profiles: { fat: { resources: { memPerNode: "8G", time: "1h" } } } }),
    );
    const route = routeJob(job({ profile: "fat", resources: { memPerCpu: "1G" } }), [grant("alpha")], map, NOW);
    expect(route.spec.resources).toEqual({ memPerCpu: "1G", time: "1h" });
    // What is stored must still be a valid spec: the agent re-validates it before sbatch.
    expect(JobSpec.safeParse(route.spec).success).toBe(true);
  });

  it("refuses extra sbatch arguments the cluster does not allow", () => {
    const map = clusters(candidate("alpha", "a100", true, { allowedSbatchArgs: ["--constraint"] }));
    const ok = routeJob(job({ extraSbatchArgs: ["--constraint=ib"] }), [grant("alpha")], map, NOW);
    expect(ok.cluster).toBe("alpha");
    const refused = refusal(() => routeJob(job({ extraSbatchArgs: ["--exclusive"] }), [grant("alpha")], map, NOW));
    expect([refused.field, refused.message]).toEqual([
      "body.extraSbatchArgs.0",
      "extraSbatchArgs.0: '--exclusive' is not allowed on alpha; on offer: --constraint",
    ]);
  });

  it("refuses paths a spec that skipped the schema carries (a stored row, a profile), lexically", () => {
    const map = clusters(candidate("alpha", "a100"));
    const raw = (extra: Record<string, unknown>) => ({ ...job(), ...extra }) as JobSpec;
    for (const [extra, field] of [
      [{ workdir: "alice/../../etc" }, "body.workdir"],
      [{ workdir: ".." }, "body.workdir"],
      [{ container: { image: "docker://x", binds: [{ src: "/shared/../etc" }] } }, "body.container.binds.0.src"],
      [{ container: { image: "/shared/./../root/x.sif", binds: [] } }, "body.container.image"],
      [{ extraSbatchArgs: ["--hold"] }, "body.extraSbatchArgs.0"],
    ] as const) {
      const refused = refusal(() => routeJob(raw(extra), [grant("alpha")], map, NOW));
      expect([refused.code, refused.field]).toEqual(["unsatisfiable", field]);
    }
    expect(routeJob(raw({ workdir: "alice/run" }), [grant("alpha")], map, NOW).cluster).toBe("alpha");
  });
});
