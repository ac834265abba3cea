/**
 * A job's preflight: where it would run and why, on every cluster the user may use, from the same
 * checks routing makes; nothing stored, and the refusal a submission would get, word for word.
 */
import { describe, expect, it } from "vitest";
import type { Preflight } from "../../schemas/index.ts";
import { sampleInventory } from "../helpers/gateway.ts";
import { createWorld, expectProblemShape, spec } from "./world.ts";

async function jobCount(w: Awaited<ReturnType<typeof createWorld>>) {
  const rs = await w.db.client.execute("SELECT count(*) AS n FROM jobs");
  return Number(rs.rows[0]?.n);
}

describe("POST /v1/jobs/preflight", () => {
  it("names the cluster an H100 job would go to, why the A100 cluster does not fit, and stores nothing", async () => {
    const w = await createWorld();
    const base = sampleInventory("h100", "b2");
    await w.inventory("beta", {
      ...base,
      partitions: base.partitions.map((p) =>
        p.name === "gpu" ? { ...p, idleNodes: 1, gpuAvailability: [{ type: "h100", total: 1, free: 1 }] } : p,
      ),
    });
    const res = await w.call<Preflight>(
      "POST",
      "/v1/jobs/preflight",
      w.tokens.alice,
      spec({ partition: "gpu", resources: { gpus: { count: 1, type: "h100" } } }),
    );
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ cluster: "beta", partition: "gpu", refusal: null });
    expect(res.body.spec).toMatchObject({ partition: "gpu", resources: { gpus: { count: 1, type: "h100" } } });
    const [first, second] = res.body.candidates;
    expect(first).toEqual({
      cluster: "beta",
      partition: "gpu",
      fits: true,
      alive: true,
      chosen: true,
      reason: "chosen: beta/gpu (h100 1/1 free, 1 of 1 nodes idle) can run it",
      idleNodes: 1,
      gpus: [{ type: "h100", total: 1, free: 1 }],
      estimate: null,
    });
    expect(second).toMatchObject({ cluster: "alpha", fits: false, chosen: false, partition: null });
    expect(second?.reason).toMatch(/^resources\.gpus\.type: .*h100/);
    expect(await jobCount(w)).toBe(0);
  });

  it("answers a job no cluster can run with the very refusal a submission gets, and each cluster's reason", async () => {
    const w = await createWorld();
    const impossible = spec({ resources: { gpus: { count: 64, type: "a100" } } });
    const plan = await w.call<Preflight>("POST", "/v1/jobs/preflight", w.tokens.alice, impossible);
    expect(plan.status).toBe(200);
    expect(plan.body).toMatchObject({ cluster: null, partition: null, spec: null });
    const submitted = await w.call<{ detail: string }>("POST", "/v1/jobs", w.tokens.alice, impossible);
    expect(submitted.status).toBe(422);
    expect(plan.body.refusal).toBe(submitted.body.detail);
    expect(plan.body.candidates.map((c) => [c.cluster, c.fits])).toEqual([
      ["alpha", false],
      ["beta", false],
    ]);
    expect(plan.body.candidates.every((c) => c.reason.length > 0)).toBe(true);
    expect(await jobCount(w)).toBe(0);
  });

  it("ranks a fitting cluster whose agent is gone after the live one, saying so", async () => {
    const w = await createWorld();
    // A cluster with A100s whose agent was last seen long ago; alice may use it too.
    await w.cluster("gamma");
    await w.grant("alice", "gamma");
    const plan = await w.call<Preflight>(
      "POST",
      "/v1/jobs/preflight",
      w.tokens.alice,
      spec({ cluster: undefined, resources: { time: "5m" } }),
    );
    expect(plan.body.cluster).toBe("alpha");
    const names = plan.body.candidates.map((c) => [c.cluster, c.chosen, c.fits, c.alive]);
    expect(names[0]).toEqual(["alpha", true, true, true]);
    expect(names[1]).toEqual(["beta", false, true, true]);
    expect(plan.body.candidates[1]?.reason).toMatch(/^fits beta\/cpu too; alpha comes first in your grants$/);
    const gamma = plan.body.candidates.find((c) => c.cluster === "gamma");
    expect(gamma).toMatchObject({ fits: true, alive: false, chosen: false });
    expect(gamma?.reason).toMatch(/gamma's agent has not connected yet/);
  });

  it("refuses a bad spec like a submission (every fault, unknown fields included) and a foreign pin without a plan", async () => {
    const w = await createWorld();
    const bad = await w.call("POST", "/v1/jobs/preflight", w.tokens.alice, {
      ...spec(),
      walltime: "1h",
      resources: { cpusPerTask: "two" },
    });
    const problem = expectProblemShape(bad, 422) as unknown as { errors: { field: string }[] };
    expect(problem.errors.map((e) => e.field).sort()).toEqual(["body.resources.cpusPerTask", "body.walltime"]);
    const text = await w.request("POST", "/v1/jobs/preflight", {
      token: w.tokens.alice,
      body: "name: x",
      headers: { "content-type": "text/yaml" },
    });
    expect(text.status).toBe(415);
    const foreign = await w.call<Preflight>("POST", "/v1/jobs/preflight", w.tokens.alice, spec({ cluster: "nowhere" }));
    expect(foreign.status).toBe(200);
    expect(foreign.body).toMatchObject({ cluster: null, refusal: "you may not use cluster 'nowhere'", candidates: [] });
    expect((await w.call("POST", "/v1/jobs/preflight", undefined, spec())).status).toBe(401);
  });
});
