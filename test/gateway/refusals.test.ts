/**
 * The gateway refuses at submission what the cluster's agent would refuse before sbatch: options
 * slurmgate owns, options off the agent's or the admin's allow-list, binds, images and workdirs
 * outside the agent's roots. Each refusal is a 422 naming the field, why, and what is on offer.
 */
import { describe, expect, it } from "vitest";
import { sampleInventory } from "../helpers/gateway.ts";
import { createWorld, expectProblemShape, type World } from "./world.ts";

type Problem = { code: string; field: string; detail: string; errors?: { field: string; message: string }[] };

/** alpha: the admin allows --constraint and --exclusive; the agent allows --constraint and --begin; roots differ too. */
async function world(agentPublishes = true): Promise<World> {
  const w = await createWorld();
  await w.cluster("alpha", { sharedRoots: ["/admin-root"], allowedSbatchArgs: ["--constraint", "--exclusive"] });
  await w.cluster("beta", { sharedRoots: ["/admin-root"], allowedSbatchArgs: ["--constraint", "--exclusive"] });
  const published = agentPublishes
    ? { sharedRoots: ["/shared", "/data/sets"], allowedSbatchArgs: ["--constraint", "--begin"] }
    : {};
  await w.inventory("alpha", { ...sampleInventory("a100"), ...published });
  await w.inventory("beta", { ...sampleInventory("h100"), ...published });
  return w;
}

const problem422 = (res: Parameters<typeof expectProblemShape>[0]) =>
  expectProblemShape(res, 422) as unknown as Problem;

const post = (w: World, extra: Record<string, unknown>) =>
  w.call<Problem>("POST", "/v1/jobs", w.tokens.alice, { name: "j", command: ["true"], ...extra });

describe("refusals the agent would make, made at submission", () => {
  it.each(["--hold", "--comment=slurmgate:job_0123456789abcdefghij:1", "--uid=0", "--wrap=id", "--hol", "--commen=x"])(
    "refuses the slurmgate-owned %s with a 422 naming body.extraSbatchArgs.N",
    async (arg) => {
      const w = await world();
      const res = await post(w, { extraSbatchArgs: ["--constraint=ib", arg] });
      const problem = problem422(res);
      expect(problem.field).toBe("body.extraSbatchArgs.1");
      expect(problem.detail).toMatch(/slurmgate sets itself|set by slurmgate itself/);
    },
  );

  it("accepts an option both the admin and the agent allow", async () => {
    const w = await world();
    const res = await post(w, { extraSbatchArgs: ["--constraint=ib"] });
    expect(res.status).toBe(201);
    expect(await w.job((res.body as unknown as { id: string }).id)).toMatchObject({ state: "queued" });
  });

  it("refuses an option only one side allows, naming what is on offer", async () => {
    const w = await world();
    // The admin allows --exclusive, the agent does not: the agent would refuse it.
    const exclusive = problem422(await post(w, { extraSbatchArgs: ["--exclusive"] }));
    expect(exclusive.field).toBe("body.extraSbatchArgs.0");
    expect(exclusive.detail).toContain("its cluster config allows it, its agent does not");
    expect(exclusive.detail).toMatch(/on offer: --constraint$/);
    // The agent allows --begin, the admin does not.
    const begin = problem422(await post(w, { extraSbatchArgs: ["--begin=now+1hour"] }));
    expect(begin.field).toBe("body.extraSbatchArgs.0");
    expect(begin.detail).toMatch(/'--begin' is not allowed on (alpha|beta); on offer: --constraint$/);
  });

  it("uses the admin's list and roots while the agent publishes none (an older agent)", async () => {
    const w = await world(false);
    expect((await post(w, { extraSbatchArgs: ["--exclusive"] })).status).toBe(201);
    const bind = await post(w, { container: { image: "docker://alpine", binds: [{ src: "/shared/x" }] } });
    expect(expectProblemShape(bind, 422).field).toBe("body.container.binds.0.src");
    expect((await post(w, { container: { image: "docker://alpine", binds: [{ src: "/admin-root/x" }] } })).status).toBe(
      201,
    );
  });

  it("refuses a bind source outside the agent's roots, and accepts one inside", async () => {
    const w = await world();
    for (const src of ["/etc", "/shared-other/x", "/admin-root/data", "/"]) {
      const res = await post(w, {
        container: { image: "docker://alpine", binds: [{ src: "/shared/alice/in" }, { src }] },
      });
      const problem = problem422(res);
      expect(problem.field).toBe("body.container.binds.1.src");
      expect(problem.detail).toContain(`bind source ${src} is outside`);
      expect(problem.detail).toMatch(/on offer: \/shared, \/data\/sets$/);
    }
    const ok = await post(w, {
      container: {
        image: "docker://alpine",
        binds: [{ src: "/shared/alice/in" }, { src: "/data/sets", readonly: true }],
      },
    });
    expect(ok.status).toBe(201);
  });

  it("refuses an image file outside the agent's roots, and accepts one inside or pulled by URI", async () => {
    const w = await world();
    const cases = [
      [{ image: "/opt/images/x.sif" }, "body.container.image"],
      [{ image: "/shared/../etc/x.sif" }, "body.container.image"],
      [{ images: { x86_64: "/shared/x.sif", aarch64: "/tmp/arm.sif" } }, "body.container.images.aarch64"],
    ] as const;
    for (const [container, field] of cases) {
      const problem = problem422(await post(w, { container }));
      expect(problem.field).toBe(field);
      expect(problem.detail).toMatch(/image .* is outside/);
    }
    for (const image of ["/shared/alice/img.sif", "/data/sets/base.sif", "docker://alpine:3", "oras://r/x:1"]) {
      expect((await post(w, { container: { image } })).status).toBe(201);
    }
  });

  it("refuses a workdir that leaves the root, as a stored or hand-made spec could carry it", async () => {
    const w = await world();
    expect(expectProblemShape(await post(w, { workdir: "../../etc" }), 422).field).toBe("body.workdir");
    expect(expectProblemShape(await post(w, { workdir: "/etc" }), 422).field).toBe("body.workdir");
    expect((await post(w, { workdir: "alice/run1" })).status).toBe(201);
  });

  it("refuses on one cluster and routes to the other when only that one's agent allows it", async () => {
    const w = await createWorld();
    await w.cluster("alpha", { allowedSbatchArgs: ["--constraint"] });
    await w.cluster("beta", { allowedSbatchArgs: ["--constraint"] });
    await w.inventory("alpha", { ...sampleInventory("a100"), allowedSbatchArgs: [] });
    await w.inventory("beta", { ...sampleInventory("h100"), allowedSbatchArgs: ["--constraint"] });
    const job = await w.submit(w.tokens.alice, { extraSbatchArgs: ["--constraint=ib"] });
    expect(job.cluster).toBe("beta");
    const pinned = await w.call<Problem>("POST", "/v1/jobs", w.tokens.alice, {
      name: "j",
      command: ["true"],
      cluster: "alpha",
      extraSbatchArgs: ["--constraint=ib"],
    });
    expect(expectProblemShape(pinned, 422).field).toBe("body.extraSbatchArgs.0");
  });
});

describe("allow-lists that name what slurmgate owns", () => {
  it("refuses a cluster config that allow-lists an owned option", async () => {
    const w = await createWorld();
    for (const [list, index] of [
      [["--constraint", "--hold"], 1],
      [["--comment"], 0],
      [["--constraint", "--exclusive", "--outp"], 2],
    ] as const) {
      const res = await w.call<Problem>("POST", "/v1/admin/clusters", w.tokens.admin, {
        name: "gamma",
        sharedRoots: ["/shared"],
        allowedSbatchArgs: list,
      });
      const problem = problem422(res);
      expect(problem.field).toBe(`body.allowedSbatchArgs.${index}`);
      expect(problem.detail).toContain("it cannot be allow-listed");
    }
  });

  it("never offers an owned option a config stored before this rule still lists", async () => {
    const w = await createWorld();
    await w.cluster("alpha", { allowedSbatchArgs: ["--hold", "--constraint"] });
    await w.cluster("beta", { allowedSbatchArgs: ["--hold", "--constraint"] });
    const res = await post(w, { extraSbatchArgs: ["--exclusive"] });
    expect(problem422(res).detail).toMatch(/on offer: --constraint$/);
  });

  it("stores an inventory whose agent publishes its roots and allow-list, and shows it", async () => {
    const w = await world();
    type Clusters = { items: { name: string; inventory: { sharedRoots?: string[]; allowedSbatchArgs?: string[] } }[] };
    const items = (await w.call<Clusters>("GET", "/v1/clusters", w.tokens.alice)).body.items;
    expect(items[0]?.inventory).toMatchObject({
      sharedRoots: ["/shared", "/data/sets"],
      allowedSbatchArgs: ["--constraint", "--begin"],
    });
    const bad = await w.call("PUT", "/v1/agent/inventory", w.tokens.alphaAgent, {
      ...sampleInventory("a100"),
      sharedRoots: ["relative"],
    });
    expect(expectProblemShape(bad, 422).field).toBe("body.sharedRoots.0");
  });
});

describe("GET /v1/agent/cluster", () => {
  it("shows an agent its own cluster's roots and allow-list, and nothing else", async () => {
    const w = await world();
    const alpha = await w.call("GET", "/v1/agent/cluster", w.tokens.alphaAgent);
    expect(alpha.status).toBe(200);
    expect(alpha.body).toEqual({
      name: "alpha",
      sharedRoots: ["/admin-root"],
      allowedSbatchArgs: ["--constraint", "--exclusive"],
    });
    expect(expectProblemShape(await w.call("GET", "/v1/agent/cluster", w.tokens.alice), 403).code).toBe("forbidden");
  });
});
