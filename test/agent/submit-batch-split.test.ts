/**
 * Splitting a sweep's array that Slurm refuses for a submit limit (issue #12), on the refusals real
 * sbatch printed (test/fixtures/slurm/sbatch-*), and the one rule for how long a job given back waits.
 */
import { describe, expect, it } from "vitest";
import { parseAgentConfig } from "../../agent/config.ts";
import { NO_ROOM_WAIT_SECONDS, requeueAfterSeconds, requeueReport } from "../../agent/requeue-wait.ts";
import { classifySbatchError } from "../../agent/slurm/sbatch.ts";
import { readFileSync } from "node:fs";
import { arrayTaskCount, expandArrayIndexes } from "../../agent/array-indexes.ts";
import { readSubmitResponse } from "../../agent/slurm-rest/responses.ts";
import { neverFitsCode, neverFitsMessage, nextPartSize, tasksAsked } from "../../agent/submit-limit.ts";
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

describe("a submission that never fits (one job refused while Slurm holds none of the user's jobs)", () => {
  it("is a refusal naming the rule, for a per-user QOS or association limit", () => {
    expect(neverFitsCode(refusal("qos-max-submit-per-user"), 0)).toBe("slurm_qos_limit");
    expect(neverFitsCode(refusal("assoc-max-submit"), 0)).toBe("slurm_assoc_limit");
  });

  it("is waited for whenever it is less than certain", () => {
    // The user holds a job (or one that ended since): the limit may just be reached.
    expect(neverFitsCode(refusal("qos-max-submit-per-user"), 1)).toBeNull();
    // squeue could not answer: no guess.
    expect(neverFitsCode(refusal("qos-max-submit-per-user"), null)).toBeNull();
    // A group limit counts other users' jobs, which this user's squeue does not see.
    expect(neverFitsCode(refusal("qos-grp-submit"), 0)).toBeNull();
    // A limit Slurm did not name, a full controller, a refusal of the spec.
    expect(
      neverFitsCode(
        classifySbatchError(
          "sbatch: error: Batch job submission failed: Job violates accounting/QOS policy (job submit limit, user's size and/or time limits)\n",
        ),
        0,
      ),
    ).toBeNull();
    expect(
      neverFitsCode(classifySbatchError("sbatch: error: Slurm job queue full, sleeping and retrying\n"), 0),
    ).toBeNull();
    expect(neverFitsCode(refusal("invalid-partition"), 0)).toBeNull();
  });

  it("says how many tasks were asked for, and never advises a throttle as a way in", () => {
    const r = refusal("qos-max-submit-per-user");
    const many = neverFitsMessage(r.message, 5);
    expect(many).toMatch(
      /^the job asks for 5 array tasks and Slurm's QOSMaxSubmitJobPerUserLimit refuses them all even with none of this user's jobs queued: .*only an array of fewer tasks can go in \(QOSMaxSubmitJobPerUserLimit: Job violates accounting\/QOS policy/,
    );
    expect(many).toContain("a %N throttle does not change that");
    expect(neverFitsMessage(r.message, 1)).toMatch(
      /^Slurm's QOSMaxSubmitJobPerUserLimit allows this user no job on this cluster \(a limit of 0\)/,
    );
    expect(neverFitsMessage(`${r.message}${"x".repeat(5_000)})`, 9_999_999)).toHaveLength(1_000);
  });

  it("counts the tasks of a job's own array as Slurm does: an index given twice is one task", () => {
    expect(tasksAsked(JobSpec.parse({ name: "x", command: ["true"] }))).toBe(1);
    expect(tasksAsked(JobSpec.parse({ name: "x", command: ["true"], array: { indexes: "0-4", maxParallel: 1 } }))).toBe(
      5,
    );
    for (const expression of ["0-9,5-14:5", "7", "1,1,1", "0-99:7,3,50-60", "9999999", "0-6:3,9"]) {
      expect(arrayTaskCount(expression), expression).toBe(new Set(expandArrayIndexes(expression, 20_000)).size);
    }
    // The largest expression the schema lets through: counted without listing 64 ranges of 10 million.
    const widest = Array.from({ length: 64 }, () => "0-9999999").join(",");
    expect(arrayTaskCount(widest)).toBe(10_000_000);
  });
});

describe("slurmrestd's submit-limit refusal (captured from slurmrestd 22.05.8 on gamma)", () => {
  const answer = JSON.parse(
    readFileSync(new URL("../fixtures/slurmrestd/submit-qos-max-submit-per-user.json", import.meta.url), "utf8"),
  );
  const r = readSubmitResponse(answer);

  it("is back-pressure that says it is a submit limit, and splits an array like sbatch's", () => {
    expect(r).toMatchObject({ ok: false, code: "backpressure", retryable: true });
    if (r.ok) {
      throw new Error("not a refusal");
    }
    expect(r.message).toMatch(
      /^Slurm's queue is full for this user \(MaxSubmitJobs of a QOS or association\): waiting/,
    );
    expect(sizesTried(5, r)).toEqual([5, 3, 2, 1]);
  });

  it("never refuses for good: the answer cannot tell a per-user limit from a group one", () => {
    if (r.ok) {
      throw new Error("not a refusal");
    }
    expect(neverFitsCode(r, 0)).toBeNull();
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

/** Only what the agent's config requires, so every other variable takes its default. */
const REQUIRED = {
  SLURMGATE_URL: "http://127.0.0.1:8080",
  SLURMGATE_AGENT_TOKEN: `sga_${"a".repeat(32)}`,
  SLURMGATE_CLUSTER: "alpha",
  SLURMGATE_SHARED_ROOTS: "/scratch",
};

describe("the one requeue-wait rule", () => {
  const defaults = parseAgentConfig(REQUIRED);

  it("waits longer for room in Slurm than for an answer that was missed, within what the gateway takes", () => {
    expect(requeueAfterSeconds("no-room", defaults)).toBe(NO_ROOM_WAIT_SECONDS);
    expect(NO_ROOM_WAIT_SECONDS).toBe(60);
    expect(requeueAfterSeconds("not-now", defaults)).toBe(30);
    for (const cause of ["no-room", "not-now"] as const) {
      const report = requeueReport(lease, "x".repeat(5_000), cause, defaults);
      expect(Report.parse(report).requeue).toEqual({
        reason: "x".repeat(1_024),
        retryAfterSeconds: requeueAfterSeconds(cause, defaults),
      });
    }
  });

  it("takes the site's SLURMGATE_NO_ROOM_WAIT_SECONDS for room, never for a missed answer, and refuses one out of bounds", () => {
    const site = parseAgentConfig({ ...REQUIRED, SLURMGATE_NO_ROOM_WAIT_SECONDS: "15" });
    expect(requeueReport(lease, "full", "no-room", site).requeue?.retryAfterSeconds).toBe(15);
    expect(requeueReport(lease, "blip", "not-now", site).requeue?.retryAfterSeconds).toBe(30);
    for (const bad of ["0", "4", "3601", "1.5", "soon"]) {
      expect(() => parseAgentConfig({ ...REQUIRED, SLURMGATE_NO_ROOM_WAIT_SECONDS: bad })).toThrow(
        new RegExp(`^invalid SLURMGATE_NO_ROOM_WAIT_SECONDS: .*\\(got "${bad.replace(".", "\\.")}"\\)$`),
      );
    }
  });

  it("a job that cannot be judged now goes back with the rule's wait", () => {
    const result = failedBefore({ config: defaults }, lease, new NotNow("cannot list this cluster's partitions"));
    expect(result).toMatchObject({
      kind: "requeue",
      report: {
        jobId: lease.jobId,
        epoch: 3,
        requeue: { retryAfterSeconds: requeueAfterSeconds("not-now", defaults) },
      },
    });
  });
});
