/**
 * The tracking fold on realistic squeue / sacct outputs (the formats of SQUEUE_FORMAT and
 * SACCT_FIELDS as Slurm 22.05 prints them): an array is the fold of ALL its tasks, whatever subset
 * Slurm happens to list, and a terminal reason says how the job ended.
 */
import { describe, expect, it } from "vitest";
import type { AgentContext } from "../../agent/context.ts";
import { describeEnding, formatSeconds } from "../../agent/endings.ts";
import { parseSacct } from "../../agent/slurm/sacct.ts";
import { parseSqueue } from "../../agent/slurm/squeue.ts";
import type { TrackedJob } from "../../agent/state.ts";
import { observe, parseDisplayId, transitions } from "../../agent/track.ts";

const TAG = "slurmgate:job_01m8n8e6fbvrd68ry4y7s69d8b:1";
const T = "2026-11-30T03:37:06";

function squeueLine(id: string, raw: string, state: string, reason = "None") {
  const [array, task] = id.includes("_") ? id.split("_") : [raw, "N/A"];
  return `${id}|${raw}|${array}|${task}|${state}|${reason}|cpu|${T}|${TAG}`;
}
function sacctLine(id: string, raw: string, state: string, exit: string) {
  return `${id}|${raw}|${state}|${exit}|${T}|${T}|${T}|cpu|${TAG}`;
}

type World = { squeue: string | null; sacct: string | "disabled"; files?: Record<string, string> };

function ctxFor(world: World): AgentContext {
  return {
    accounting: true,
    now: () => Date.parse("2026-11-30T04:00:00Z"),
    log: () => {},
    config: { SLURMGATE_LOST_GRACE_SECONDS: 600 },
    slurm: {
      squeue: async () =>
        world.squeue === null
          ? { ok: false, retryable: true, code: "failed", message: "squeue failed: exit 1" }
          : { ok: true, value: parseSqueue(world.squeue) },
      sacct: async () =>
        world.sacct === "disabled"
          ? parseSacct({ code: 1, stdout: "", stderr: "sacct: error: Slurm accounting storage is disabled\n" })
          : parseSacct({ code: 0, stdout: world.sacct, stderr: "" }),
      scontrolAll: async () => ({ ok: true, value: [] }),
    },
    executor: {
      readFile: async (path: string, range: { offset?: number; length?: number } = {}) => {
        const text = world.files?.[path.split("/").pop()!];
        const offset = range.offset ?? 0;
        return text === undefined ? null : Buffer.from(text).subarray(offset, offset + (range.length ?? 1e9));
      },
      stat: async (path: string) => {
        const text = world.files?.[path.split("/").pop()!];
        return text === undefined
          ? null
          : { isFile: true, isDirectory: false, isSymbolicLink: false, size: Buffer.byteLength(text), mode: 0o600 };
      },
    },
  } as unknown as AgentContext;
}

function tracked(over: Partial<TrackedJob> = {}): TrackedJob {
  return {
    jobId: "job_01m8n8e6fbvrd68ry4y7s69d8b",
    epoch: 1,
    attempt: 1,
    owner: "alice",
    jobDir: "/shared/alice/job_01m8n8e6fbvrd68ry4y7s69d8b",
    phase: "submitted",
    slurmJobId: "5",
    submittedAt: Date.parse("2026-11-30T03:37:06Z"),
    reported: "running",
    missingSince: null,
    logOffsets: { stdout: 0, stderr: 0 },
    cancelRequested: false,
    isArray: true,
    arrayIndexes: "0-3",
    ...over,
  };
}

async function observeOne(world: World, job = tracked()) {
  return (await observe(ctxFor(world), [job])).get(job.jobId);
}

const lines = (...l: string[]) => `${l.join("\n")}\n`;

describe("an array job is the fold of all its tasks", () => {
  it("does not call a 4-task array completed while task 2 has no record yet (squeue and a lagging sacct show 3)", async () => {
    const squeue = lines(
      squeueLine("5_0", "6", "COMPLETED"),
      squeueLine("5_1", "7", "COMPLETED"),
      squeueLine("5_3", "5", "COMPLETED"),
    );
    const sacct = lines(
      sacctLine("5_0", "6", "COMPLETED", "0:0"),
      sacctLine("5_1", "7", "COMPLETED", "0:0"),
      sacctLine("5_3", "5", "COMPLETED", "0:0"),
    );
    expect(await observeOne({ squeue, sacct })).toBeUndefined();
  });

  it("ends a 4-task array whose task 2 exited 1 as failed, exit 1, with exact counts and per-task states", async () => {
    const squeue = lines(
      squeueLine("5_0", "6", "COMPLETED"),
      squeueLine("5_1", "7", "COMPLETED"),
      squeueLine("5_3", "5", "COMPLETED"),
    );
    const sacct = lines(
      sacctLine("5_0", "6", "COMPLETED", "0:0"),
      sacctLine("5_1", "7", "COMPLETED", "0:0"),
      sacctLine("5_2", "8", "FAILED", "1:0"),
      sacctLine("5_3", "5", "COMPLETED", "0:0"),
    );
    const obs = await observeOne({ squeue, sacct });
    expect(obs).toMatchObject({
      state: "failed",
      exitCode: 1,
      reason: "1 of 4 tasks failed (task 2 exited 1); 3 completed",
    });
    expect(obs?.tasks?.map((t) => [t.task, t.state, t.exitCode])).toEqual([
      [0, "completed", 0],
      [1, "completed", 0],
      [2, "failed", 1],
      [3, "completed", 0],
    ]);
  });

  it("takes a failed task from squeue when sacct lags (still RUNNING there), and its exit code from the exit file", async () => {
    const squeue = lines(
      squeueLine("5_0", "6", "COMPLETED"),
      squeueLine("5_1", "7", "COMPLETED"),
      squeueLine("5_2", "8", "FAILED", "NonZeroExitCode"),
      squeueLine("5_3", "5", "COMPLETED"),
    );
    const sacct = lines(
      sacctLine("5_0", "6", "COMPLETED", "0:0"),
      sacctLine("5_1", "7", "COMPLETED", "0:0"),
      sacctLine("5_2", "8", "RUNNING", "0:0"),
      sacctLine("5_3", "5", "RUNNING", "0:0"),
    );
    const obs = await observeOne({ squeue, sacct, files: { "exitcode.2": "1\n", "exitcode.3": "0\n" } });
    expect(obs).toMatchObject({ state: "failed", exitCode: 1 });
    expect(obs?.reason).not.toMatch(/NonZeroExitCode|Priority/);
  });

  it("counts a pending range `5_[2-5%2]` as four pending tasks of a 6-task array, not as one", async () => {
    const squeue = lines(
      squeueLine("5_0", "6", "RUNNING"),
      squeueLine("5_1", "7", "RUNNING"),
      `5_[2-5%2]|5|5|2-5%2|PENDING|JobArrayTaskLimit|cpu|${T}|${TAG}`,
    );
    const obs = await observeOne({ squeue, sacct: "" }, tracked({ arrayIndexes: "0-5" }));
    expect(obs).toMatchObject({ state: "running", reason: "2 of 6 tasks running; 4 pending" });
    expect(obs?.tasks).toHaveLength(6);
  });

  it("reports a 6-task array as 6 tasks when Slurm lists only 3 of them, and waits for the rest", async () => {
    const sacct = lines(
      sacctLine("5_0", "6", "COMPLETED", "0:0"),
      sacctLine("5_1", "7", "COMPLETED", "0:0"),
      sacctLine("5_2", "8", "COMPLETED", "0:0"),
    );
    expect(await observeOne({ squeue: "", sacct }, tracked({ arrayIndexes: "0-5" }))).toBeUndefined();
    const all = lines(
      sacct.trim(),
      sacctLine("5_3", "9", "COMPLETED", "0:0"),
      sacctLine("5_4", "10", "COMPLETED", "0:0"),
      sacctLine("5_5", "5", "COMPLETED", "0:0"),
    );
    expect(await observeOne({ squeue: "", sacct: all }, tracked({ arrayIndexes: "0-5" }))).toMatchObject({
      state: "completed",
      exitCode: 0,
      reason: "all 6 tasks completed",
    });
  });

  it("never keeps a queue reason once every task has ended (one row said Priority a moment ago)", async () => {
    const squeue = lines(
      squeueLine("5_0", "6", "COMPLETED"),
      squeueLine("5_1", "7", "COMPLETED"),
      squeueLine("5_2", "8", "COMPLETED"),
      `5_3|5|5|3|PENDING|Priority|cpu|${T}|${TAG}`,
    );
    const sacct = lines(
      sacctLine("5_0", "6", "COMPLETED", "0:0"),
      sacctLine("5_1", "7", "COMPLETED", "0:0"),
      sacctLine("5_2", "8", "COMPLETED", "0:0"),
      sacctLine("5_3", "5", "COMPLETED", "0:0"),
    );
    const obs = await observeOne({ squeue, sacct });
    expect(obs).toMatchObject({ state: "completed", reason: "all 4 tasks completed" });
  });

  it("keeps the queue's own reason while every task waits (DependencyNeverSatisfied still detectable)", async () => {
    const squeue = lines(`5_[0-3]|5|5|0-3|PENDING|DependencyNeverSatisfied|cpu|${T}|${TAG}`);
    expect(await observeOne({ squeue, sacct: "" })).toMatchObject({
      state: "pending",
      reason: "DependencyNeverSatisfied",
    });
  });

  it("lets the most severe ending decide: one timeout among failures and completions makes the job timeout", async () => {
    const sacct = lines(
      sacctLine("5_0", "6", "FAILED", "3:0"),
      sacctLine("5_1", "7", "TIMEOUT", "0:15"),
      sacctLine("5_2", "8", "COMPLETED", "0:0"),
      sacctLine("5_3", "5", "CANCELLED by 0", "0:15"),
    );
    const obs = await observeOne({ squeue: "", sacct }, tracked({ timeLimit: "10m" }));
    expect(obs?.state).toBe("timeout");
    expect(obs?.reason).toBe(
      "1 of 4 tasks timed out (task 1: time limit 10m reached); 1 failed (task 0 exited 3); 1 cancelled (task 3: cancelled in Slurm, not through slurmgate); 1 completed",
    );
  });

  it("keeps the job live while Slurm still runs a task beyond the indexes it expected", async () => {
    const squeue = lines(squeueLine("5_7", "9", "RUNNING"));
    const sacct = lines(
      sacctLine("5_0", "6", "COMPLETED", "0:0"),
      sacctLine("5_1", "7", "COMPLETED", "0:0"),
      sacctLine("5_2", "8", "COMPLETED", "0:0"),
      sacctLine("5_3", "5", "COMPLETED", "0:0"),
    );
    expect((await observeOne({ squeue, sacct }))?.state).toBe("running");
  });

  it("ignores rows of other jobs, other arrays sharing a prefix, unknown states and malformed ids", async () => {
    const squeue = lines(
      squeueLine("55_0", "55", "FAILED"),
      squeueLine("50_2", "50", "FAILED"),
      "5_2|8|5|2|WEIRDSTATE|None|cpu|x|y",
      "5_2;rm -rf /|8|5|2|FAILED|None|cpu|x|y",
      "garbage line without separators",
    );
    const sacct = lines(
      sacctLine("5_0", "6", "COMPLETED", "0:0"),
      sacctLine("5_1", "7", "COMPLETED", "0:0"),
      sacctLine("5_2", "8", "COMPLETED", "0:0"),
      sacctLine("5_3", "5", "COMPLETED", "0:0"),
      sacctLine("5_9", "12", "FAILED", "1:0"),
    );
    expect(await observeOne({ squeue, sacct })).toMatchObject({ state: "completed", exitCode: 0 });
  });

  it("uses the exit files as the third source when accounting is down and squeue forgot the tasks", async () => {
    const ctx = ctxFor({
      squeue: "",
      sacct: "disabled",
      files: { "exitcode.0": "0\n", "exitcode.1": "0\n", "exitcode.2": "1\n", "exitcode.3": "0\n" },
    });
    const obs = (await observe(ctx, [tracked()])).get(tracked().jobId);
    expect(obs).toMatchObject({
      state: "failed",
      exitCode: 1,
      reason: "1 of 4 tasks failed (task 2 exited 1); 3 completed",
    });
  });

  it("does not trust a corrupt exit file", async () => {
    const obs = await observeOne({
      squeue: "",
      sacct: "disabled",
      files: { "exitcode.0": "0\n", "exitcode.1": "0; echo\n", "exitcode.2": "-1", "exitcode.3": "" },
    });
    expect(obs).toBeUndefined();
  });

  it("sends the tasks with the report, and reports a running array again only when its tasks moved on", async () => {
    const ctx = ctxFor({ squeue: "", sacct: "" });
    const job = tracked({ reported: "running", reportedReason: "2 of 4 tasks running; 2 pending" });
    const same = new Map([
      [job.jobId, { state: "running" as const, reason: "2 of 4 tasks running; 2 pending", tasks: [] }],
    ]);
    expect(transitions(ctx, [job], same).reports).toEqual([]);
    const moved = new Map([
      [job.jobId, { state: "running" as const, reason: "1 of 4 tasks running; 3 completed", tasks: [] }],
    ]);
    const { reports, updates } = transitions(ctx, [job], moved);
    expect(reports[0]).toMatchObject({ state: "running", reason: "1 of 4 tasks running; 3 completed", tasks: [] });
    expect(updates[0]?.reportedReason).toBe("1 of 4 tasks running; 3 completed");
  });
});

describe("an array with a task that never shows up", () => {
  it("ends lost after the grace period, saying not every task has a record, never completed", async () => {
    const sacct = lines(
      sacctLine("5_0", "6", "COMPLETED", "0:0"),
      sacctLine("5_1", "7", "COMPLETED", "0:0"),
      sacctLine("5_3", "5", "COMPLETED", "0:0"),
    );
    const ctx = ctxFor({ squeue: "", sacct });
    const job = tracked({ missingSince: ctx.now() - 601_000 });
    const seen = await observe(ctx, [job]);
    const { reports } = transitions(ctx, [job], seen);
    expect(reports[0]).toMatchObject({ state: "lost", code: "job_vanished" });
    expect(reports[0]?.reason).toMatch(/^array 5: not every task of 0-3 has a record/);
  });
});

describe("a plain job's terminal reason says how it ended", () => {
  const plain = (over: Partial<TrackedJob> = {}) =>
    tracked({ slurmJobId: "11", isArray: false, arrayIndexes: null, reported: "pending", ...over });

  it("replaces the queue reason with the ending", async () => {
    const obs = await observeOne({ squeue: "", sacct: lines(sacctLine("11", "11", "FAILED", "3:0")) }, plain());
    expect(obs).toMatchObject({ state: "failed", exitCode: 3, reason: "exited 3" });
  });

  it("names the setup line that failed, from the wrapper's status file, only when it matches the exit code", async () => {
    const sacct = lines(sacctLine("11", "11", "FAILED", "127:0"));
    expect(await observeOne({ squeue: "", sacct, files: { "setup-status": "2 127\n" } }, plain())).toMatchObject({
      reason: "setup line 2 exited 127",
    });
    expect(await observeOne({ squeue: "", sacct, files: { "setup-status": "2 1\n" } }, plain())).toMatchObject({
      reason: "exited 127",
    });
    expect(await observeOne({ squeue: "", sacct, files: { "setup-status": "$(id) 127" } }, plain())).toMatchObject({
      reason: "exited 127",
    });
  });

  it("quotes the failed setup line's last stderr line, cut to one printable line", async () => {
    const sacct = lines(sacctLine("11", "11", "FAILED", "127:0"));
    const stderr = `${"x".repeat(5_000)}\nwarming up\nbash: line 1: module: command not found\x1b[31m\nslurmgate: setup line 2 failed with status 127\n`;
    const obs = await observeOne({ squeue: "", sacct, files: { "setup-status": "2 127\n", stderr } }, plain());
    expect(obs).toMatchObject({
      state: "failed",
      code: "setup_failed",
      reason: "setup line 2 exited 127: bash: line 1: module: command not found [31m",
    });
    const long = await observeOne(
      { squeue: "", sacct, files: { "setup-status": "2 127\n", stderr: `${"é".repeat(400)}\n` } },
      plain(),
    );
    expect(long?.reason?.length).toBeLessThanOrEqual("setup line 2 exited 127: ".length + 300);
  });

  it("takes the wrapper's own failure (exit 125) from its failure file, and nothing else from it", async () => {
    const sacct = (exit: string) => lines(sacctLine("11", "11", "FAILED", exit));
    const missing = "image_missing container image /shared/img/x.sif does not exist or cannot be read on n1\n";
    expect(await observeOne({ squeue: "", sacct: sacct("125:0"), files: { failure: missing } }, plain())).toEqual({
      state: "failed",
      exitCode: 125,
      signal: 0,
      code: "image_missing",
      reason: "container image /shared/img/x.sif does not exist or cannot be read on n1",
    });
    // The payload's own exit 3 is not the wrapper's failure; hostile or unknown contents are ignored.
    for (const [exit, failure] of [
      ["3:0", missing],
      ["125:0", "root_shell gimme\n"],
      ["125:0", "image_missing two\nlines\n"],
      ["125:0", "IMAGE missing\n"],
    ] as const) {
      const obs = await observeOne({ squeue: "", sacct: sacct(exit), files: { failure } }, plain());
      expect(obs?.reason, failure).toBe(`exited ${exit.split(":")[0]}`);
      expect(obs?.code, failure).toBe("exited_nonzero");
    }
  });

  it.each([
    ["OUT_OF_MEMORY", "0:125", {}, "killed: out of memory", "out_of_memory"],
    ["TIMEOUT", "0:15", { timeLimit: "10" }, "time limit 10m reached", "time_limit"],
    ["TIMEOUT", "0:15", { timeLimit: "1:30:00" }, "time limit 1h30m reached", "time_limit"],
    ["TIMEOUT", "0:15", {}, "time limit reached", "time_limit"],
    ["CANCELLED by 0", "0:15", { cancelRequested: true }, "cancelled by user", "cancelled_by_user"],
    ["CANCELLED by 0", "0:15", {}, "cancelled in Slurm, not through slurmgate", "cancelled_in_slurm"],
    ["NODE_FAIL", "0:0", {}, "a node it ran on failed", "node_fail"],
    ["PREEMPTED", "0:0", {}, "preempted by a higher-priority job", "preempted"],
    ["COMPLETED", "0:0", {}, "exited 0", undefined],
    ["FAILED", "0:9", {}, "killed by signal 9", "killed_by_signal"],
    ["FAILED", "137:0", {}, "exited 137 (killed by signal 9)", "killed_by_signal"],
    ["FAILED", "2:0", {}, "exited 2", "exited_nonzero"],
  ])("%s %s → %s (%s)", async (state, exit, over, reason, code) => {
    const obs = await observeOne({ squeue: "", sacct: lines(sacctLine("11", "11", state, exit)) }, plain(over));
    expect(obs?.reason).toBe(reason);
    expect(obs?.code).toBe(code);
  });
});

describe("wording", () => {
  it("formats durations compactly", () => {
    expect([formatSeconds(600), formatSeconds(5400), formatSeconds(172_800), formatSeconds(90)]).toEqual([
      "10m",
      "1h30m",
      "2d",
      "1m30s",
    ]);
  });
  it("reads a wrapper exit of 128+N as a signal", () => {
    expect(describeEnding({ state: "failed", exitCode: 137 })).toBe("exited 137 (killed by signal 9)");
  });
  it("parses Slurm's array ids", () => {
    expect(parseDisplayId("123_[2-5%2]")).toEqual({ base: "123", tasks: [2, 3, 4, 5] });
    expect(parseDisplayId("123_7")).toEqual({ base: "123", tasks: [7] });
    expect(parseDisplayId("123")).toEqual({ base: "123", tasks: null });
    expect(parseDisplayId("123_;id")).toBeUndefined();
  });
});

describe("a sweep element is a plain job whose record is one task of its batch's array", () => {
  const element = (id: string, over: Partial<TrackedJob> = {}) =>
    tracked({ slurmJobId: id, isArray: false, arrayIndexes: null, reported: "submitted", ...over });

  it("takes its state from its own task row, not from its neighbours'", async () => {
    const squeue = lines(
      squeueLine("5_0", "6", "RUNNING"),
      squeueLine("5_1", "7", "PENDING", "JobArrayTaskLimit"),
      squeueLine("5_2", "5", "RUNNING"),
    );
    expect(await observeOne({ squeue, sacct: "" }, element("5_1"))).toEqual({
      state: "pending",
      reason: "JobArrayTaskLimit",
    });
    expect(await observeOne({ squeue, sacct: "" }, element("5_2"))).toEqual({ state: "running", reason: undefined });
  });

  it("reads a pending range `5_[3-9%3]` as pending for every element it names, and for no other", async () => {
    const squeue = lines(squeueLine("5_0", "6", "RUNNING"), `5_[3-9%3]|5|5|3-9%3|PENDING|JobArrayTaskLimit|cpu|${T}|x`);
    expect(await observeOne({ squeue, sacct: "" }, element("5_7"))).toMatchObject({ state: "pending" });
    const ctx = ctxFor({ squeue, sacct: "" });
    // Element 1 is in no row: absent (and never completed), not pending.
    expect((await observe(ctx, [element("5_1")])).get(tracked().jobId)).toBeUndefined();
  });

  it("ends failed with its own exit code and reason when its task failed while the others completed", async () => {
    const sacct = lines(
      sacctLine("5_0", "6", "COMPLETED", "0:0"),
      sacctLine("5_1", "7", "FAILED", "3:0"),
      sacctLine("5_2", "5", "COMPLETED", "0:0"),
    );
    expect(await observeOne({ squeue: "", sacct }, element("5_1"))).toMatchObject({
      state: "failed",
      exitCode: 3,
      reason: "exited 3",
    });
    expect(await observeOne({ squeue: "", sacct }, element("5_2"))).toMatchObject({ state: "completed", exitCode: 0 });
  });

  it("asks sacct for the array once, by its id, however many elements are tracked", async () => {
    const asked: string[][] = [];
    const ctx = ctxFor({ squeue: "", sacct: lines(sacctLine("5_0", "6", "COMPLETED", "0:0")) });
    const sacct = ctx.slurm.sacct;
    ctx.slurm.sacct = async (q) => {
      asked.push([...(q.ids ?? [])]);
      return sacct(q);
    };
    const jobs = [0, 1, 2].map((i) => element(`5_${i}`, { jobId: `job_${i}1m8n8e6fbvrd68ry4y7s69d8b` }));
    await observe(ctx, [...jobs, element("12", { jobId: "job_91m8n8e6fbvrd68ry4y7s69d8b" })]);
    expect(asked).toEqual([["5", "12"]]);
  });

  it("is cancelled when its cancel was sent and Slurm then dropped it without a trace (a pending task cancelled alone)", async () => {
    const squeue = lines(squeueLine("5_0", "6", "PENDING", "BeginTime"));
    const obs = await observeOne({ squeue, sacct: "" }, element("5_1", { cancelRequested: true }));
    expect(obs).toEqual({
      state: "cancelled",
      reason: "cancelled by user before it started",
      code: "cancelled_by_user",
    });
  });

  it("is cancelled even while sacct still shows it in the array's pending range, once squeue lists the array without it", async () => {
    const squeue = lines(
      squeueLine("5_0", "6", "PENDING", "BeginTime"),
      squeueLine("5_2", "8", "PENDING", "BeginTime"),
    );
    const sacct = lines(`5_[0-2]|5|PENDING|0:0|${T}|Unknown|Unknown|cpu|x`);
    const obs = await observeOne({ squeue, sacct }, element("5_1", { cancelRequested: true }));
    expect(obs).toMatchObject({ state: "cancelled" });
    // While squeue does not know the array at all, sacct's range is still evidence.
    expect(await observeOne({ squeue: "", sacct }, element("5_1"))).toMatchObject({ state: "pending" });
  });

  it("stays unknown when absent without a cancel, or when squeue or the history could not answer", async () => {
    expect(await observeOne({ squeue: "", sacct: "" }, element("5_1"))).toBeUndefined();
    const failedSqueue = await observeOne({ squeue: null, sacct: "" }, element("5_1", { cancelRequested: true }));
    expect(failedSqueue?.state).toBe("submitted");
    const ctx = ctxFor({ squeue: "", sacct: "disabled" });
    ctx.slurm.scontrolAll = async () => ({ ok: false, retryable: true, code: "failed", message: "down" });
    const seen = await observe(ctx, [element("5_1", { cancelRequested: true })]);
    expect(seen.get(tracked().jobId)).toBeUndefined();
  });
});
