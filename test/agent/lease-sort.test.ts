/**
 * The exactly-once sorting of leases, every row: what the lease says × what the journal holds, and
 * for an unsure lease, what the tag lookup found.
 */
import { describe, expect, it } from "vitest";
import { afterLookup, sortLease } from "../../agent/lease-sort.ts";
import type { TrackedJob } from "../../agent/state.ts";
import type { Lease } from "../../schemas/agent.ts";
import { JobSpec } from "../../schemas/job.ts";

const JOB = "job_00000123456789abcdef";

const lease = (over: Partial<Lease> = {}): Lease => ({
  jobId: JOB,
  epoch: 1,
  attempt: 1,
  owner: "alice",
  expiresAt: "2026-11-30T12:00:00Z",
  spec: JobSpec.parse({ name: "t", command: ["true"] }),
  slurmJobId: null,
  dependsOnSlurmIds: [],
  batch: null,
  ...over,
});

const record = (over: Partial<TrackedJob> = {}): TrackedJob => ({
  jobId: JOB,
  epoch: 1,
  attempt: 1,
  owner: "alice",
  jobDir: "/shared/alice/d1",
  phase: "submitted",
  slurmJobId: "42",
  submittedAt: 1,
  reported: null,
  missingSince: null,
  logOffsets: { stdout: 0, stderr: 0 },
  cancelRequested: false,
  isArray: false,
  ...over,
});

const submitting = record({ phase: "submitting", slurmJobId: null });

describe("sorting a lease by what the journal knows", () => {
  const rows: [string, Lease, TrackedJob | undefined, ReturnType<typeof sortLease>][] = [
    ["first lease, nothing journaled", lease(), undefined, { kind: "fresh" }],
    [
      "re-lease (epoch 2), nothing journaled: another agent may have run sbatch",
      lease({ epoch: 2 }),
      undefined,
      { kind: "unsure" },
    ],
    ["journal says submitting: killed around sbatch", lease(), submitting, { kind: "unsure" }],
    ["journal says submitting, renewed under a new epoch", lease({ epoch: 5 }), submitting, { kind: "unsure" }],
    [
      "journal has this attempt's Slurm id: report it again",
      lease(),
      record(),
      { kind: "adopt", slurmJobId: "42", jobDir: "/shared/alice/d1" },
    ],
    [
      "journal has the id, lease renewed under a new epoch",
      lease({ epoch: 3 }),
      record(),
      { kind: "adopt", slurmJobId: "42", jobDir: "/shared/alice/d1" },
    ],
    ["journal has an earlier attempt's id: this attempt is new", lease({ attempt: 2 }), record(), { kind: "fresh" }],
    ["journal has an earlier attempt submitting: not this one's", lease({ attempt: 2 }), submitting, { kind: "fresh" }],
    [
      "earlier attempt journaled, this attempt re-leased",
      lease({ attempt: 2, epoch: 2 }),
      record(),
      { kind: "unsure" },
    ],
    [
      "the gateway knows the Slurm id, nothing journaled",
      lease({ slurmJobId: "99" }),
      undefined,
      { kind: "known", slurmJobId: "99", jobDir: null },
    ],
    [
      "the gateway knows the id, this attempt journaled",
      lease({ slurmJobId: "99" }),
      submitting,
      { kind: "known", slurmJobId: "99", jobDir: "/shared/alice/d1" },
    ],
    [
      "the gateway knows the id, an earlier attempt journaled",
      lease({ slurmJobId: "99", attempt: 2 }),
      record(),
      { kind: "known", slurmJobId: "99", jobDir: null },
    ],
  ];
  it.each(rows)("%s", (_name, l, journal, expected) => {
    expect(sortLease(l, journal)).toEqual(expected);
  });
});

describe("an unsure lease after the tag lookup", () => {
  const rows: [string, string | undefined, boolean, ReturnType<typeof afterLookup>][] = [
    ["found by its tag: adopt, never submit again", "42", true, { kind: "adopt", slurmJobId: "42" }],
    ["found although sacct did not answer: still adopt", "42_3", false, { kind: "adopt", slurmJobId: "42_3" }],
    ["not found by a complete lookup: submit", undefined, true, { kind: "fresh" }],
    ["not found, squeue or sacct did not answer: decide nothing", undefined, false, { kind: "undecided" }],
  ];
  it.each(rows)("%s", (_name, found, complete, expected) => {
    expect(afterLookup(found, complete)).toEqual(expected);
  });
});
