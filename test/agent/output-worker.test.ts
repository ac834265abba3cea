/**
 * Outputs upload beside the tracking cycle: while one job's large output is still uploading, the
 * end of another job on the same cluster is reported at once; the uploading job's end is held back
 * (never reported before its outputs are in) and reported on a later cycle once they are; its
 * upload is never started twice. Tracking runs for real (track.ts, logs, state file, local files);
 * Slurm answers as sacct does for ended jobs, and the upload is held open by a gate.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { parseAgentConfig } from "../../agent/config.ts";
import type { AgentContext } from "../../agent/context.ts";
import type { CycleStats } from "../../agent/cycle.ts";
import { track } from "../../agent/cycle-track.ts";
import { createLocalExecutor } from "../../agent/executor/local.ts";
import type { OutputUpload, Report } from "../../agent/gateway-api.ts";
import { outputsSettled } from "../../agent/output-worker.ts";
import { createPacer } from "../../agent/pacer.ts";
import { type TrackedJob, openStateStore } from "../../agent/state.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) {
    rmSync(dir, { recursive: true, force: true });
  }
});

const stats = (): CycleStats => ({
  leased: 0,
  submitted: 0,
  cancelled: 0,
  reported: 0,
  tracked: 0,
  errors: [],
  gatewayReachable: true,
  cycleMs: 0,
});

function world() {
  const root = mkdtempSync(join(tmpdir(), "sg-output-worker-"));
  dirs.push(root);
  const config = parseAgentConfig({
    SLURMGATE_URL: "http://gw",
    SLURMGATE_AGENT_TOKEN: `sga_${"a".repeat(43)}`,
    SLURMGATE_CLUSTER: "alpha",
    SLURMGATE_SHARED_ROOTS: root,
  });
  const state = openStateStore(join(root, "state.json"));
  const job = (n: number, outputs?: string[]): TrackedJob => {
    const jobId = `job_${String(n).repeat(26)}`;
    const jobDir = join(root, "alice", jobId);
    mkdirSync(join(jobDir, "model"), { recursive: true });
    writeFileSync(join(jobDir, "model", "final.pt"), Buffer.alloc(3 * 1024 * 1024, n));
    return {
      jobId,
      epoch: 1,
      attempt: 1,
      owner: "alice",
      jobDir,
      phase: "submitted",
      slurmJobId: String(100 + n),
      submittedAt: Date.now() - 60_000,
      reported: "running",
      missingSince: null,
      logOffsets: { stdout: 0, stderr: 0 },
      cancelRequested: false,
      isArray: false,
      ...(outputs ? { outputs } : {}),
    };
  };
  const ended = (id: string) => ({
    slurmJobId: id,
    rawJobId: id,
    state: "COMPLETED",
    jobState: "completed",
    exitCode: 0,
    signal: 0,
    submitTime: null,
    startTime: null,
    endTime: null,
  });
  let release = () => {};
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  const uploads: { path: string; bytes: number }[] = [];
  let started = 0;
  const sent: Report[] = [];
  const ctx = {
    config,
    agentId: "agent-1",
    executor: createLocalExecutor({ spawners: 0 }),
    state,
    log: () => {},
    now: () => Date.now(),
    accounting: true,
    partitions: [],
    slurm: {
      squeue: async () => ({ ok: true, value: [] }),
      sacct: async (q: { ids?: string[] }) => ({ ok: true, value: (q.ids ?? []).map(ended) }),
    },
    api: {
      uploadOutput: async (upload: OutputUpload) => {
        started++;
        await gate;
        let bytes = 0;
        for await (const chunk of upload.body) {
          bytes += chunk.length;
        }
        upload.sha256();
        uploads.push({ path: upload.path, bytes });
        return { ok: true, value: null };
      },
    },
  } as unknown as AgentContext;
  const reporter = {
    send: async (batch: Report[]) => {
      sent.push(...structuredClone(batch));
      return true;
    },
  };
  const pacer = createPacer(ctx, async () => {});
  const cycle = (waitForOutputs = false) =>
    Promise.race([
      track(ctx, reporter, pacer, stats(), { waitForOutputs }).then(() => "tracked"),
      new Promise((resolve) => setTimeout(() => resolve("held up"), 10_000)),
    ]);
  const ends = (jobId: string) => sent.filter((r) => r.jobId === jobId && r.state === "completed");
  return { ctx, state, job, release, uploads, sent, cycle, ends, started: () => started };
}

describe("outputs upload beside the tracking cycle", () => {
  it("another job's end is reported while a large output still uploads; that job's end comes once it is in", async () => {
    const w = world();
    const big = w.job(1, ["model/*"]);
    const plain = w.job(2);
    w.state.put(big);
    w.state.put(plain);

    expect(await w.cycle()).toBe("tracked");
    expect(w.ends(plain.jobId)).toHaveLength(1);
    expect(w.ends(big.jobId)).toHaveLength(0);
    expect(w.state.get(plain.jobId)).toBeUndefined();
    expect(w.state.get(big.jobId)?.reported).toBe("running");

    // Another cycle while the upload still runs: still held back, and the upload is not started again.
    expect(await w.cycle()).toBe("tracked");
    expect(w.ends(big.jobId)).toHaveLength(0);
    expect(w.started()).toBe(1);

    w.release();
    await outputsSettled(w.ctx);
    expect(w.uploads).toEqual([{ path: "model/final.pt", bytes: 3 * 1024 * 1024 }]);
    expect(await w.cycle()).toBe("tracked");
    expect(w.ends(big.jobId)).toHaveLength(1);
    expect(w.ends(plain.jobId)).toHaveLength(1);
    expect(w.state.get(big.jobId)).toBeUndefined();
    expect(w.started()).toBe(1);
  });

  it("a one-shot agent waits for the uploads within its cycle and reports the end in it", async () => {
    const w = world();
    const big = w.job(3, ["model/*"]);
    w.state.put(big);
    const cycle = w.cycle(true);
    await new Promise((resolve) => setTimeout(resolve, 200));
    w.release();
    expect(await cycle).toBe("tracked");
    expect(w.ends(big.jobId)).toHaveLength(1);
    expect(w.uploads).toHaveLength(1);
  });
});
