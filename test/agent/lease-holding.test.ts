/**
 * An agent tracking more jobs than one lease call may list (MAX_HOLDING_PER_LEASE) renews every one
 * of them each cycle: the overflow in renewal-only calls (`max: 0`, no wait) before the claiming
 * call. Every body the agent sends is checked against the real LeaseRequest schema, as the gateway
 * would; a call over the cap is answered 422, as the gateway does.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { createAgent } from "../../agent/agent.ts";
import { parseAgentConfig } from "../../agent/config.ts";
import { createLocalExecutor } from "../../agent/executor/local.ts";
import type { Executor } from "../../agent/executor/types.ts";
import type { GatewayApi, Lease } from "../../agent/gateway-api.ts";
import { beganSubmitting, submitted } from "../../agent/job-life.ts";
import { LeaseRequest, MAX_HOLDING_PER_LEASE } from "../../schemas/agent.ts";
import { JobSpec } from "../../schemas/job.ts";

const jobId = (i: number) => `job_${String(i).padStart(8, "0")}abcdefghjkmnpq`;

function heldLease(i: number): Lease {
  return {
    jobId: jobId(i),
    epoch: 1,
    attempt: 1,
    owner: "alice",
    expiresAt: "2026-12-01T12:00:00Z",
    spec: JobSpec.parse({ name: `h-${i}`, command: ["true"] }),
    slurmJobId: null,
    dependsOnSlurmIds: [],
    batch: null,
  };
}

function gateway(lostOnRenewal: Set<string>) {
  const bodies: LeaseRequest[] = [];
  const api: Pick<GatewayApi, "lease"> = {
    lease: async (body) => {
      const parsed = LeaseRequest.safeParse(body);
      if (!parsed.success) {
        return { ok: false, status: 422, message: parsed.error.message.slice(0, 200), retryable: false };
      }
      bodies.push(parsed.data);
      const lost = parsed.data.max === 0 ? parsed.data.holding.filter((id) => lostOnRenewal.has(id)) : [];
      const value = {
        leases: [],
        cancels: [],
        lost,
        asks: [],
        leaseSeconds: 120,
        serverTime: new Date().toISOString(),
      };
      return { ok: true, value };
    },
  };
  return { api, bodies };
}

async function agentHolding(count: number, api: Pick<GatewayApi, "lease">) {
  const dir = mkdtempSync(join(tmpdir(), "sg-holding-"));
  const env = {
    HOME: dir,
    PATH: "/usr/bin:/bin",
    SLURMGATE_URL: "http://127.0.0.1:9",
    SLURMGATE_AGENT_TOKEN: "sga_holdingtest0123456789abcdefghijklm",
    SLURMGATE_CLUSTER: "alpha",
    SLURMGATE_SHARED_ROOTS: dir,
    SLURMGATE_STATE_FILE: join(dir, "agent-state.json"),
  };
  const never = async () => ({ ok: false as const, message: "not in this double", retryable: false });
  const me = async () => ({
    ok: true as const,
    value: { kind: "agent", cluster: "alpha", user: null, serverTime: new Date().toISOString() },
  });
  // Slurm is not part of this: every command is "not found", so tracking only records an error.
  const local = createLocalExecutor({ defaultTimeoutMs: 5_000, spawners: 1 });
  const executor: Executor = {
    ...local,
    run: async (cmd) => ({ code: 127, stdout: "", stderr: `${cmd}: not found`, timedOut: false }),
  };
  const agent = await createAgent(parseAgentConfig(env), env, {
    api: {
      me,
      report: never,
      inventory: never,
      goodbye: never,
      cluster: never,
      answer: never,
      file: never,
      ...api,
    } as GatewayApi,
    executor,
    log: () => {},
  });
  agent.ctx.state.batch(() => {
    for (let i = 0; i < count; i++) {
      agent.ctx.state.put(submitted(beganSubmitting(heldLease(i), join(dir, String(i)), Date.now()), String(1000 + i)));
    }
  });
  return agent;
}

describe("renewing more held jobs than one lease call may list", () => {
  it("renews every held job once per cycle, each call under the cap, the claiming call last", async () => {
    const count = 2 * MAX_HOLDING_PER_LEASE + 1;
    const gw = gateway(new Set());
    const agent = await agentHolding(count, gw.api);
    const stats = await agent.runOnce();

    const calls = gw.bodies;
    expect(calls.map((b) => [b.max, b.wait])).toEqual([
      [0, 0],
      [0, 0],
      [agent.ctx.config.SLURMGATE_MAX_LEASE, 0],
    ]);
    expect(calls.every((b) => b.holding.length <= MAX_HOLDING_PER_LEASE)).toBe(true);
    const sent = calls.flatMap((b) => b.holding);
    expect(sent.length).toBe(count); // each once
    expect(new Set(sent)).toEqual(new Set(Array.from({ length: count }, (_, i) => jobId(i))));
    expect(stats.errors.filter((e) => e.startsWith("lease"))).toEqual([]);
  });

  it("exactly the cap needs no renewal-only call", async () => {
    const gw = gateway(new Set());
    const agent = await agentHolding(MAX_HOLDING_PER_LEASE, gw.api);
    await agent.runOnce();
    expect(gw.bodies.map((b) => [b.max, b.holding.length])).toEqual([
      [agent.ctx.config.SLURMGATE_MAX_LEASE, MAX_HOLDING_PER_LEASE],
    ]);
  });

  it("a job a renewal-only call reports lost is no longer tracked", async () => {
    const count = MAX_HOLDING_PER_LEASE + 5;
    const gone = jobId(count - 1); // the overflow is the tail: renewed in the max-0 call
    const gw = gateway(new Set([gone]));
    const agent = await agentHolding(count, gw.api);
    await agent.runOnce();
    expect(gw.bodies[0]?.max).toBe(0);
    expect(gw.bodies[0]?.holding).toContain(gone);
    expect(agent.ctx.state.get(gone)).toBeUndefined();
    expect(agent.ctx.state.all().length).toBe(count - 1);
  });

  it("the schema refuses one held job over the cap, as the gateway would", () => {
    const over = Array.from({ length: MAX_HOLDING_PER_LEASE + 1 }, (_, i) => jobId(i));
    const parsed = LeaseRequest.safeParse({ agentId: "a", max: 1, holding: over });
    expect(parsed.success).toBe(false);
    expect(parsed.error?.issues[0]?.path).toEqual(["holding"]);
  });
});
