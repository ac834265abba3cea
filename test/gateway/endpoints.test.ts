/**
 * Happy paths of the endpoints the other suites do not walk: health, OpenAPI, docs, whoami,
 * clusters, inventory and the admin API.
 */
import { describe, expect, it } from "vitest";
import { sampleInventory } from "../helpers/gateway.ts";
import { createWorld, expectProblemShape } from "./world.ts";

describe("endpoints", () => {
  it("serves health, the OpenAPI 3.1 document and the docs page without a token", async () => {
    const w = await createWorld();
    expect((await w.call("GET", "/healthz", undefined)).body).toMatchObject({ ok: true });
    const doc = await w.call<{ openapi: string; paths: Record<string, unknown> }>("GET", "/openapi.json", undefined);
    expect(doc.body.openapi).toBe("3.1.0");
    expect(Object.keys(doc.body.paths)).toEqual(expect.arrayContaining(["/v1/jobs", "/v1/agent/lease"]));
    const docs = await w.request("GET", "/docs");
    expect(docs.headers.get("content-type")).toMatch(/text\/html/);
  });

  it("tells a token who it is", async () => {
    const w = await createWorld();
    const me = async (t: string) => (await w.call("GET", "/v1/me", t)).body;
    expect(await me(w.tokens.alice)).toMatchObject({ kind: "user", user: "alice", cluster: null });
    expect(await me(w.tokens.admin)).toMatchObject({ kind: "admin", user: "root" });
    expect(await me(w.tokens.betaAgent)).toMatchObject({ kind: "agent", user: null, cluster: "beta" });
  });

  it("lists granted clusters with liveness, granted partitions and inventory", async () => {
    const w = await createWorld();
    await w.grant("bob", "alpha", ["short"]);
    await w.cluster("gamma");
    type Clusters = { items: { name: string; alive: boolean; partitions: string[]; agents: unknown[] }[] };
    const bob = (await w.call<Clusters>("GET", "/v1/clusters", w.tokens.bob)).body.items;
    expect(bob.map((c) => [c.name, c.alive, c.partitions])).toEqual([
      ["alpha", true, ["short"]],
      ["beta", true, ["cpu", "short", "gpu"]],
    ]);
    const admin = (await w.call<Clusters>("GET", "/v1/clusters", w.tokens.admin)).body.items;
    expect(admin.map((c) => [c.name, c.alive])).toEqual([
      ["alpha", true],
      ["beta", true],
      ["gamma", false],
    ]);
  });

  it("says what each profile sets, free GPUs and idle nodes, and why a partition is not on offer", async () => {
    const w = await createWorld();
    const deltaAgent = await w.cluster("delta", {
      profiles: { train: { partition: "gpu", resources: { gpus: { count: 1, type: "a100" }, time: "10m" } } },
    });
    await w.grant("bob", "delta", ["short", "gpu"]);
    const base = sampleInventory("a100", "d1");
    const inventory = {
      ...base,
      partitions: base.partitions.map((p) =>
        p.name === "gpu"
          ? { ...p, idleNodes: 0, gpuAvailability: [{ type: "a100", total: 2, free: 1 }] }
          : p.name === "short"
            ? { ...p, state: "drain", idleNodes: 1 }
            : p,
      ),
    };
    expect((await w.call("PUT", "/v1/agent/inventory", deltaAgent, inventory)).status).toBe(200);
    type View = {
      name: string;
      partitions: string[];
      profileDetails: Record<string, unknown>;
      unavailablePartitions: { name: string; reason: string }[];
      inventory: { partitions: { name: string; idleNodes?: number; gpuAvailability?: unknown }[] };
    };
    const delta = (await w.call<{ items: View[] }>("GET", "/v1/clusters", w.tokens.bob)).body.items.find(
      (c) => c.name === "delta",
    )!;
    expect(delta.partitions).toEqual(["short", "gpu"]);
    expect(delta.profileDetails).toEqual({
      train: { partition: "gpu", resources: { gpus: { count: 1, type: "a100" }, time: "10m" } },
    });
    expect(delta.unavailablePartitions).toEqual([
      { name: "cpu", reason: "not in your grant for this cluster (yours: short, gpu)" },
      { name: "short", reason: "drain in Slurm: jobs sent there wait until it is up" },
    ]);
    expect(delta.inventory.partitions.find((p) => p.name === "gpu")).toMatchObject({
      idleNodes: 0,
      gpuAvailability: [{ type: "a100", total: 2, free: 1 }],
    });
    // A hostile count is refused by the schema.
    const bad = await w.call("PUT", "/v1/agent/inventory", deltaAgent, {
      ...inventory,
      partitions: [{ ...inventory.partitions[2]!, gpuAvailability: [{ type: "a100", total: 2, free: -1 }] }],
    });
    expect(expectProblemShape(bad, 422).field).toBe("body.partitions.0.gpuAvailability.0.free");
  });

  it("stores an agent's inventory and routes by it at once", async () => {
    const w = await createWorld();
    const gammaAgent = await w.cluster("gamma");
    await w.grant("alice", "gamma");
    const inventory = {
      ...sampleInventory("h100", "g1"),
      partitions: [{ ...sampleInventory("h100").partitions[2]!, name: "l40", gpus: [{ type: "l40s", count: 8 }] }],
    };
    const put = await w.call("PUT", "/v1/agent/inventory", gammaAgent, inventory);
    expect(put.status).toBe(200);
    const job = await w.submit(w.tokens.alice, { partition: "l40", resources: { gpus: { count: 8, type: "l40s" } } });
    expect([job.cluster, job.state]).toEqual(["gamma", "queued"]);
    const bad = await w.call("PUT", "/v1/agent/inventory", gammaAgent, { ...inventory, partitions: "many" });
    expect(expectProblemShape(bad, 422).field).toBe("body.partitions");
  });

  it("runs the admin API: users, clusters, grants, tokens", async () => {
    const w = await createWorld();
    const t = w.tokens.admin;
    expect((await w.call("POST", "/v1/admin/users", t, { name: "carol" })).body).toEqual({
      name: "carol",
      admin: false,
      disabled: false,
    });
    const users = await w.call<{ items: { name: string }[] }>("GET", "/v1/admin/users", t);
    expect(users.body.items.map((u) => u.name)).toEqual(["alice", "bob", "carol", "root"]);
    const cluster = await w.call("POST", "/v1/admin/clusters", t, { name: "delta", sharedRoots: ["/scratch"] });
    expect(cluster.body).toMatchObject({ name: "delta", allowedSbatchArgs: [], profiles: {} });
    const clusters = await w.call<{ items: { name: string }[] }>("GET", "/v1/admin/clusters", t);
    expect(clusters.body.items.map((c) => c.name)).toEqual(["alpha", "beta", "delta"]);
    expect((await w.call("POST", "/v1/admin/grants", t, { user: "carol", cluster: "delta" })).body).toEqual({
      user: "carol",
      cluster: "delta",
      partitions: ["*"],
    });
    const grants = await w.call<{ items: unknown[] }>("GET", "/v1/admin/grants?user=carol", t);
    expect(grants.body.items).toEqual([{ user: "carol", cluster: "delta", partitions: ["*"] }]);
    expect((await w.call("DELETE", "/v1/admin/grants/carol/delta", t)).status).toBe(204);
    expect((await w.call("DELETE", "/v1/admin/grants/carol/delta", t)).status).toBe(404);
    const noUser = await w.call("POST", "/v1/admin/grants", t, { user: "zed", cluster: "delta" });
    expect(expectProblemShape(noUser, 404).field).toBe("body.user");
    const badCluster = await w.call("POST", "/v1/admin/clusters", t, { name: "Bad Name", sharedRoots: [] });
    expect(expectProblemShape(badCluster, 422).field).toMatch(/^body\.(name|sharedRoots)$/);
    const token = await w.call<{ token: string; id: string }>("POST", "/v1/admin/tokens", t, {
      kind: "user",
      user: "carol",
    });
    const listed = await w.call<{ items: { id: string; user: string; prefix: string }[] }>(
      "GET",
      "/v1/admin/tokens?user=carol",
      t,
    );
    expect(listed.body.items).toEqual([
      expect.objectContaining({ id: token.body.id, user: "carol", prefix: token.body.token.slice(0, 8) }),
    ]);
  });
});
