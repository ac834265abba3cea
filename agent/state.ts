/**
 * What the agent must remember across a crash, in one small JSON file written atomically
 * (temp file + rename) after every change that matters for exactly-once submission:
 * "submitting" is recorded BEFORE sbatch runs and the Slurm job id right after it returns.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import type { JobState } from "../schemas/job.ts";
import type { Lease } from "./gateway-api.ts";

export type TrackedJob = {
  jobId: string;
  epoch: number;
  attempt: number;
  owner: string;
  jobDir: string;
  /** submitting: sbatch may or may not have queued it; submitted: we know the Slurm job id. */
  phase: "submitting" | "submitted";
  slurmJobId: string | null;
  submittedAt: number;
  /** The last state we reported to the gateway. */
  reported: JobState | null;
  /** When the job was first missing from squeue, sacct and its exit file. */
  missingSince: number | null;
  logOffsets: { stdout: number; stderr: number };
  cancelRequested: boolean;
  isArray: boolean;
  /** Kept while the outcome of sbatch is unknown, so a restarted agent can finish the job. */
  lease?: Lease;
};

export type AgentState = { version: 1; agentId?: string; jobs: Record<string, TrackedJob> };

export type StateStore = {
  readonly state: AgentState;
  get(jobId: string): TrackedJob | undefined;
  put(job: TrackedJob): void;
  remove(jobId: string): void;
  all(): TrackedJob[];
  setAgentId(id: string): void;
  /** Runs `fn` with saves deferred: the file is rewritten once at the end, not once per put/remove. */
  batch(fn: () => void): void;
};

export function openStateStore(path: string): StateStore {
  let state: AgentState = { version: 1, jobs: {} };
  try {
    const parsed = JSON.parse(readFileSync(path, "utf8")) as AgentState;
    if (parsed.version === 1 && parsed.jobs) {
      state = parsed;
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") {
      throw new Error(`cannot read agent state ${path}: ${(err as Error).message}`);
    }
  }
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  let batching = 0;
  let dirty = false;
  const save = () => {
    if (batching > 0) {
      dirty = true;
      return;
    }
    const tmp = `${path}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(state), { mode: 0o600 });
    renameSync(tmp, path);
  };
  return {
    state,
    get: (id) => state.jobs[id],
    put(job) {
      state.jobs[job.jobId] = job;
      save();
    },
    remove(id) {
      if (state.jobs[id]) {
        delete state.jobs[id];
        save();
      }
    },
    all: () => Object.values(state.jobs),
    setAgentId(id) {
      state.agentId = id;
      save();
    },
    batch(fn) {
      batching++;
      try {
        fn();
      } finally {
        batching--;
        if (batching === 0 && dirty) {
          dirty = false;
          save();
        }
      }
    },
  };
}

/** An in-memory store for tests and `--dry-run`. */
export function memoryStateStore(): StateStore {
  const state: AgentState = { version: 1, jobs: {} };
  return {
    state,
    get: (id) => state.jobs[id],
    put: (job) => {
      state.jobs[job.jobId] = job;
    },
    remove: (id) => {
      delete state.jobs[id];
    },
    all: () => Object.values(state.jobs),
    setAgentId: (id) => {
      state.agentId = id;
    },
    batch: (fn) => fn(),
  };
}
