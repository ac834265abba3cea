/**
 * What the agent must remember across a crash: a JSON snapshot plus an append-only journal of
 * changes since it. Every change that matters for exactly-once submission is on disk before the
 * agent acts on it: "submitting" BEFORE sbatch runs and the Slurm job id right after it returns.
 *
 * Why a journal: rewriting the whole snapshot per change cost ~7 ms per submission with 500 jobs
 * tracked (the file grows with them), which capped submission at a quarter of a raw sbatch loop.
 * An append is one small write. The journal is folded into the snapshot (temp file + rename) when it
 * grows past a few times the number of jobs, and on every start; a torn last line (a crash mid-
 * append) is ignored, since what it described had not been acted on yet.
 *
 * The Slurm-id record is small: `{"submitted":{jobId,epoch,slurmJobId}}`, meaning "the
 * "submitting" record of this job under this epoch now has this Slurm id". The submitting record
 * before it carries the whole lease and spec (a restart needs them to finish the job); writing them
 * a second time right after sbatch was most of the journal's bytes per job. A small record whose
 * "submitting" record is missing (a corrupt line before it) or names another epoch is ignored like
 * any corrupt line: the gateway's next lease of that job has a newer epoch, so its tag is looked up
 * before anything is submitted again. Compaction still writes whole records.
 */
import { closeSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync, writeSync } from "node:fs";
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
  /** Array jobs: bytes of each task's stdout.<task>/stderr.<task> shipped so far, keyed `<stream>.<task>`. */
  taskLogOffsets?: Record<string, number>;
  cancelRequested: boolean;
  isArray: boolean;
  /** The array's index expression, to collect each task's result.<task>.json at the end. */
  arrayIndexes?: string | null;
  /** The time limit the spec asked for, to say "time limit 10m reached". */
  timeLimit?: string | null;
  /** The last reason reported for an array job (its tasks' progress), to report only changes. */
  reportedReason?: string | null;
  /** JobSpec.outputs: globs brought back from the job directory after the job ends. */
  outputs?: string[];
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
  /** Runs `fn` with its changes written to disk in one append at the end. */
  batch(fn: () => void): void;
};

type SlurmIdEntry = { jobId: string; epoch: number; slurmJobId: string };
type JournalEntry = { put: TrackedJob } | { submitted: SlurmIdEntry } | { remove: string } | { agentId: string };

function apply(state: AgentState, entry: JournalEntry): void {
  if ("put" in entry) {
    state.jobs[entry.put.jobId] = entry.put;
  } else if ("submitted" in entry) {
    const { jobId, epoch, slurmJobId } = entry.submitted;
    const base = state.jobs[jobId];
    if (base?.phase === "submitting" && base.epoch === epoch && typeof slurmJobId === "string" && slurmJobId) {
      state.jobs[jobId] = { ...base, phase: "submitted", slurmJobId };
    }
  } else if ("remove" in entry) {
    delete state.jobs[entry.remove];
  } else {
    state.agentId = entry.agentId;
  }
}

/**
 * The small Slurm-id record when `next` is `previous` with only its phase moved from submitting to
 * submitted and its Slurm id set (job-life.ts `submitted`); null when anything else changed too.
 */
function slurmIdOnly(previous: TrackedJob | undefined, next: TrackedJob): SlurmIdEntry | null {
  if (
    previous?.phase !== "submitting" ||
    next.phase !== "submitted" ||
    previous.slurmJobId !== null ||
    !next.slurmJobId
  ) {
    return null;
  }
  const keys = Object.keys(next);
  if (keys.length !== Object.keys(previous).length) {
    return null;
  }
  for (const key of keys as (keyof TrackedJob)[]) {
    if (key !== "phase" && key !== "slurmJobId" && previous[key] !== next[key]) {
      return null; // a shallow check: `submitted` keeps every other field as the same value
    }
  }
  return { jobId: next.jobId, epoch: next.epoch, slurmJobId: next.slurmJobId };
}

function readOrNull(path: string): string | null {
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") {
      return null;
    }
    throw new Error(`cannot read agent state ${path}: ${(err as Error).message}`);
  }
}

export function openStateStore(path: string): StateStore {
  const journal = `${path}.journal`;
  let state: AgentState = { version: 1, jobs: {} };
  const snapshot = readOrNull(path);
  if (snapshot) {
    const parsed = JSON.parse(snapshot) as AgentState;
    if (parsed.version === 1 && parsed.jobs) {
      state = parsed;
    }
  }
  for (const line of (readOrNull(journal) ?? "").split("\n")) {
    try {
      if (line) {
        apply(state, JSON.parse(line) as JournalEntry);
      }
    } catch {
      // A torn last line: the crash came before the agent acted on that change.
    }
  }
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  let entries = 0;
  let batching = 0;
  let pending: string[] = [];
  /** The journal stays open between appends: an open and a close per change cost more than the write. */
  let journalFd: number | null = null;
  /**
   * The journal is folded in once it holds more than a few changes per job tracked at the last
   * fold: each fold writes every job, so its cost stays a fraction of the appends since the one
   * before. (Counting the jobs at every append took more CPU than the append at a few thousand.)
   */
  let foldAfter = 0;

  const compact = () => {
    const tmp = `${path}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(state), { mode: 0o600 });
    renameSync(tmp, path);
    if (journalFd !== null) {
      closeSync(journalFd);
      journalFd = null;
    }
    rmSync(journal, { force: true });
    entries = 0;
    foldAfter = 64 + 4 * Object.keys(state.jobs).length;
  };
  const flush = () => {
    if (pending.length === 0) {
      return;
    }
    journalFd ??= openSync(journal, "a", 0o600);
    const bytes = Buffer.from(pending.join(""));
    for (let done = 0; done < bytes.length; ) {
      done += writeSync(journalFd, bytes, done);
    }
    entries += pending.length;
    pending = [];
    if (entries > foldAfter) {
      compact();
    }
  };
  /** `entry` changes the state in memory; `written` (the same change, maybe smaller) goes to disk. */
  const record = (entry: JournalEntry, written: JournalEntry = entry) => {
    apply(state, entry);
    pending.push(`${JSON.stringify(written)}\n`);
    if (batching === 0) {
      flush();
    }
  };
  compact();

  return {
    state,
    get: (id) => state.jobs[id],
    put(job) {
      const small = slurmIdOnly(state.jobs[job.jobId], job);
      record({ put: job }, small ? { submitted: small } : undefined);
    },
    remove(id) {
      if (state.jobs[id]) {
        record({ remove: id });
      }
    },
    all: () => Object.values(state.jobs),
    setAgentId: (id) => record({ agentId: id }),
    batch(fn) {
      batching++;
      try {
        fn();
      } finally {
        batching--;
        if (batching === 0) {
          flush();
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
