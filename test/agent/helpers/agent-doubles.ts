/**
 * Test doubles for driving real agent cycles in milliseconds: Slurm as the captured outputs in
 * test/fixtures/slurm show it (sbatch prints an id, squeue lists what was queued, with its tag),
 * an in-memory gateway that hands out the leases it is given and records every report, and an
 * agent on both (files are real, in a temp directory).
 */
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { type AgentHandle, createAgent } from "../../../agent/agent.ts";
import { expandArrayIndexes } from "../../../agent/array-indexes.ts";
import { parseAgentConfig } from "../../../agent/config.ts";
import type { CrashStep } from "../../../agent/context.ts";
import { createLocalExecutor } from "../../../agent/executor/local.ts";
import type { ExecResult, Executor } from "../../../agent/executor/types.ts";
import type { GatewayApi, Lease, LeaseResponse, Report } from "../../../agent/gateway-api.ts";
import { JobSpec } from "../../../schemas/job.ts";
import { fixture } from "./fixtures.ts";

export const BATCH = "bat_0123456789abcdefghij";
export const jobId = (i: number) => `job_${String(i).padStart(4, "0")}0123456789abcdef`;

export function lease(i: number, over: Partial<Lease> = {}, batch = false): Lease {
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
export function fakeSlurm() {
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
export function gatewayDouble() {
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

export type World = { dir: string; slurm: ReturnType<typeof fakeSlurm>; gateway: ReturnType<typeof gatewayDouble> };

export function world(): World {
  return { dir: mkdtempSync(join(tmpdir(), "sg-crash-")), slurm: fakeSlurm(), gateway: gatewayDouble() };
}

/** An agent on the world's Slurm and gateway; `crashAt` makes that crash point throw. */
export async function agentOn(
  w: World,
  crashAt?: CrashStep,
  extraEnv: Record<string, string> = {},
): Promise<AgentHandle> {
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
    ...extraEnv,
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
  return agent;
}
