/**
 * docs/recipes/002-ray-sweep.ts run as is (imported, not copied) against real Slurm: a sweep of two
 * configurations, each a two-node job on alpha's `multi` partition under `ray symmetric-run` (the
 * stand-in in test/e2e/bin, since Ray is not installed here), each result back from the job.
 */
import { existsSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient } from "../../client/index.ts";
import { run } from "../../docs/recipes/002-ray-sweep.ts";
import { type E2E, startE2E } from "./harness.ts";

const NODE = existsSync("/usr/bin/node") ? "/usr/bin/node" : process.execPath;
const STANDINS = new URL("./bin", import.meta.url).pathname;
let e2e: E2E;

beforeAll(async () => {
  e2e = await startE2E();
  e2e.startAgent("alpha");
  await e2e.waitClustersAlive(60_000, ["alpha"]);
});
afterAll(async () => {
  await e2e?.close();
});

/** The experiment: reads $TMGG_CONFIG, reports val_loss and the Ray address it was given, like TMGG's. */
const EXPERIMENT = `const c=JSON.parse(process.env.TMGG_CONFIG);const r={config:c,val_loss:c.lr*10,ray:process.env.SLURMGATE_HEAD_ADDRESS,nodes:process.env.SLURMGATE_NNODES};console.log("TMGG_RESULT:"+JSON.stringify(r));require("fs").writeFileSync(process.env.SLURMGATE_RESULT,JSON.stringify(r));`;

describe("recipe 002: a Ray sweep on two nodes", () => {
  it("runs every configuration across two nodes and returns each result", async () => {
    const client = createClient({ baseUrl: e2e.url, token: e2e.alice });
    const configs = [{ lr: 0.5 }, { lr: "a'b; $(id)" }];
    const results = await run(client, {
      configs,
      cluster: "alpha",
      partition: "multi",
      nodes: 2,
      cpusPerTask: 1,
      time: "5m",
      setup: [`export PATH=${STANDINS}:$PATH`],
      entrypoint: [NODE, "-e", EXPERIMENT],
    });
    expect(results.map((r) => r.state)).toEqual(["completed", "completed"]);
    for (const [i, r] of results.entries()) {
      expect(r.config).toEqual(configs[i]);
      expect(r.result).toMatchObject({ config: configs[i], nodes: "2" });
      expect((r.result as { ray: string }).ray).toMatch(/^[A-Za-z0-9._-]+:\d+$/);
    }
    expect(results[0]?.result).toMatchObject({ val_loss: 5 });
  });
});
