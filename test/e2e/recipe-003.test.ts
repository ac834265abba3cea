/**
 * docs/recipes/003-torchrun-selfplay.ts run as is (imported, not copied) against real Slurm: a
 * two-node training run on alpha's `multi` partition under `torchrun` (the stand-in in
 * test/e2e/bin, since PyTorch is not installed here); both node ranks ran against one rendezvous.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient } from "../../client/index.ts";
import { run } from "../../docs/recipes/003-torchrun-selfplay.ts";
import { type E2E, startE2E } from "./harness.ts";

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

describe("recipe 003: torchrun training on two nodes", () => {
  it("runs node ranks 0 and 1 against the same MASTER_ADDR:MASTER_PORT and returns the log", async () => {
    const client = createClient({ baseUrl: e2e.url, token: e2e.alice });
    const r = await run(client, {
      cluster: "alpha",
      partition: "multi",
      nodes: 2,
      nprocPerNode: 1,
      time: "5m",
      setup: [`export PATH=${STANDINS}:$PATH`],
      script: [
        "bash",
        "-c",
        'echo "rank $SLURM_NODEID of $1 at $MASTER_ADDR:$MASTER_PORT"',
        "train",
        "--board square8",
      ],
    });
    expect(r, JSON.stringify(r)).toMatchObject({ state: "completed", exitCode: 0 });
    const lines = r.stdout.split("\n").filter((l) => l.startsWith("rank "));
    expect(lines.map((l) => l.split(" ")[1]).sort()).toEqual(["0", "1"]);
    expect(new Set(lines.map((l) => l.split(" at ")[1])).size).toBe(1);
    expect(lines[0]).toContain("of --board square8 at ");
  });
});
