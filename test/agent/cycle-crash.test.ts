/**
 * Every crash point of the exactly-once protocol, in milliseconds: `runCycle` through `createAgent`
 * with an in-memory gateway double and an executor that answers Slurm commands from the captured
 * outputs in test/fixtures/slurm (files are real, in a temp directory). A crash is a throw out of
 * the step; then a fresh agent on the same state file runs a cycle. Across both runs each job gets
 * exactly one sbatch and the gateway ends up told its Slurm id. (The real-gateway, real-Slurm
 * versions of these are test/e2e/exactly-once.test.ts and identity-exactly-once.test.ts.)
 */
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { type AgentHandle, createAgent } from "../../agent/agent.ts";
import { parseAgentConfig } from "../../agent/config.ts";
import type { CrashStep } from "../../agent/context.ts";
import { expandArrayIndexes } from "../../agent/array-indexes.ts";
import { createLocalExecutor } from "../../agent/executor/local.ts";
import type { ExecResult, Executor } from "../../agent/executor/types.ts";
import type { GatewayApi, Lease, LeaseResponse, Report } from "../../agent/gateway-api.ts";
import { JobSpec } from "../../schemas/job.ts";
import { fixture } from "./helpers/fixtures.ts";

const BATCH = "bat_0123456789abcdefghij";
const jobId = (i: number) => `job_${String(i).padStart(4, "0")}0123456789abcdef`;

function lease(i: number, over: Partial<Lease> = {}, batch = false): Lease {
  return {
    jobId: jobId(i),
    epoch: 1,
    attempt: 1,
    owner: "alice",
    expiresAt: "2026-11-30T12:00:00Z",
    spec: JobSpec.parse({ name: `c-${i}`, partition: "cpu", command: ["true"], resources: { time: "10m" } }),
    slurmJobId: null,
    dependsOnSlurmIds: [],
    batch: batch ? { id: BATCH, index: i, size: 3, maxParallel: null } : null,
    ...over,
  };
}

/** Slurm as the captured outputs show it: sbatch prints an id, squeue lists what was queued, with its tag. */
function fakeSlurm() {
  const queued: { id: number; comment: string; tasks: number[] | null }[] = [];
  const calls: string[][] = [];
  let next = 7000;
  const ok = (stdout: string, stderr = ""): ExecResult => ({ code: 0, stdout, stderr, timedOut: false });
  const squeueRow = fixture("squeue-states-all.txt").split("\n")[0]!.split("|");
  const row = (display: string, raw: number, arrayJob: number, task: string, comment: string) => {
    const f = [...squeueRow];
    [f[0], f[1], f[2], f[3], f[4], f[5], f[8]] = [
      display,
      String(raw),
      String(arrayJob),
      task,
      "PENDING",
      "BeginTime",
      comment,
    ];
    return f.slice(0, 9).join("|");
  };
  const run = (cmd: string, args: readonly string[]): ExecResult => {
    const name = basename(cmd);
    calls.push([name, ...args]);
    switch (name) {
      case "sbatch": {
        if (args[0] === "--version") {
          return ok(fixture("sbatch-version.txt"));
        }
        const script = readFileSync(args[args.length - 1]!, "utf8");
        const comment = /^#SBATCH --comment=(\S+)$/m.exec(script)?.[1] ?? "";
        const array = /^#SBATCH --array=([\d,:-]+)/m.exec(script)?.[1];
        const id = next++;
        next += 10;
        const tasks = array ? expandArrayIndexes(array) : null;
        queued.push({ id, comment, tasks });
        return ok(fixture("sbatch-ok.stdout.txt").replace("7", String(id)), fixture("sbatch-ok.stderr.txt"));
      }
      case "squeue":
        return ok(
          queued
            .flatMap((j) =>
              j.tasks
                ? j.tasks.map((t) => row(`${j.id}_${t}`, j.id + t + 1, j.id, String(t), j.comment))
                : [row(String(j.id), j.id, j.id, "N/A", j.comment)],
            )
            .map((l) => `${l}\n`)
            .join(""),
        );
      case "sacct":
        return {
          code: 1,
          stdout: fixture("sacct-disabled.stdout.txt"),
          stderr: fixture("sacct-disabled.stderr.txt"),
          timedOut: false,
        };
      case "sinfo":
        return ok(fixture(args.includes("-N") ? "sinfo-gpus-alpha-busy.txt" : "sinfo-alpha-counts.txt"));
      case "scontrol":
        return ok(args.includes("config") ? fixture("scontrol-show-config.txt") : "");
      case "scancel":
        return ok("", "");
      default:
        return { code: 127, stdout: "", stderr: `${name}: not found`, timedOut: false };
    }
  };
  const sbatches = () => calls.filter((c) => c[0] === "sbatch" && c[1] !== "--version");
  const scancels = () => calls.filter((c) => c[0] === "scancel");
  return { run, queued, calls, sbatches, scancels };
}

/** The gateway as the agent sees it: hands out the leases it is given, records every report. */
function gatewayDouble() {
  const reports: Report[] = [];
  const pending: Partial<LeaseResponse>[] = [];
  const api: GatewayApi = {
    me: async () => ({
      ok: true,
      value: { kind: "agent", cluster: "alpha", user: null, serverTime: new Date().toISOString() },
    }),
    lease: async () => {
      const next = pending.shift() ?? {};
      return {
        ok: true,
        value: {
          leases: [],
          cancels: [],
          lost: [],
          asks: [],
          leaseSeconds: 300,
          serverTime: new Date().toISOString(),
          ...next,
        },
      };
    },
    report: async (_agentId, batch) => {
      reports.push(...structuredClone(batch));
      return { ok: true, value: batch.map((r) => ({ jobId: r.jobId, status: "applied" as const })) };
    },
    inventory: async () => ({ ok: true, value: { serverTime: new Date().toISOString() } }),
    goodbye: async () => ({ ok: true, value: { stoppedAt: null, clusterAlive: false } }),
    cluster: async () => ({ ok: false, message: "not in this double", retryable: false }),
    answer: async () => ({ ok: false, message: "not in this double", retryable: false }),
    file: async () => ({ ok: false, status: 404, message: "not in this double", retryable: false }),
  };
  /** The Slurm ids the gateway was told for a job: by a submitted report, or a later state carrying the id. */
  const submittedAs = (id: string) => reports.filter((r) => r.jobId === id && r.slurmJobId).map((r) => r.slurmJobId);
  return { api, reports, pending, submittedAs };
}

type World = { dir: string; slurm: ReturnType<typeof fakeSlurm>; gateway: ReturnType<typeof gatewayDouble> };

function world(): World {
  return { dir: mkdtempSync(join(tmpdir(), "sg-crash-")), slurm: fakeSlurm(), gateway: gatewayDouble() };
}

const agents: AgentHandle[] = [];
afterEach(() => {
  agents.splice(0);
});

async function agentOn(w: World, crashAt?: CrashStep): Promise<AgentHandle> {
  const local = createLocalExecutor({ defaultTimeoutMs: 5_000, spawners: 2 });
  const executor: Executor = { ...local, run: async (cmd, args) => w.slurm.run(cmd, args) };
  const env = {
    HOME: w.dir,
    PATH: "/usr/bin:/bin",
    SLURMGATE_URL: "http://127.0.0.1:9",
    SLURMGATE_AGENT_TOKEN: "sga_crashtest0123456789abcdefghijklmnop",
    SLURMGATE_CLUSTER: "alpha",
    SLURMGATE_SHARED_ROOTS: w.dir,
    SLURMGATE_STATE_FILE: join(w.dir, "agent-state.json"),
    SLURMGATE_SUBMITS_PER_SECOND: "1000",
  };
  const agent = await createAgent(parseAgentConfig(env), env, {
    api: w.gateway.api,
    executor,
    log: process.env.CRASH_DEBUG ? (...a: unknown[]) => console.log(...a) : () => {},
  });
  if (crashAt) {
    agent.ctx.onCrashPoint = (step) => {
      if (step === crashAt) {
        throw new Error(`crash at ${step}`);
      }
    };
  }
  agents.push(agent);
  return agent;
}

/** Runs one cycle that crashes at `step`, then one cycle of a fresh agent on the same state file. */
async function crashThenRestart(w: World, step: CrashStep, leases: Lease[], afterCrash: Partial<LeaseResponse> = {}) {
  w.gateway.pending.push({ leases });
  const first = await agentOn(w, step);
  await expect(first.runOnce()).rejects.toThrow(`crash at ${step}`);
  w.gateway.pending.push(afterCrash);
  const second = await agentOn(w);
  const stats = await second.runOnce();
  return { first, second, stats };
}

const STEPS: CrashStep[] = ["before-sbatch", "after-sbatch", "before-report"];

describe("exactly once across a crash at every point (plain jobs)", () => {
  it.each(STEPS)("crashed %s: one sbatch in all, and the gateway told its Slurm id", async (step) => {
    const w = world();
    const { second, stats } = await crashThenRestart(w, step, [lease(1)]);
    expect(w.slurm.sbatches()).toHaveLength(1);
    const id = String(w.slurm.queued[0]!.id);
    expect(w.gateway.submittedAs(jobId(1)).at(-1)).toBe(id);
    expect(w.gateway.reports.filter((r) => r.state && r.state !== "submitted" && r.state !== "pending")).toEqual([]);
    expect(stats.errors).toEqual([]);
    expect(second.ctx.state.get(jobId(1))).toMatchObject({ phase: "submitted", slurmJobId: id, epoch: 1 });
  });

  it("before sbatch, nothing was queued: the restarted agent submits it (once) after looking the tag up", async () => {
    const w = world();
    await crashThenRestart(w, "before-sbatch", [lease(1)]);
    const squeueAt = w.slurm.calls.findIndex((c) => c[0] === "squeue");
    const sbatchAt = w.slurm.calls.findIndex((c) => c[0] === "sbatch" && c[1] !== "--version");
    expect(squeueAt).toBeGreaterThanOrEqual(0);
    expect(squeueAt).toBeLessThan(sbatchAt);
  });

  it("after sbatch, before the id was journaled: found by its tag, reported as found, never resubmitted", async () => {
    const w = world();
    await crashThenRestart(w, "after-sbatch", [lease(1)]);
    expect(w.gateway.reports.find((r) => r.state === "submitted")?.reason).toMatch(/found by its tag/);
  });

  it("several jobs, crashed after the first sbatch: each still gets exactly one", async () => {
    const w = world();
    // Job 3 was never journaled: the gateway's lease on it expires, and it comes back as epoch 2.
    await crashThenRestart(w, "after-sbatch", [lease(1), lease(2), lease(3)], { leases: [lease(3, { epoch: 2 })] });
    const tags = w.slurm.queued.map((q) => q.comment).sort();
    expect(tags).toEqual([1, 2, 3].map((i) => `slurmgate:${jobId(i)}:1`));
    for (const i of [1, 2, 3]) {
      expect(w.gateway.submittedAs(jobId(i)).length).toBeGreaterThan(0);
    }
  });
});

describe("a lease renewed under a new epoch after the crash", () => {
  it.each(STEPS)("crashed %s, re-leased as epoch 2: one sbatch, reported under epoch 2", async (step) => {
    const w = world();
    await crashThenRestart(w, step, [lease(1)], { leases: [lease(1, { epoch: 2 })] });
    expect(w.slurm.sbatches()).toHaveLength(1);
    const last = w.gateway.reports.filter((r) => r.jobId === jobId(1) && r.state === "submitted").at(-1);
    expect(last).toMatchObject({ epoch: 2, slurmJobId: String(w.slurm.queued[0]!.id) });
  });

  it("a re-lease (epoch 2) this agent never saw is looked up before sbatch: another agent's submission is adopted", async () => {
    const w = world();
    w.slurm.queued.push({ id: 555, comment: `slurmgate:${jobId(1)}:1`, tasks: null });
    w.gateway.pending.push({ leases: [lease(1, { epoch: 2 })] });
    await (await agentOn(w)).runOnce();
    expect(w.slurm.sbatches()).toHaveLength(0);
    expect(new Set(w.gateway.submittedAs(jobId(1)))).toEqual(new Set(["555"]));
  });
});

describe("a cancel arriving mid-submit", () => {
  it.each(STEPS)("crashed %s, then a cancel order: one sbatch, then scancel of that very job", async (step) => {
    const w = world();
    const cancel = { jobId: jobId(1), epoch: 1, slurmJobId: null };
    await crashThenRestart(w, step, [lease(1)], { cancels: [cancel] });
    // The gateway repeats the order until the job ends; the next cycle kills what the tag resolved.
    w.gateway.pending.push({ cancels: [cancel] });
    const third = await agentOn(w);
    await third.runOnce();
    expect(w.slurm.sbatches()).toHaveLength(1);
    const id = String(w.slurm.queued[0]!.id);
    expect(w.slurm.scancels().flat()).toContain(id);
    expect(third.ctx.state.get(jobId(1))).toMatchObject({ cancelRequested: true, slurmJobId: id });
    expect(w.gateway.reports.filter((r) => r.state === "cancelled")).toEqual([]);
  });
});

describe("sweep batches (one array per batch) across a crash", () => {
  const members = () => [0, 1, 2].map((i) => lease(i, {}, true));

  it.each(STEPS)("crashed %s: one array sbatch in all, every element told its <array>_<index>", async (step) => {
    const w = world();
    await crashThenRestart(w, step, members());
    expect(w.slurm.sbatches()).toHaveLength(1);
    const array = w.slurm.queued[0]!;
    expect(array.comment).toBe(`slurmgate:batch:${BATCH}`);
    expect(array.tasks).toEqual([0, 1, 2]);
    for (const i of [0, 1, 2]) {
      expect(w.gateway.submittedAs(jobId(i)).at(-1)).toBe(`${array.id}_${i}`);
    }
  });

  it("crashed after the array's sbatch, re-leased as epoch 2: adopted by the batch tag", async () => {
    const w = world();
    await crashThenRestart(w, "after-sbatch", members(), { leases: members().map((l) => ({ ...l, epoch: 2 })) });
    expect(w.slurm.sbatches()).toHaveLength(1);
    const array = w.slurm.queued[0]!;
    for (const i of [0, 1, 2]) {
      const last = w.gateway.reports.filter((r) => r.jobId === jobId(i) && r.state === "submitted").at(-1);
      expect(last).toMatchObject({ epoch: 2, slurmJobId: `${array.id}_${i}` });
    }
  });
});
