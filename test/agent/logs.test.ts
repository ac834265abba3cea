/**
 * What the agent ships of a job's logs: each chunk names its attempt; an array job's tasks are
 * shipped from their own stdout.<task>/stderr.<task>, within the per-job budget, resuming where the
 * last cycle stopped. Read from real files through the local executor.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AgentContext } from "../../agent/context.ts";
import { createLocalExecutor } from "../../agent/executor/local.ts";
import { collectLogs } from "../../agent/logs.ts";
import type { TrackedJob } from "../../agent/state.ts";
import { jobDirName } from "../../agent/paths.ts";

let dir = "";
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "sg-logs-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const ctx = (perJob: number) =>
  ({ executor: createLocalExecutor(), config: { SLURMGATE_LOG_BYTES_PER_JOB: perJob } }) as unknown as AgentContext;

const job = (extra: Partial<TrackedJob>): TrackedJob => ({
  jobId: "job_0123456789abcdefghij",
  epoch: 3,
  attempt: 1,
  owner: "alice",
  jobDir: dir,
  phase: "submitted",
  slurmJobId: "9",
  submittedAt: 0,
  reported: "running",
  missingSince: null,
  logOffsets: { stdout: 0, stderr: 0 },
  cancelRequested: false,
  isArray: false,
  ...extra,
});

const text = (data: string) => Buffer.from(data, "base64").toString("utf8");

describe("collectLogs", () => {
  it("names the attempt of every chunk", async () => {
    await writeFile(join(dir, "stdout"), "second attempt\n");
    const shipment = await collectLogs(ctx(1_024), job({ attempt: 2 }), 10_000);
    expect(shipment.chunks).toEqual([
      { stream: "stdout", offset: 0, data: Buffer.from("second attempt\n").toString("base64"), attempt: 2 },
    ]);
  });

  it("ships each array task's own files, within the budget, and resumes where it stopped", async () => {
    await writeFile(join(dir, "stdout.0"), "task 0\n");
    await writeFile(join(dir, "stdout.2"), "task 2 says a lot\n");
    await writeFile(join(dir, "stderr.2"), "task 2 warns\n");
    await writeFile(join(dir, "stdout.9"), "not in the array\n");
    const array = job({ isArray: true, arrayIndexes: "0-4:2" });
    const first = await collectLogs(ctx(1_024), array, 15);
    expect(first.drained).toBe(false);
    expect(first.chunks.map((c) => [c.stream, c.task, text(c.data)])).toEqual([
      ["stdout", 0, "task 0\n"],
      ["stdout", 2, "task 2 s"],
    ]);
    const second = await collectLogs(ctx(1_024), { ...array, taskLogOffsets: first.taskOffsets }, 10_000);
    expect(second.drained).toBe(true);
    expect(second.chunks.map((c) => [c.stream, c.task, c.offset, text(c.data)])).toEqual([
      ["stdout", 2, 8, "ays a lot\n"],
      ["stderr", 2, 0, "task 2 warns\n"],
    ]);
    expect(second.taskOffsets).toEqual({ "stdout.0": 7, "stdout.2": 18, "stderr.2": 13 });
    expect(second.chunks.every((c) => c.attempt === 1)).toBe(true);
  });
});

describe("jobDirName", () => {
  it("keeps attempt 1 where it always was and gives later attempts a name no job id can have", () => {
    expect(jobDirName("job_abc", 1)).toBe("job_abc");
    expect(jobDirName("job_abc", 2)).toBe("job_abc.attempt-2");
    expect(jobDirName("job_abc", 2)).not.toMatch(/^job_[0-9a-z]+$/);
  });
});
