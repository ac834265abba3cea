import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { batchLeases } from "../helpers/batch-leases.ts";
import { type AgentHandle, createAgent } from "../../agent/agent.ts";
import { parseAgentConfig } from "../../agent/config.ts";
import type { GatewayApi, Lease } from "../../agent/gateway-api.ts";
import { submitBatch } from "../../agent/submit-batch.ts";
import type { Job, SweepCreated, SweepDetail, SweepResultLine } from "../../schemas/index.ts";
import { type AgentProcess, type E2E, slurm, slurmClusters, startE2E } from "./harness.ts";

const shared = slurmClusters().alpha.sharedRoot;
let e2e: E2E;

beforeAll(async () => {
  e2e = await startE2E({ SLURMGATE_LEASE_SECONDS: "10" }, { alpha: { allowedSbatchArgs: ["--begin"] } });
});

afterAll(async () => {
  await e2e?.close();
});

const agentEnv = { SLURMGATE_ALLOWED_SBATCH_ARGS: "--begin", SLURMGATE_TRACK_MAX_SECONDS: "2" };

async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(e2e.url + path, {
    method,
    headers: { authorization: `Bearer ${e2e.alice}`, ...(body ? { "content-type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  if (!res.ok) {
    throw new Error(`${method} ${path} → ${res.status}: ${text}`);
  }
  return (
    res.headers.get("content-type")?.includes("ndjson")
      ? text
          .split("\n")
          .filter(Boolean)
          .map((l) => JSON.parse(l))
      : JSON.parse(text)
  ) as T;
}

async function elements(id: string): Promise<SweepDetail["elements"]> {
  const out: SweepDetail["elements"] = [];
  for (let cursor: string | null = ""; cursor !== null; ) {
    const page: SweepDetail = await call("GET", `/v1/sweeps/${id}?limit=500${cursor ? `&cursor=${cursor}` : ""}`);
    out.push(...page.elements);
    cursor = page.nextCursor;
  }
  return out;
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) {
      return value;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}`);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

const sweepIs = (id: string, done: (s: SweepDetail) => boolean, timeoutMs: number) =>
  until(
    `sweep ${id}`,
    async () => {
      const s: SweepDetail = await call("GET", `/v1/sweeps/${id}?limit=1`);
      return done(s) ? s : undefined;
    },
    timeoutMs,
  );

/** Slurm's records (squeue and sacct) of one array, as `<array>_<task>` ids, one per task. */
function tasksOf(arrayJobId: string): string[] {
  const queue = slurm("alpha", "squeue", ["-h", "--states=all", "-r", "-o", "%i", "-j", arrayJobId]).split("\n");
  const acct = slurm("alpha", "sacct", ["-X", "-P", "-n", "-o", "JobID", "-j", arrayJobId]).split("\n");
  const ids = new Set<string>();
  for (const id of [...queue, ...acct].map((l) => l.trim()).filter(Boolean)) {
    const m = /^(\d+)_\[?([\d,-]+)(?:%\d+)?\]?$/.exec(id);
    for (const part of m?.[2]?.split(",") ?? []) {
      const [from, to = from] = part.split("-").map(Number);
      for (let t = from!; t <= to!; t++) {
        ids.add(`${m![1]}_${t}`);
      }
    }
  }
  return [...ids].sort();
}

/** The batch directories alice's elements were submitted from: batch id → job ids by array index. */
function batchesOf(jobIds: string[]): Map<string, Map<number, string>> {
  const wanted = new Set(jobIds);
  const out = new Map<string, Map<number, string>>();
  for (const dir of readdirSync(join(shared, "alice")).filter((d) => d.startsWith("bat_"))) {
    for (const file of readdirSync(join(shared, "alice", dir)).filter((f) => /^element\.\d+\.nul$/.test(f))) {
      const jobId = readFileSync(join(shared, "alice", dir, file), "utf8").split("\0")[0]!;
      if (wanted.has(jobId)) {
        const index = Number(file.split(".")[1]);
        out.set(dir, (out.get(dir) ?? new Map()).set(index, jobId));
      }
    }
  }
  return out;
}

/** Every Slurm job (array) carrying one batch's tag, from squeue and sacct. */
function arraysTagged(batchId: string): string[] {
  const queue = slurm("alpha", "squeue", ["-h", "--states=all", "-o", "%F|%k"]);
  const acct = slurm("alpha", "sacct", ["-X", "-P", "-n", "-o", "JobID,Comment", "--starttime=now-1hours"]);
  return [
    ...new Set(
      `${queue}\n${acct}`
        .split("\n")
        .filter((line) => line.endsWith(`|slurmgate:batch:${batchId}`))
        .map((line) => line.split("|")[0]!.replace(/_.*/, "")),
    ),
  ];
}

// The two sweeps run side by side on one agent (the big one waits on a far --begin, so it takes no
// CPU from the grid): the file stays near three minutes, most of it the grid element's time limit.
describe.concurrent("sweeps served by one agent", () => {
  let agent: AgentProcess;
  beforeAll(() => {
    agent = e2e.startAgent("alpha", agentEnv);
  });
  afterAll(async () => {
    await agent?.stop();
  });

  it("a grid of 24 with maxParallel 3 is one throttled array; each element ends its own way with its own logs and result, in element order; a retry resubmits only the element that timed out", async ({
    expect,
  }) => {
    const payload = [
      'echo "seed=$SEED lr=$LR"',
      'if [ "$SEED.$LR" = 2.0.01 ]; then :',
      // Attempt 1 outlives its time limit (a covered ending: retried); attempt 2 fails on its own.
      '  if [ "$SLURMGATE_ATTEMPT" = 1 ]; then sleep 300; fi',
      '  echo "element failing on attempt $SLURMGATE_ATTEMPT" >&2; exit 3',
      "fi",
      'printf \'{"seed":%s,"lr":"%s"}\' "$SEED" "$LR" > "$SLURMGATE_RESULT"',
      "sleep 1",
    ].join("; ");
    const created: SweepCreated = await call("POST", "/v1/sweeps", {
      base: {
        name: "grid",
        cluster: "alpha",
        command: ["bash", "-c", payload],
        resources: { time: "1m" },
        retries: { max: 1, onTimeout: true, backoffSeconds: 0 },
      },
      grid: { LR: ["0.1", "0.01", "0.001", "0.0001"], SEED: [0, 1, 2, 3, 4, 5] },
      maxParallel: 3,
    });
    expect(created.jobIds).toHaveLength(24);
    let maxRunning = 0;
    const arrays = new Set<string>();
    const sampler = setInterval(() => {
      for (const id of arrays) {
        const running = slurm("alpha", "squeue", ["-h", "-r", "-t", "RUNNING", "-o", "%i", "-j", id]);
        maxRunning = Math.max(maxRunning, running.split("\n").filter(Boolean).length);
      }
    }, 400);
    try {
      const first = await until(
        "the array",
        async () => {
          const els = await elements(created.id);
          return els.every((e) => e.slurmJobId) ? els : undefined;
        },
        60_000,
      );
      for (const e of first) {
        arrays.add(e.slurmJobId!.split("_")[0]!);
      }
      expect(arrays.size).toBe(1);
      const [arrayId] = [...arrays];
      expect(first.map((e) => e.slurmJobId)).toEqual(first.map((_, i) => `${arrayId}_${i}`));
      expect(slurm("alpha", "scontrol", ["show", "job", arrayId!])).toMatch(/ArrayTaskThrottle=3\b/);
      const done = await sweepIs(created.id, (s) => s.state !== "active", 170_000);
      expect(done).toMatchObject({ state: "failed", total: 24, done: 24, counts: { completed: 23, failed: 1 } });
    } finally {
      clearInterval(sampler);
    }
    expect(maxRunning).toBeGreaterThan(0);
    expect(maxRunning).toBeLessThanOrEqual(3);

    const results: SweepResultLine[] = await call("GET", `/v1/sweeps/${created.id}/results`);
    expect(results.map((r) => r.index)).toEqual([...Array(24).keys()]);
    expect(results.map((r) => r.jobId)).toEqual(created.jobIds);
    const failedIndex = results.findIndex((r) => r.state === "failed");
    const failed: Job = await call("GET", `/v1/jobs/${created.jobIds[failedIndex]}`);
    expect(failed.spec?.env).toMatchObject({ SEED: "2", LR: "0.01" });
    expect(failed).toMatchObject({ state: "failed", exitCode: 3, attempt: 2, reason: "exited 3" });
    expect(await e2e.logs(e2e.alice, failed.id, "stderr")).toBe("element failing on attempt 2\n");
    for (const [i, line] of results.entries()) {
      if (i === failedIndex) {
        expect(line).toMatchObject({ state: "failed", exitCode: 3, result: null });
        continue;
      }
      const job: Job = await call("GET", `/v1/jobs/${line.jobId}`);
      expect(line).toMatchObject({ state: "completed", exitCode: 0 });
      expect(line.result).toEqual({ seed: Number(job.spec?.env.SEED), lr: job.spec?.env.LR });
      expect(await e2e.logs(e2e.alice, line.jobId)).toBe(`seed=${job.spec?.env.SEED} lr=${job.spec?.env.LR}\n`);
    }
    // The retry was a new array of one task: the element alone, never the 23 that completed.
    const retryArray = failed.slurmJobId!.split("_")[0]!;
    expect(retryArray).not.toBe([...arrays][0]);
    expect(tasksOf(retryArray)).toEqual([failed.slurmJobId]);
    const pairs = new Set(results.map((r) => (r.result ? JSON.stringify(r.result) : "x")));
    expect(pairs.size).toBe(24);
  }, 200_000);

  it("3,000 elements go into Slurm as 3 arrays (1001, 1001, 998); cancelling one element, then the whole sweep", async ({
    expect,
  }) => {
    expect(slurm("alpha", "scontrol", ["show", "config"])).toMatch(/^MaxArraySize\s*=\s*1001$/m);
    try {
      await threeThousand(expect);
    } finally {
      // Held an hour ahead: left behind by a failed run, 3,000 elements would fill alpha for every test after.
      const arrays = slurm("alpha", "squeue", ["-h", "-o", "%F|%j"])
        .split("\n")
        .filter((line) => /^\d+\|big-\d+$/.test(line))
        .map((line) => line.split("|")[0]!);
      if (arrays.length) {
        slurm("alpha", "scancel", [...new Set(arrays)]);
      }
    }
  }, 150_000);
});

async function threeThousand(expect: import("vitest").ExpectStatic): Promise<void> {
  const created: SweepCreated = await call("POST", "/v1/sweeps", {
    base: { name: "big", cluster: "alpha", command: ["true"], extraSbatchArgs: ["--begin=now+1hour"] },
    grid: { I: [...Array(3_000).keys()] },
  });
  expect(created.jobIds).toHaveLength(3_000);
  await sweepIs(created.id, (s) => (s.counts.pending ?? 0) === 3_000, 90_000);
  const clusters = (await (
    await fetch(`${e2e.url}/v1/clusters`, { headers: { authorization: `Bearer ${e2e.admin}` } })
  ).json()) as { items: { name: string; inventory: { maxArraySize?: number } | null }[] };
  expect(clusters.items.find((c) => c.name === "alpha")?.inventory?.maxArraySize).toBe(1001);
  const els = await elements(created.id);
  const sizes = new Map<string, number>();
  for (const e of els) {
    const base = e.slurmJobId!.split("_")[0]!;
    sizes.set(base, (sizes.get(base) ?? 0) + 1);
  }
  expect([...sizes.values()]).toEqual([1001, 1001, 998]);
  expect(new Set(els.map((e) => e.slurmJobId)).size).toBe(3_000);

  // One element: scancel <array>_<index>; the others stay pending.
  const one = els[5]!;
  await call("POST", `/v1/jobs/${one.jobId}/cancel`);
  const cancelled = await e2e.waitTerminal(e2e.alice, one.jobId, 30_000);
  expect(cancelled).toMatchObject({ state: "cancelled", slurmJobId: one.slurmJobId });
  const [firstArray] = [...sizes.keys()];
  const left = slurm("alpha", "squeue", ["-h", "-r", "-o", "%i", "-j", firstArray!]).split("\n").filter(Boolean);
  expect(left).toHaveLength(1000);
  expect(left).not.toContain(one.slurmJobId);
  expect((await call<SweepDetail>("GET", `/v1/sweeps/${created.id}?limit=1`)).counts).toMatchObject({
    cancelled: 1,
    pending: 2_999,
  });

  // The whole sweep.
  await call("POST", `/v1/sweeps/${created.id}/cancel`);
  const gone = await sweepIs(created.id, (s) => s.state !== "active", 60_000);
  expect(gone).toMatchObject({ state: "cancelled", done: 3_000, counts: { cancelled: 3_000 } });
  for (const array of sizes.keys()) {
    expect(slurm("alpha", "squeue", ["-h", "-r", "-t", "PENDING,RUNNING", "-o", "%i", "-j", array])).toBe("");
  }
}

const exitOf = (child: import("node:child_process").ChildProcess) =>
  new Promise<string | null>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      resolve(child.signalCode);
      return;
    }
    child.once("exit", (_code, signal) => resolve(signal));
  });

// before-report leaves the ids in the state file: the restart adopts them as for a plain job.
describe.each(["before-sbatch", "after-sbatch"])("agent SIGKILLed %s a sweep batch", (step) => {
  it("restarted on the same state file: every element in Slurm exactly once, all complete", async () => {
    const created: SweepCreated = await call("POST", "/v1/sweeps", {
      base: { name: `crash-${step}`, cluster: "alpha", command: ["bash", "-c", 'echo "element $N"'] },
      grid: { N: [0, 1, 2, 3] },
    });
    const first = e2e.startAgent("alpha", { ...agentEnv, SLURMGATE_TEST_CRASH_AT: step });
    expect(await exitOf(first.child)).toBe("SIGKILL");
    const second = e2e.startAgent("alpha", { ...agentEnv, SLURMGATE_STATE_FILE: first.stateFile });
    const done = await sweepIs(created.id, (s) => s.state !== "active", 90_000);
    await second.stop();
    expect(done).toMatchObject({ state: "completed", counts: { completed: 4 } });
    const els = await elements(created.id);
    for (const [i, e] of els.entries()) {
      expect(await e2e.logs(e2e.alice, e.jobId)).toBe(`element ${i}\n`);
    }
    // One batch, one array with its tag, each element one task of it (no second array, no duplicate).
    const batches = batchesOf(created.jobIds);
    expect(batches.size).toBe(1);
    const [batchId, members] = [...batches][0]!;
    const arrays = arraysTagged(batchId);
    expect(arrays).toHaveLength(1);
    expect(tasksOf(arrays[0]!)).toEqual([...members.keys()].sort().map((i) => `${arrays[0]}_${i}`));
    expect(els.map((e) => e.slurmJobId).sort()).toEqual(tasksOf(arrays[0]!));
  }, 120_000);
});

describe("agent SIGKILLed after sbatch queued a batch, before it wrote the ids down", () => {
  it("another agent takes the expired leases over and adopts the array by its batch tag: no second array", async () => {
    const created: SweepCreated = await call("POST", "/v1/sweeps", {
      base: { name: "takeover", cluster: "alpha", command: ["bash", "-c", 'echo "element $N"'] },
      grid: { N: [0, 1, 2] },
    });
    const first = e2e.startAgent("alpha", { ...agentEnv, SLURMGATE_TEST_CRASH_AT: "after-sbatch" });
    expect(await exitOf(first.child)).toBe("SIGKILL");
    const other = e2e.startAgent("alpha", agentEnv);
    const done = await sweepIs(created.id, (s) => s.state !== "active", 90_000);
    await other.stop();
    expect(done).toMatchObject({ state: "completed", counts: { completed: 3 } });
    const [batchId] = [...batchesOf(created.jobIds).keys()];
    const arrays = arraysTagged(batchId!);
    expect(arrays).toHaveLength(1);
    expect((await elements(created.id)).map((e) => e.slurmJobId)).toEqual([0, 1, 2].map((i) => `${arrays[0]}_${i}`));
  }, 120_000);
});

describe("submitting a batch (the agent's submit step on real Slurm, leases handed to it directly)", () => {
  let agent: AgentHandle;
  let sbatchCalls = 0;
  let lose = false;
  // One sbatch per batch here: nothing to pace.
  const noPace = async () => {};
  beforeAll(async () => {
    const env = e2e.agentEnv("alpha", agentEnv);
    const api = {
      me: async () => ({
        ok: true as const,
        value: { kind: "agent", cluster: "alpha", user: null, serverTime: new Date().toISOString() },
      }),
    } as unknown as GatewayApi;
    agent = await createAgent(parseAgentConfig(env), env, { api, log: () => {} });
    const real = agent.ctx.slurm;
    agent.ctx.slurm = {
      ...real,
      // Slurm queues the array, but the answer is lost on the way back (a timeout, as sbatch can).
      sbatch: async (script, args) => {
        sbatchCalls++;
        const result = await real.sbatch(script, args);
        return lose && result.ok
          ? { ok: false, retryable: true, code: "timeout", message: "sbatch timed out" }
          : result;
      },
    };
  });

  const batchOf = (n: number, spec: Record<string, unknown> = {}) =>
    batchLeases(n, { name: "direct", maxParallel: 2, spec });

  it("finds every member by the batch tag when sbatch's answer is lost: one array, no second sbatch", async () => {
    const leases = batchOf(3);
    lose = true;
    sbatchCalls = 0;
    const results = await submitBatch(agent.ctx, leases, noPace).finally(() => {
      lose = false;
    });
    expect(sbatchCalls).toBe(1);
    expect(results.map((r) => r.kind)).toEqual(["submitted", "submitted", "submitted"]);
    const ids = results.map((r) => (r.kind === "submitted" ? r.report.slurmJobId : ""));
    const array = ids[0]!.split("_")[0]!;
    expect(ids).toEqual([0, 1, 2].map((i) => `${array}_${i}`));
    expect(arraysTagged(leases[0]!.batch!.id)).toEqual([array]);
    expect(leases.map((l) => agent.ctx.state.get(l.jobId)?.slurmJobId)).toEqual(ids);
    slurm("alpha", "scancel", [array]);
  });

  it("gives every member Slurm's refusal of the whole array, and keeps none of them", async () => {
    const leases = batchOf(2, { resources: { gpus: { count: 1, type: "nosuchgpu" } } });
    const results = await submitBatch(agent.ctx, leases, noPace);
    expect(results.map((r) => (r.kind === "refused" ? r.report.code : r.kind))).toEqual([
      "slurm_node_config",
      "slurm_node_config",
    ]);
    // Slurm keeps a FAILED record of the refused array; nothing of it waits or runs.
    const live = slurm("alpha", "squeue", ["-h", "-t", "PENDING,RUNNING", "-o", "%k"]);
    expect(live).not.toContain(leases[0]!.batch!.id);
    expect(leases.map((l) => agent.ctx.state.get(l.jobId))).toEqual([undefined, undefined]);
  });

  it("refuses only the member it cannot prepare (a job id that is not one) and submits the others as one array", async () => {
    const leases = batchOf(3);
    const results = await submitBatch(
      agent.ctx,
      [leases[0]!, { ...leases[1]!, jobId: "job_..", batch: leases[1]!.batch } as Lease, leases[2]!],
      noPace,
    );
    expect(results.map((r) => r.kind)).toEqual(["submitted", "refused", "submitted"]);
    const ids = results.flatMap((r) => (r.kind === "submitted" ? [r.report.slurmJobId] : []));
    const array = ids[0]!.split("_")[0]!;
    expect(ids).toEqual([`${array}_0`, `${array}_2`]);
    expect(tasksOf(array)).toEqual([`${array}_0`, `${array}_2`]);
    expect(existsSync(join(shared, "alice", "job_.."))).toBe(false);
    slurm("alpha", "scancel", [array]);
  });
});
