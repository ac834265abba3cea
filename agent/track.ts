/**
 * Tracking every submitted job in bulk: one squeue for all of them, one sacct for those that left
 * the queue (or scontrol when accounting is off), and the exit-code file the job wrapper writes as
 * a third source. A job absent from all three is unknown until the grace period ends, then `lost`;
 * it is never called completed without evidence.
 */
import { lost, observed, vanished } from "./job-life.ts";
import { type EndingCode, WRAPPER_CODES } from "../schemas/agent.ts";
import type { JobState, JobTask, TerminalState } from "../schemas/job.ts";
import { MAX_REPORTED_TASKS, isTerminal } from "../schemas/job.ts";
import { expandArrayIndexes } from "./array-indexes.ts";
import type { AgentContext } from "./context.ts";
import { type Ending, TASK_ENDING_WORDS, describeEnding, endingCode } from "./endings.ts";
import type { Report } from "./gateway-api.ts";
import type { TrackedJob } from "./state.ts";

export type Observation = {
  state: JobState;
  exitCode?: number;
  signal?: number;
  reason?: string;
  /** How a job that ran ended, when it did not complete (its task's, for an array). */
  code?: EndingCode;
  /** An array job's tasks, every expected index, in index order. */
  tasks?: JobTask[];
};

/** One record of a job or array task, from squeue (no exit code), or sacct / scontrol. */
export type Row = {
  /** As Slurm prints it: `123`, `123_4`, or a pending range `123_[5-9%2]`. */
  id: string;
  jobState: JobState | null;
  reason?: string | null;
  exitCode?: number | null;
  signal?: number | null;
};

/** What the job wrapper left in the job directory, per task (`-1` for a plain job). */
export type JobFiles = {
  exit: ReadonlyMap<number, number>;
  setup: ReadonlyMap<number, SetupFailure>;
  /** The wrapper's own failure file, read for failed tasks only. */
  wrapper?: ReadonlyMap<number, WrapperFailure>;
};
type SetupFailure = { line: number; status: number; stderrTail?: string };
type WrapperFailure = { code: EndingCode; message: string };
/** The status the job wrapper exits with when it fails itself (sg_fail in render/template.ts). */
const WRAPPER_FAILED_STATUS = 125;

/** The facts about a tracked job the fold needs besides Slurm's rows. */
export type FoldJob = Pick<TrackedJob, "slurmJobId" | "arrayIndexes" | "cancelRequested"> & {
  timeLimit?: string | null;
};

/** A plain job is one "task" under this key. */
const PLAIN = -1;
/**
 * Expected tasks beyond this are not expanded (Slurm's MaxArraySize defaults to 1001). A larger
 * array still never ends early: any live row of the array keeps the job live (see foldJob).
 */
const MAX_EXPECTED_TASKS = 100_000;

/**
 * The order in which an array's endings decide the job's state: the first present wins. An array
 * is `completed` only when every one of its tasks completed; any other ending outranks it.
 */
export const ARRAY_ENDING_PRECEDENCE: readonly TerminalState[] = [
  "out_of_memory",
  "timeout",
  "node_fail",
  "preempted",
  "failed",
  "cancelled",
  "lost",
  "rejected",
  "completed",
];

/**
 * Which job and which tasks a row speaks for.
 * @example
 * parseDisplayId("123_[2-5%2]") // => { base: "123", tasks: [2, 3, 4, 5] }
 * parseDisplayId("123") // => { base: "123", tasks: null }
 */
export function parseDisplayId(id: string): { base: string; tasks: number[] | null } | undefined {
  // squeue and sacct print a pending range as `123_[2-5%2]`; scontrol's ArrayTaskId as `2-5%2`.
  const m = /^(\d+)(?:_\[?([\d,:-]+)(?:%\d+)?\]?)?$/.exec(id.trim());
  if (!m) {
    return undefined;
  }
  const [, base = "", range] = m;
  return { base, tasks: range === undefined ? null : expandArrayIndexes(range, MAX_EXPECTED_TASKS) };
}

type ParsedRow = { row: Row; base: string; tasks: number[] | null };
const rowIndexes = new WeakMap<readonly Row[], Map<string, ParsedRow[]>>();

/**
 * The rows of one cycle by the job (or array) id they speak for, parsed once: every tracked job
 * looks up only its own rows, so a cycle costs O(jobs + rows), not O(jobs × rows).
 */
function rowsOf(rows: readonly Row[], base: string): ParsedRow[] {
  let index = rowIndexes.get(rows);
  if (!index) {
    index = new Map();
    for (const row of rows) {
      const parsed = parseDisplayId(row.id);
      if (parsed && row.jobState !== null) {
        index.set(parsed.base, [...(index.get(parsed.base) ?? []), { row, ...parsed }]);
      }
    }
    rowIndexes.set(rows, index);
  }
  return index.get(base) ?? [];
}

/**
 * A sweep element's Slurm id `<array job id>_<index>`: the element is a plain job whose one
 * record is task `index` of that array (its own row, or a pending range that names it).
 */
function elementOf(slurmJobId: string): { base: string; index: number } | undefined {
  const m = /^(\d+)_(\d+)$/.exec(slurmJobId);
  return m ? { base: m[1]!, index: Number(m[2]) } : undefined;
}

/** Rows of one job, by task (PLAIN for a plain job's own row). Rows of other jobs are ignored. */
function byTask(slurmJobId: string, isArray: boolean, rows: readonly Row[]): Map<number, Row> {
  const out = new Map<number, Row>();
  const element = isArray ? undefined : elementOf(slurmJobId);
  for (const parsed of rowsOf(rows, element?.base ?? slurmJobId)) {
    const row = parsed.row;
    if (element) {
      // Its own row is better evidence than a pending range that also names it.
      if (parsed.tasks?.includes(element.index) && (!out.has(PLAIN) || parsed.tasks.length === 1)) {
        out.set(PLAIN, row);
      }
      continue;
    }
    if (!isArray) {
      if (parsed.tasks === null) {
        out.set(PLAIN, row);
      }
      continue;
    }
    for (const task of parsed.tasks ?? []) {
      // A task's own row is better evidence than a pending range that also names it.
      if (!out.has(task) || parsed.tasks?.length === 1) {
        out.set(task, row);
      }
    }
  }
  return out;
}

type Settled = { state: JobState; exitCode?: number; signal?: number; queueReason?: string };

/**
 * One task's state from its evidence: a terminal Slurm record wins (sacct / scontrol before
 * squeue, for its exit code), then a live record (squeue before a lagging sacct), then the
 * wrapper's exit-code file. No evidence: undefined, never a guess.
 */
function settle(queue: Row | undefined, history: Row | undefined, exitFile: number | undefined): Settled | undefined {
  const terminal = [history, queue].filter((r): r is Row => Boolean(r?.jobState && isTerminal(r.jobState)));
  const first = terminal[0];
  if (first) {
    const coded = terminal.find((r) => r.exitCode !== null && r.exitCode !== undefined);
    return {
      state: first.jobState!,
      exitCode: coded?.exitCode ?? exitFile,
      signal: coded ? (coded.signal ?? undefined) : undefined,
    };
  }
  const live = queue ?? history;
  if (live) {
    return { state: live.jobState!, queueReason: live.reason ?? undefined };
  }
  if (exitFile !== undefined) {
    return { state: exitFile === 0 ? "completed" : "failed", exitCode: exitFile };
  }
  return undefined;
}

/** The tasks a job is made of: its array's indexes, or one PLAIN task. */
export function expectedTasks(job: Pick<TrackedJob, "arrayIndexes">): number[] {
  return job.arrayIndexes ? expandArrayIndexes(job.arrayIndexes, MAX_EXPECTED_TASKS) : [PLAIN];
}

/**
 * Which tasks still lack a terminal state with an exit code after squeue and sacct: their exit
 * files are worth reading.
 */
export function tasksWithoutExit(job: FoldJob, queue: readonly Row[], history: readonly Row[] | null): number[] {
  const isArray = Boolean(job.arrayIndexes);
  const q = byTask(job.slurmJobId!, isArray, queue);
  const h = byTask(job.slurmJobId!, isArray, history ?? []);
  return expectedTasks(job).filter((task) => {
    const s = settle(q.get(task), h.get(task), undefined);
    return !s || (isTerminal(s.state) && s.exitCode === undefined);
  });
}

/** True when squeue alone shows every task of the job still in the queue (no need for sacct). */
export function allLiveInQueue(job: FoldJob, queue: readonly Row[]): boolean {
  const q = byTask(job.slurmJobId!, Boolean(job.arrayIndexes), queue);
  return expectedTasks(job).every((task) => {
    const state = q.get(task)?.jobState;
    return state !== undefined && state !== null && !isTerminal(state);
  });
}

function endingOf(job: FoldJob, s: Settled, files: JobFiles, task: number): Ending {
  const setup = files.setup.get(task);
  const wrapper = files.wrapper?.get(task);
  return {
    state: s.state,
    exitCode: s.exitCode,
    signal: s.signal,
    // A status file is only evidence for the ending it describes (not a stale one).
    setup: s.state === "failed" && setup && setup.status === s.exitCode ? setup : null,
    wrapper: s.state === "failed" && s.exitCode === WRAPPER_FAILED_STATUS && wrapper ? wrapper : null,
    timeLimit: job.timeLimit,
    cancelledByUser: job.cancelRequested,
  };
}

function ending(job: FoldJob, s: Settled, files: JobFiles, task: number): { reason: string; code?: EndingCode } {
  const facts = endingOf(job, s, files, task);
  const code = endingCode(facts);
  return { reason: describeEnding(facts), ...(code ? { code } : {}) };
}

function taskNote(t: JobTask): string {
  return `task ${t.task} ${t.reason ?? t.state}`.replace(
    /^task (\d+) (killed|time|a node|preempted|cancelled)/,
    "task $1: $2",
  );
}

/** `1 of 4 tasks failed (task 2 exited 1); 3 completed` */
function arraySummary(tasks: JobTask[], lead: JobState): string {
  const groups = new Map<JobState, JobTask[]>();
  for (const t of tasks) {
    groups.set(t.state, [...(groups.get(t.state) ?? []), t]);
  }
  if (groups.size === 1 && lead === "completed") {
    return `all ${tasks.length} tasks completed`;
  }
  const order = [lead, ...[...groups.keys()].filter((s) => s !== lead && s !== "completed"), "completed"] as JobState[];
  const parts: string[] = [];
  for (const state of order) {
    const group = groups.get(state);
    if (!group) {
      continue;
    }
    const words = isTerminal(state) ? TASK_ENDING_WORDS[state] : state;
    const notes =
      isTerminal(state) && state !== "completed"
        ? ` (${group.slice(0, 3).map(taskNote).join(", ")}${group.length > 3 ? ", …" : ""})`
        : "";
    parts.push(`${group.length}${parts.length === 0 ? ` of ${tasks.length} tasks` : ""} ${words}${notes}`);
  }
  return parts.join("; ");
}

/**
 * One job's observation from every source. A plain job is its own row; an array job is the fold
 * of ALL the tasks its indexes name, not just those Slurm happens to list: while any task is in
 * the queue the job is live; once every task has a terminal record the job ends the way the first
 * ending in {@link ARRAY_ENDING_PRECEDENCE} says; a task with no evidence at all leaves the job
 * without an observation (absent: after the grace period it becomes `lost`, never `completed`).
 */
export function foldJob(
  job: FoldJob,
  queue: readonly Row[],
  history: readonly Row[] | null,
  files: JobFiles = { exit: new Map(), setup: new Map() },
): Observation | undefined {
  const isArray = Boolean(job.arrayIndexes);
  const q = byTask(job.slurmJobId!, isArray, queue);
  const h = byTask(job.slurmJobId!, isArray, history ?? []);
  const element = isArray ? undefined : elementOf(job.slurmJobId!);
  if (element && !q.has(PLAIN) && rowsOf(queue, element.base).length > 0) {
    // squeue lists the element's array but not the element: the controller no longer has it, so a
    // live record in sacct (a pending range slurmdbd has not updated yet) is stale, not evidence.
    const lagging = h.get(PLAIN)?.jobState;
    if (lagging && !isTerminal(lagging)) {
      h.delete(PLAIN);
    }
  }
  const expected = expectedTasks(job);
  const settled: { task: number; s: Settled | undefined }[] = expected.map((task) => ({
    task,
    s: settle(q.get(task), h.get(task), files.exit.get(task)),
  }));
  if (!isArray) {
    const s = settled[0]?.s;
    if (!s) {
      return undefined;
    }
    return isTerminal(s.state)
      ? { state: s.state, exitCode: s.exitCode, signal: s.signal, ...ending(job, s, files, PLAIN) }
      : { state: s.state, reason: s.queueReason };
  }
  if (settled.every((t) => !t.s)) {
    return undefined;
  }
  const tasks: JobTask[] = settled.map(({ task, s }) => ({
    task,
    state: s?.state ?? "submitted",
    exitCode: s?.exitCode ?? null,
    signal: s?.signal ?? null,
    reason: !s
      ? "no record yet in squeue, sacct or its exit file"
      : isTerminal(s.state)
        ? ending(job, s, files, task).reason
        : (s.queueReason ?? null),
  }));
  const reported = tasks.slice(0, MAX_REPORTED_TASKS);
  const live = settled.filter((t) => t.s && !isTerminal(t.s.state));
  // A task beyond the expanded indexes that Slurm still runs also keeps the job live.
  const known = new Set(expected);
  const beyond = queue.filter((row) => {
    const parsed = parseDisplayId(row.id);
    return (
      parsed?.base === job.slurmJobId &&
      row.jobState !== null &&
      !isTerminal(row.jobState) &&
      !(parsed.tasks ?? []).every((t) => known.has(t))
    );
  });
  if (live.length > 0 || beyond.length > 0) {
    const running = [...live.map((t) => t.s?.state), ...beyond.map((r) => r.jobState)].includes("running");
    const allPending = !running && live.length === settled.length;
    return {
      state: running ? "running" : "pending",
      // While every task waits, the queue's own reason (Priority, DependencyNeverSatisfied) is the job's.
      reason: allPending ? live[0]?.s?.queueReason : arraySummary(tasks, running ? "running" : "pending"),
      tasks: reported,
    };
  }
  if (settled.some((t) => !t.s)) {
    return undefined;
  }
  const lead = ARRAY_ENDING_PRECEDENCE.find((state) => tasks.some((t) => t.state === state)) ?? "failed";
  const decisive = tasks.find((t) => t.state === lead && (t.exitCode !== null || t.signal !== null));
  const leadTask = decisive ?? tasks.find((t) => t.state === lead);
  const leadSettled = settled.find((t) => t.task === leadTask?.task)?.s;
  const code = leadTask && leadSettled ? ending(job, leadSettled, files, leadTask.task).code : undefined;
  return {
    state: lead,
    exitCode: decisive?.exitCode ?? undefined,
    signal: decisive?.signal ?? undefined,
    reason: arraySummary(tasks, lead),
    ...(code ? { code } : {}),
    tasks: reported,
  };
}

async function readNumbers(ctx: AgentContext, path: string): Promise<number[] | undefined> {
  const data = await ctx.executor.readFile(path, { length: 64 });
  const text = data?.toString("utf8").trim() ?? "";
  return /^\d{1,9}( \d{1,9})*$/.test(text) ? text.split(" ").map(Number) : undefined;
}

const STDERR_TAIL_BYTES = 2_048;
const STDERR_LINE_CHARS = 300;

/**
 * The last line a failed setup line wrote to stderr (the wrapper's own note after it skipped), as
 * one printable line; undefined when there is none. Reads only the file's last 2 KiB.
 */
async function stderrTail(ctx: AgentContext, path: string): Promise<string | undefined> {
  const st = await ctx.executor.stat(path);
  if (!st?.isFile || st.size === 0) {
    return undefined;
  }
  const offset = Math.max(0, st.size - STDERR_TAIL_BYTES);
  const data = await ctx.executor.readFile(path, { offset, length: STDERR_TAIL_BYTES });
  const lines = (data?.toString("utf8") ?? "")
    .split("\n")
    .slice(offset > 0 ? 1 : 0) // the first line of a tail may be cut
    .map((line) => line.replace(/\p{Cc}/gu, " ").trim())
    .filter((line) => line !== "" && !line.startsWith("slurmgate: setup line "));
  const last = lines.at(-1);
  return last === undefined ? undefined : last.slice(0, STDERR_LINE_CHARS);
}

/** The wrapper's failure file: `<code> <message>`, one line, a code it may write. */
async function readWrapperFailure(ctx: AgentContext, path: string): Promise<WrapperFailure | undefined> {
  const text = (await ctx.executor.readFile(path, { length: 1_024 }))?.toString("utf8") ?? "";
  const match = /^([a-z_]{1,40}) ([^\n]{1,900})\n?$/.exec(text);
  const code = match?.[1] as (typeof WRAPPER_CODES)[number] | undefined;
  if (!match || !code || !WRAPPER_CODES.includes(code)) {
    return undefined;
  }
  return { code, message: match[2]!.replace(/\p{Cc}/gu, " ").slice(0, STDERR_LINE_CHARS) };
}

/** The wrapper's exit-code files, and for failed tasks its setup-status and failure files. */
async function readJobFiles(ctx: AgentContext, job: TrackedJob, tasks: number[], failed: number[]): Promise<JobFiles> {
  const exit = new Map<number, number>();
  const setup = new Map<number, SetupFailure>();
  const wrapper = new Map<number, WrapperFailure>();
  const suffix = (task: number) => (task === PLAIN ? "" : `.${task}`);
  for (const task of tasks) {
    const [code] = (await readNumbers(ctx, `${job.jobDir}/exitcode${suffix(task)}`)) ?? [];
    if (code !== undefined) {
      exit.set(task, code);
    }
  }
  for (const task of failed) {
    const numbers = await readNumbers(ctx, `${job.jobDir}/setup-status${suffix(task)}`);
    if (numbers?.length === 2) {
      const tail = await stderrTail(ctx, `${job.jobDir}/stderr${suffix(task)}`);
      setup.set(task, { line: numbers[0]!, status: numbers[1]!, ...(tail ? { stderrTail: tail } : {}) });
      continue;
    }
    const failure = await readWrapperFailure(ctx, `${job.jobDir}/failure${suffix(task)}`);
    if (failure) {
      wrapper.set(task, failure);
    }
  }
  return { exit, setup, wrapper };
}

/** Observes every submitted job; returns jobId → observation (absent = no evidence this cycle). */
export async function observe(ctx: AgentContext, jobs: TrackedJob[]): Promise<Map<string, Observation>> {
  const seen = new Map<string, Observation>();
  if (jobs.length === 0) {
    return seen;
  }
  const queue = await ctx.slurm.squeue();
  const queueRows: Row[] = (queue.ok ? queue.value : []).map((r) => ({
    id: r.slurmJobId,
    jobState: r.jobState,
    reason: r.reason,
  }));
  const needHistory: TrackedJob[] = [];
  for (const job of jobs) {
    if (allLiveInQueue(job, queueRows)) {
      const folded = foldJob(job, queueRows, null);
      if (folded) {
        seen.set(job.jobId, folded);
      }
    } else {
      needHistory.push(job);
    }
  }
  if (needHistory.length > 0) {
    const history = await historyRows(ctx, needHistory);
    for (const job of needHistory) {
      const files = await readJobFiles(ctx, job, tasksWithoutExit(job, queueRows, history), []);
      let folded = foldJob(job, queueRows, history, files);
      const failed = folded?.tasks
        ? folded.tasks.filter((t) => t.state === "failed").map((t) => t.task)
        : folded?.state === "failed"
          ? [PLAIN]
          : [];
      if (failed.length > 0) {
        // Which setup line failed, if that is how it failed: read only for failed tasks.
        const { setup, wrapper } = await readJobFiles(ctx, job, [], failed);
        folded = foldJob(job, queueRows, history, { exit: files.exit, setup, wrapper });
      }
      folded ??= queue.ok && history !== null ? cancelledWhilePending(job) : undefined;
      if (folded) {
        seen.set(job.jobId, folded);
      }
    }
  }
  if (!queue.ok) {
    // squeue failed: nothing may be concluded from absence this cycle.
    for (const job of jobs) {
      if (!seen.has(job.jobId)) {
        seen.set(job.jobId, { state: job.reported ?? "submitted", reason: "squeue failed; state unchanged" });
      }
    }
  }
  return seen;
}

/**
 * Slurm (22.05) drops a pending array task that is cancelled on its own (`scancel 123_4`) without
 * a trace: no squeue row, no sacct record, no exit file. A sweep element whose cancel this agent
 * sent and that is absent from every source, while squeue and the history both answered, was
 * cancelled before it started; anything else absent stays unknown (and becomes `lost` only later).
 */
function cancelledWhilePending(job: TrackedJob): Observation | undefined {
  if (!job.cancelRequested || job.isArray || !elementOf(job.slurmJobId ?? "")) {
    return undefined;
  }
  const { reason, code } = ending(job, { state: "cancelled" }, { exit: new Map(), setup: new Map() }, PLAIN);
  return { state: "cancelled", reason: `${reason} before it started`, ...(code ? { code } : {}) };
}

async function historyRows(ctx: AgentContext, jobs: TrackedJob[]): Promise<Row[] | null> {
  // A sweep element is asked for by its array's id: one id brings every element of the array.
  const ids = [...new Set(jobs.map((j) => elementOf(j.slurmJobId!)?.base ?? j.slurmJobId!))];
  if (ctx.accounting) {
    const since = new Date(Math.min(...jobs.map((j) => j.submittedAt)) - 3_600_000);
    const acct = await ctx.slurm.sacct({ since, ids });
    if (acct.ok) {
      return acct.value.map((r) => ({
        id: r.slurmJobId,
        jobState: r.jobState,
        exitCode: r.exitCode,
        signal: r.signal,
      }));
    }
    ctx.log("warn", "sacct failed; falling back to scontrol", { message: acct.message });
  }
  const all = await ctx.slurm.scontrolAll();
  return all.ok
    ? all.value.map((r) => ({
        id: r.slurmJobId,
        jobState: r.jobState,
        exitCode: r.exitCode,
        signal: r.signal,
        reason: r.reason,
      }))
    : null;
}

/**
 * Slurm keeps a job whose dependency can never be satisfied pending forever (unless the site sets
 * kill_invalid_depend). Such a job is refused for the user, with Slurm's reason, and removed.
 */
export function neverRuns(seen: Map<string, Observation>): Map<string, Observation> {
  const doomed = new Map<string, Observation>();
  for (const [jobId, obs] of seen) {
    if (obs.state === "pending" && obs.reason === "DependencyNeverSatisfied") {
      doomed.set(jobId, {
        state: "rejected",
        reason: "Slurm: DependencyNeverSatisfied (a job it depends on ended the wrong way)",
      });
    }
  }
  return doomed;
}

/**
 * Turns observations into reports and the local-state updates to apply once they are accepted.
 */
export function transitions(ctx: AgentContext, jobs: TrackedJob[], seen: Map<string, Observation>) {
  const now = ctx.now();
  const reports: Report[] = [];
  const updates: TrackedJob[] = [];
  for (const job of jobs) {
    const obs = seen.get(job.jobId);
    if (!obs) {
      const missingSince = job.missingSince ?? now;
      if (now - missingSince >= ctx.config.SLURMGATE_LOST_GRACE_SECONDS * 1000) {
        reports.push({
          jobId: job.jobId,
          epoch: job.epoch,
          state: "lost",
          code: "job_vanished",
          reason: job.arrayIndexes
            ? `array ${job.slurmJobId}: not every task of ${job.arrayIndexes} has a record in squeue, sacct or its exit file since ${new Date(missingSince).toISOString()}`
            : `Slurm job ${job.slurmJobId} is in neither squeue, sacct nor its exit file since ${new Date(missingSince).toISOString()}`,
          logs: [],
        });
        updates.push(lost(job, now));
        ctx.log("error", "job lost", { jobId: job.jobId, slurmJobId: job.slurmJobId });
      } else if (job.missingSince === null) {
        updates.push(vanished(job, now));
      }
      continue;
    }
    // An array's tasks move on while the job stays `running`: their progress is news too.
    const progressed = obs.tasks !== undefined && (obs.reason ?? null) !== (job.reportedReason ?? null);
    if (obs.state === job.reported && job.missingSince === null && !progressed) {
      continue;
    }
    const base = observed(job, obs.state, obs.reason ?? null);
    if (obs.state === job.reported && !progressed) {
      updates.push(base);
      continue;
    }
    reports.push({
      jobId: job.jobId,
      epoch: job.epoch,
      state: obs.state,
      ...(obs.state === "rejected" ? { code: "slurm_dependency" as const } : obs.code ? { code: obs.code } : {}),
      slurmJobId: job.slurmJobId ?? undefined,
      exitCode: obs.exitCode,
      signal: obs.signal,
      reason: obs.reason,
      ...(obs.tasks ? { tasks: obs.tasks } : {}),
      logs: [],
    });
    updates.push(base);
  }
  return { reports, updates };
}
