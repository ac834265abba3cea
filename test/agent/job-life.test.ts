/**
 * The tracked job's life on the agent: every named transition, as a table, including the ones it
 * refuses (a second Slurm id for one attempt, a final state changed, an older lease adopted).
 */
import { describe, expect, it } from "vitest";
import {
  RefusedTransition,
  adopted,
  beganSubmitting,
  cancelAsked,
  leaseOf,
  logsShipped,
  lost,
  observed,
  reported,
  submissionReported,
  submitted,
  vanished,
} from "../../agent/job-life.ts";
import type { TrackedJob } from "../../agent/state.ts";
import type { Lease } from "../../schemas/agent.ts";
import { JobSpec } from "../../schemas/job.ts";

const JOB = "job_00000123456789abcdef";

function lease(over: Partial<Lease> = {}): Lease {
  return {
    jobId: JOB,
    epoch: 1,
    attempt: 1,
    owner: "alice",
    expiresAt: "2026-11-30T12:00:00Z",
    spec: JobSpec.parse({ name: "t", command: ["true"], resources: { time: "10m" } }),
    slurmJobId: null,
    dependsOnSlurmIds: [],
    batch: null,
    ...over,
  };
}

const fresh = beganSubmitting(lease(), "/shared/alice/d", 1000);
const running: TrackedJob = { ...submitted(fresh, "42"), reported: "running", lease: undefined };

describe("job life: allowed transitions", () => {
  const cases: [string, () => TrackedJob, Partial<TrackedJob>][] = [
    [
      "beganSubmitting records the lease, no Slurm id, before sbatch",
      () => fresh,
      { phase: "submitting", slurmJobId: null, submittedAt: 1000, reported: null, timeLimit: "10m", isArray: false },
    ],
    [
      "submitted(id) gives the attempt its Slurm id",
      () => submitted(fresh, "42"),
      { phase: "submitted", slurmJobId: "42" },
    ],
    [
      "submitted with the same id again is idempotent",
      () => submitted(submitted(fresh, "42"), "42"),
      { slurmJobId: "42" },
    ],
    [
      "adopted without a record starts one, submitted",
      () => adopted(undefined, lease({ epoch: 3 }), "/d3", 5, "77"),
      { phase: "submitted", slurmJobId: "77", epoch: 3, jobDir: "/d3", submittedAt: 5, reported: null },
    ],
    [
      "adopted keeps this attempt's record (its directory) under the new epoch",
      () => adopted(fresh, lease({ epoch: 2 }), "/other", 5, "77"),
      { jobDir: "/shared/alice/d", epoch: 2, slurmJobId: "77", submittedAt: 1000 },
    ],
    [
      "adopted drops an earlier attempt's record (its offsets)",
      () => adopted({ ...running, logOffsets: { stdout: 9, stderr: 9 } }, lease({ attempt: 2 }), "/d2", 5, "78"),
      { attempt: 2, jobDir: "/d2", logOffsets: { stdout: 0, stderr: 0 }, slurmJobId: "78" },
    ],
    ["reported remembers the state", () => reported(running, "completed"), { reported: "completed" }],
    ["reported the same final state again is idempotent", () => reported(reported(running, "failed"), "failed"), {}],
    [
      "submissionReported drops the lease kept for a restart",
      () => submissionReported(submitted(fresh, "42")),
      { reported: "submitted", lease: undefined },
    ],
    ["cancelAsked sets the flag", () => cancelAsked(running), { cancelRequested: true }],
    ["vanished remembers the first time", () => vanished(vanished(running, 10), 20), { missingSince: 10 }],
    ["lost keeps when it went missing", () => lost(vanished(running, 10), 99), { missingSince: 10, reported: "lost" }],
    [
      "observed clears missing and keeps the reason",
      () => observed(vanished(running, 10), "running", "2 of 4"),
      { missingSince: null, reported: "running", reportedReason: "2 of 4" },
    ],
    [
      "logsShipped moves the offsets",
      () => logsShipped(running, { stdout: 5, stderr: 6 }, { "stdout.1": 3 }),
      { logOffsets: { stdout: 5, stderr: 6 }, taskLogOffsets: { "stdout.1": 3 } },
    ],
  ];
  it.each(cases)("%s", (_name, run, expected) => {
    expect(run()).toMatchObject(expected);
  });

  it("never changes the record it was given", () => {
    const before = structuredClone(fresh);
    submitted(fresh, "42");
    cancelAsked(fresh);
    adopted(fresh, lease({ epoch: 2 }), "/x", 1, "9");
    expect(fresh).toEqual(before);
  });

  it("gives back the kept lease under the record's newest epoch", () => {
    expect(leaseOf({ ...fresh, epoch: 4 })?.epoch).toBe(4);
    expect(leaseOf(running)).toBeUndefined();
  });
});

describe("job life: refused transitions", () => {
  const cases: [string, () => unknown][] = [
    ["a second Slurm id for one attempt (a double submission)", () => submitted(submitted(fresh, "42"), "43")],
    ["a submission without a Slurm id", () => submitted(fresh, "")],
    ["a final state changed", () => reported(reported(running, "completed"), "running")],
    ["a final state replaced by another final state", () => reported(reported(running, "failed"), "completed")],
    ["an agent reporting queued", () => reported(running, "queued")],
    ["an agent reporting leased", () => reported(running, "leased")],
    ["a job never submitted going missing", () => vanished(fresh, 5)],
    ["a job never submitted reported lost", () => lost(fresh, 5)],
    [
      "an older lease adopting a newer record",
      () => adopted({ ...fresh, epoch: 3 }, lease({ epoch: 2 }), "/d", 1, "5"),
    ],
    ["observed changing a final state", () => observed(reported(running, "cancelled"), "running", null)],
  ];
  it.each(cases)("refuses %s", (_name, run) => {
    expect(run).toThrow(RefusedTransition);
  });
});
