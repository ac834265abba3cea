/**
 * Corrupt stored rows on real Slurm. Rows written straight into the gateway's database break each
 * rule of JobSpec (workdir `..`, newline + `#SBATCH` in a name, a partition the cluster lacks, a
 * bind outside the roots, a spec that is not JSON, fields of the wrong type): each ends `rejected`
 * with its code, Slurm never sees a job tagged with it, and a valid job leased in the same batch
 * completes. Then the agent's own re-validation: leases carrying the same faults, handed straight
 * to the agent's submit step, are refused before sbatch.
 */
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { dirname } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AgentHandle, createAgent } from "../../agent/agent.ts";
import { parseAgentConfig } from "../../agent/config.ts";
import type { GatewayApi, Lease } from "../../agent/gateway-api.ts";
import { submitLease } from "../../agent/submit.ts";
import { JobSpec } from "../../schemas/index.ts";
import { type E2E, slurmClusters, slurmJobsTagged, startE2E } from "./harness.ts";

let e2e: E2E;

beforeAll(async () => {
  e2e = await startE2E();
});

afterAll(async () => {
  await e2e?.close();
});

const spec = (name: string) => ({ name, cluster: "alpha", command: ["bash", "-c", "echo ok"] });

async function storedSpec(id: string): Promise<Record<string, unknown>> {
  const rs = await e2e.gw.db.client.execute({ sql: "SELECT spec FROM jobs WHERE id = ?", args: [id] });
  return JSON.parse(String(rs.rows[0]?.spec));
}

async function writeSpec(id: string, text: string) {
  await e2e.gw.db.client.execute({ sql: "UPDATE jobs SET spec = ? WHERE id = ?", args: [text, id] });
}

describe("corrupt rows on real Slurm", () => {
  it("rejects each corrupt row with its code, never calls sbatch for it, and completes the valid job beside it", async () => {
    const faults: Record<string, { make: (v: Record<string, unknown>) => string; code: string }> = {
      "workdir ..": { make: (v) => JSON.stringify({ ...v, workdir: "../../etc" }), code: "invalid_spec" },
      "newline + #SBATCH in the name": {
        make: (v) => JSON.stringify({ ...v, name: "x\n#SBATCH --uid=0" }),
        code: "invalid_spec",
      },
      "unknown partition": {
        make: (v) => JSON.stringify({ ...v, partition: "nosuchpart" }),
        code: "slurm_invalid_partition",
      },
      "bind outside the roots": {
        make: (v) =>
          JSON.stringify({
            ...v,
            container: { image: "docker://alpine:3", binds: [{ src: "/etc", readonly: true }], mountHome: false },
          }),
        code: "path_outside_roots",
      },
      "not JSON": { make: () => '{"name": "x", "command": [', code: "invalid_spec" },
      "wrong types": {
        make: (v) => JSON.stringify({ ...v, name: ["x"], resources: { cpusPerTask: "2" } }),
        code: "invalid_spec",
      },
    };
    // The agent is not running yet: every row is in place before the first lease.
    const valid = await e2e.submit(e2e.alice, spec("valid-beside"));
    const broken: Record<string, string> = {};
    for (const [what, fault] of Object.entries(faults)) {
      const job = await e2e.submit(e2e.alice, spec("to-break"));
      await writeSpec(job.id, fault.make(await storedSpec(job.id)));
      broken[what] = job.id;
    }
    const agent = e2e.startAgent("alpha");
    try {
      const done = await e2e.waitTerminal(e2e.alice, valid.id, 90_000);
      expect([done.state, done.exitCode]).toEqual(["completed", 0]);
      expect(await e2e.logs(e2e.alice, valid.id)).toBe("ok\n");
      for (const [what, id] of Object.entries(broken)) {
        const job = await e2e.waitTerminal(e2e.alice, id, 30_000);
        expect({ what, state: job.state, code: job.code }).toEqual({
          what,
          state: "rejected",
          code: faults[what]!.code,
        });
        expect(job.reason).toBeTruthy();
      }
      expect(slurmJobsTagged("alpha", valid.id)).toEqual([done.slurmJobId]);
      for (const id of Object.values(broken)) {
        expect({ id, tagged: slurmJobsTagged("alpha", id) }).toEqual({ id, tagged: [] });
      }
    } finally {
      await agent.stop();
    }
    expect(agent.logs()).not.toMatch(/cycle crashed/);
  });
});

describe("the agent re-validates every lease before sbatch (real Slurm, in-process agent)", () => {
  let agent: AgentHandle;
  const sbatchScripts: string[] = [];
  const root = () => slurmClusters().alpha.sharedRoot;
  const jobId = () => `job_${randomBytes(13).toString("hex")}`;
  const base = () => JobSpec.parse({ name: "revalidated", command: ["true"] });
  const lease = (owner: string, specValue: unknown): Lease => ({
    jobId: jobId(),
    epoch: 1,
    attempt: 1,
    owner,
    expiresAt: new Date(Date.now() + 60_000).toISOString(),
    spec: specValue as Lease["spec"],
    slurmJobId: null,
    dependsOnSlurmIds: [],
    batch: null,
  });

  beforeAll(async () => {
    const env = e2e.agentEnv("alpha");
    // The gateway is only asked whom the token belongs to (at start): the leases are handed to the
    // submit step directly.
    const api = {
      me: async () => ({
        ok: true as const,
        value: { kind: "agent", cluster: "alpha", user: null, serverTime: new Date().toISOString() },
      }),
    } as unknown as GatewayApi;
    agent = await createAgent(parseAgentConfig(env), env, { api, log: () => {} });
    // Watch the real sbatch: which scripts it was asked to submit (Slurm may refuse some itself).
    const real = agent.ctx.slurm;
    agent.ctx.slurm = {
      ...real,
      sbatch: (script, args) => {
        sbatchScripts.push(script);
        return real.sbatch(script, args);
      },
    };
  });

  it.each([
    ["workdir ..", "alice", () => ({ ...base(), workdir: "../../../tmp" }), "invalid_spec"],
    ["newline + #SBATCH in the name", "alice", () => ({ ...base(), name: "x\n#SBATCH --uid=0" }), "invalid_spec"],
    [
      "a partition the cluster does not have",
      "alice",
      () => ({ ...base(), partition: "nosuchpart" }),
      "slurm_invalid_partition",
    ],
    [
      "a bind outside the roots",
      "alice",
      () => ({
        ...base(),
        container: { image: "docker://alpine:3", binds: [{ src: "/etc", readonly: true }], mountHome: false },
      }),
      "path_outside_roots",
    ],
    ["an owner that climbs out of the root", "..", () => base(), "path_outside_roots"],
    ["a spec that is not an object", "alice", () => "not a spec", "invalid_spec"],
  ])("refuses %s before sbatch and creates nothing outside the root", async (_what, owner, make, code) => {
    const l = lease(owner, make());
    const above = dirname(root());
    const result = await submitLease(agent.ctx, l);
    expect(result.kind).toBe("refused");
    expect(result.kind !== "retry" && result.report).toMatchObject({ state: "rejected", code });
    expect(slurmJobsTagged("alpha", l.jobId)).toEqual([]);
    expect(sbatchScripts.filter((script) => script.includes(l.jobId))).toEqual([]);
    expect(existsSync(`${above}/${l.jobId}`)).toBe(false);
  });

  it("still submits a valid lease, exactly once", async () => {
    const l = lease("alice", base());
    const result = await submitLease(agent.ctx, l);
    expect(result.kind).toBe("submitted");
    const slurmJobId = result.kind === "submitted" ? result.report.slurmJobId : undefined;
    expect(slurmJobsTagged("alpha", l.jobId)).toEqual([slurmJobId]);
    expect(sbatchScripts.filter((script) => script.includes(l.jobId))).toHaveLength(1);
  });
});
