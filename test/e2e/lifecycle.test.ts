/**
 * A user submits through the gateway; the agent runs it on the right cluster; state, exit code,
 * logs and result come back. Every terminal state is produced for real.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AgentProcess, type E2E, startE2E } from "./harness.ts";
import { lifecycleScenarios } from "./scenarios.ts";

let e2e: E2E;
let agents: AgentProcess[];

beforeAll(async () => {
  e2e = await startE2E();
  agents = [e2e.startAgent("alpha"), e2e.startAgent("beta")];
  await e2e.waitClustersAlive();
});

afterAll(async () => {
  await e2e?.close();
});

describe("a job's whole life on real Slurm", () => {
  lifecycleScenarios(() => ({ e2e, agents }), "");

  it("ends a job past its time limit as timeout", async () => {
    const job = await e2e.submit(e2e.alice, {
      name: "too-long",
      cluster: "alpha",
      resources: { time: "1" },
      command: ["sleep", "600"],
    });
    const done = await e2e.waitTerminal(e2e.alice, job.id, 200_000);
    expect(done.state).toBe("timeout");
    expect(done.reason).toBe("time limit 1m reached");
    expect(done.code).toBe("time_limit");
  });
});
