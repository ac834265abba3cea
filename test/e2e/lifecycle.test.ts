/**
 * A user submits through the gateway; the agent runs it on the right cluster; state, exit code,
 * logs and result come back. Every terminal state is produced for real.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AgentProcess, type E2E, slurmClusters, startE2E } from "./harness.ts";
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

  it("keeps the exact script sbatch was given: GET /v1/jobs/{id}/script is job.sbatch byte for byte", async () => {
    const job = await e2e.submit(e2e.alice, {
      name: "audit-me",
      cluster: "alpha",
      command: ["echo", "é ✓ $(id) 'q'"],
      env: { NOTE: "🚀 `x`" },
    });
    await e2e.waitTerminal(e2e.alice, job.id, 120_000);
    const onDisk = await readFile(join(slurmClusters().alpha.sharedRoot, "alice", job.id, "job.sbatch"));
    const res = await fetch(`${e2e.url}/v1/jobs/${job.id}/script`, {
      headers: { authorization: `Bearer ${e2e.alice}` },
    });
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer()).equals(onDisk)).toBe(true);
    // Stored as the head before the shared wrapper body, which is stored once.
    const row = await e2e.gw.db.client.execute({
      sql: "SELECT length(script) AS head, script_body FROM jobs WHERE id = ?",
      args: [job.id],
    });
    expect(row.rows[0]?.script_body).toMatch(/^[0-9a-f]{64}$/);
    expect(Number(row.rows[0]?.head)).toBeLessThan(onDisk.length / 4);
    const other = await fetch(`${e2e.url}/v1/jobs/${job.id}/script`, {
      headers: { authorization: `Bearer ${e2e.bob}` },
    });
    expect(other.status).toBe(404);
  });
});
