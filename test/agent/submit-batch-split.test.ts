/**
 * Splitting a sweep's array that Slurm refuses for a submit limit (issue #12), on the refusals real
 * sbatch printed (test/fixtures/slurm/sbatch-*), and the one rule for how long a job given back waits.
 */
import { describe, expect, it } from "vitest";
import { requeueAfterSeconds, requeueReport } from "../../agent/requeue-wait.ts";
import { classifySbatchError } from "../../agent/slurm/sbatch.ts";
import { nextPartSize, zeroLimitCode } from "../../agent/submit-limit.ts";
import { NotNow, failedBefore } from "../../agent/submit.ts";
import { type Lease, Report } from "../../schemas/agent.ts";
import { JobSpec } from "../../schemas/job.ts";
import { fixture } from "./helpers/fixtures.ts";

const refusal = (name: string) => classifySbatchError(fixture(`sbatch-${name}.stderr.txt`));

/** The sizes tried, from `size` down, while every try is refused the same way. */
function sizesTried(size: number, r: { code: string; message: string }): number[] {
  const out = [size];
  for (let next = nextPartSize(size, r); next !== null; next = nextPartSize(next, r)) {
    out.push(next);
  }
  return out;
}

describe("the split rule (an array refused for a submit limit)", () => {
  it.each(["qos-max-submit-per-user", "qos-grp-submit", "assoc-max-submit"])(
    "%s: halves the array, rounding up, down to one element",
    (name) => {
      const r = refusal(name);
      expect(r.code).toBe("backpressure");
      expect(sizesTried(5, r)).toEqual([5, 3, 2, 1]);
      expect(sizesTried(1001, r)).toEqual([1001, 501, 251, 126, 63, 32, 16, 8, 4, 2, 1]);
      expect(sizesTried(1, r)).toEqual([1]);
    },
  );

  it("never splits when a smaller array cannot help: a full controller, a pause, a refusal of the spec", () => {
    const full = classifySbatchError("sbatch: error: Slurm job queue full, sleeping and retrying\n");
    expect(full.code).toBe("backpressure");
    expect(nextPartSize(8, full)).toBeNull();
    expect(
      nextPartSize(8, classifySbatchError("sbatch: error: Slurm temporarily unable to accept job, sleeping\n")),
    ).toBeNull();
    for (const name of ["invalid-partition", "too-many-cpus", "bad-time", "unenforced-qos"]) {
      expect(nextPartSize(8, refusal(name)), name).toBeNull();
    }
  });

  it("worst input: a refusal that only quotes the words, a size of 0 or less, a non-integer size", () => {
    const words = "Slurm's queue is full for this user (QOSMaxSubmitJobPerUserLimit): waiting";
    expect(nextPartSize(8, { code: "slurm_rejected", message: words })).toBeNull();
    expect(nextPartSize(8, { code: "backpressure", message: `x ${words}` })).toBeNull();
    const r = refusal("qos-max-submit-per-user");
    expect(nextPartSize(0, r)).toBeNull();
    expect(nextPartSize(-3, r)).toBeNull();
    expect(nextPartSize(Number.NaN, r)).toBeNull();
  });
});

describe("a limit of 0 (one element refused while Slurm holds none of the user's jobs)", () => {
  it("is a refusal naming the rule, for a per-user QOS or association limit", () => {
    expect(zeroLimitCode(refusal("qos-max-submit-per-user"), 0)).toBe("slurm_qos_limit");
    expect(zeroLimitCode(refusal("assoc-max-submit"), 0)).toBe("slurm_assoc_limit");
  });

  it("is waited for whenever it is less than certain", () => {
    // The user holds a job (or one that ended since): the limit may just be reached.
    expect(zeroLimitCode(refusal("qos-max-submit-per-user"), 1)).toBeNull();
    // squeue could not answer: no guess.
    expect(zeroLimitCode(refusal("qos-max-submit-per-user"), null)).toBeNull();
    // A group limit counts other users' jobs, which this user's squeue does not see.
    expect(zeroLimitCode(refusal("qos-grp-submit"), 0)).toBeNull();
    // A limit Slurm did not name, a full controller, a refusal of the spec.
    expect(
      zeroLimitCode(
        classifySbatchError(
          "sbatch: error: Batch job submission failed: Job violates accounting/QOS policy (job submit limit, user's size and/or time limits)\n",
        ),
        0,
      ),
    ).toBeNull();
    expect(
      zeroLimitCode(classifySbatchError("sbatch: error: Slurm job queue full, sleeping and retrying\n"), 0),
    ).toBeNull();
    expect(zeroLimitCode(refusal("invalid-partition"), 0)).toBeNull();
  });
});

const lease: Lease = {
  jobId: "job_00000123456789abcdef",
  epoch: 3,
  attempt: 1,
  owner: "alice",
  expiresAt: "2026-11-30T12:00:00Z",
  spec: JobSpec.parse({ name: "x", command: ["true"] }),
  slurmJobId: null,
  dependsOnSlurmIds: [],
  batch: null,
};

describe("the one requeue-wait rule", () => {
  it("waits longer for room in Slurm than for an answer that was missed, within what the gateway takes", () => {
    expect(requeueAfterSeconds("no-room")).toBe(60);
    expect(requeueAfterSeconds("not-now")).toBe(30);
    for (const cause of ["no-room", "not-now"] as const) {
      const report = requeueReport(lease, "x".repeat(5_000), cause);
      expect(Report.parse(report).requeue).toEqual({
        reason: "x".repeat(1_024),
        retryAfterSeconds: requeueAfterSeconds(cause),
      });
    }
  });

  it("a job that cannot be judged now goes back with the rule's wait", () => {
    const result = failedBefore(lease, new NotNow("cannot list this cluster's partitions"));
    expect(result).toMatchObject({
      kind: "requeue",
      report: { jobId: lease.jobId, epoch: 3, requeue: { retryAfterSeconds: requeueAfterSeconds("not-now") } },
    });
  });
});
