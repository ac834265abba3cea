import { describe, expect, it } from "vitest";
import {
  buildSbatchArgs,
  classifySbatchError,
  parseSbatchOutput,
  sbatchErrorMessage,
  submitLimitOf,
} from "../../agent/slurm/sbatch.ts";
import { buildSlurmEnv } from "../../agent/slurm/env.ts";
import { fixture } from "./helpers/fixtures.ts";

describe("buildSbatchArgs", () => {
  it("puts --parsable first and the script last", () => {
    expect(buildSbatchArgs("/s/job.sbatch", ["--export=NONE"])).toEqual([
      "--parsable",
      "--export=NONE",
      "/s/job.sbatch",
    ]);
  });
  it.each([
    ["relative.sh", []],
    ["/s/x", ["-p debug"]],
    ["/s/x", ["--wrap=id; rm"]],
  ])("refuses %j %j", (path, extra) => {
    expect(() => buildSbatchArgs(path, extra)).toThrow();
  });
});

describe("parseSbatchOutput (real outputs)", () => {
  it("reads --parsable", () => {
    expect(parseSbatchOutput(fixture("sbatch-ok.stdout.txt"))).toEqual({ slurmJobId: "7", cluster: null });
  });
  it("reads the classic line", () => {
    expect(parseSbatchOutput(fixture("sbatch-classic.stdout.txt"))).toEqual({ slurmJobId: "8", cluster: null });
  });
  it("reads id;cluster", () => {
    expect(parseSbatchOutput("4242;alpha\n")).toEqual({ slurmJobId: "4242", cluster: "alpha" });
  });
  it("returns null without an id", () => {
    expect(parseSbatchOutput("")).toBeNull();
    expect(parseSbatchOutput("sbatch: error: something\n")).toBeNull();
  });
});

describe("classifySbatchError", () => {
  it.each([
    [
      "sbatch-invalid-partition.stderr.txt",
      "slurm_invalid_partition",
      "invalid partition specified: nosuch: Invalid partition name specified",
    ],
    ["sbatch-gres-h100.stderr.txt", "slurm_node_config", "Requested node configuration is not available"],
    ["sbatch-gres-too-many.stderr.txt", "slurm_node_config", "Requested node configuration is not available"],
    ["sbatch-gres-bad-type.stderr.txt", "slurm_gres_unavailable", "Invalid generic resource (gres) specification"],
    [
      "sbatch-mem-too-much.stderr.txt",
      "slurm_memory_limit",
      "Memory specification can not be satisfied: Requested node configuration is not available",
    ],
    ["sbatch-bad-time.stderr.txt", "slurm_time_limit", "Invalid --time specification"],
  ])("real %s → %s", (file, code, message) => {
    expect(classifySbatchError(fixture(file))).toEqual({ code, message });
  });

  // Captured on gamma (test/slurm/gamma.sh), which enforces associations,limits,qos: the submit limits
  // really reached. Each is back-pressure, and the reason names the limit Slurm named.
  it.each([
    ["sbatch-qos-max-submit-per-user.stderr.txt", "QOSMaxSubmitJobPerUserLimit"],
    ["sbatch-qos-grp-submit.stderr.txt", "QOSGrpSubmitJobsLimit"],
    ["sbatch-assoc-max-submit.stderr.txt", "AssocMaxSubmitJobLimit"],
  ])("real %s → backpressure naming %s", (file, limit) => {
    expect(fixture(file.replace("stderr", "stdout"))).toBe("");
    expect(classifySbatchError(fixture(file))).toEqual({
      code: "backpressure",
      message: `Slurm's queue is full for this user (${limit}): waiting (${limit}: Job violates accounting/QOS policy (job submit limit, user's size and/or time limits))`,
    });
  });

  // Messages Slurm prints for settings the test clusters do not enable (AccountingStorageEnforce,
  // QOS limits, MaxJobCount), copied from slurm_errno.c / sbatch of 22.05.
  it.each([
    [
      "sbatch: error: Batch job submission failed: Invalid account or account/partition combination specified",
      "slurm_invalid_account",
    ],
    ["sbatch: error: Batch job submission failed: Invalid qos specification", "slurm_invalid_qos"],
    [
      "sbatch: error: QOSMaxSubmitJobPerUserLimit\nsbatch: error: Batch job submission failed: Job violates accounting/QOS policy (job submit limit, user's size and/or time limits)",
      "backpressure",
    ],
    [
      "sbatch: error: AssocMaxSubmitJobLimit\nsbatch: error: Batch job submission failed: Job violates accounting/QOS policy (job submit limit, user's size and/or time limits)",
      "backpressure",
    ],
    [
      "sbatch: error: Batch job submission failed: Job violates accounting/QOS policy (job submit limit, user's size and/or time limits)",
      "backpressure",
    ],
    [
      "sbatch: error: QOSMaxWallDurationPerJobLimit\nsbatch: error: Batch job submission failed: Job violates accounting/QOS policy (job submit limit, user's size and/or time limits)",
      "slurm_time_limit",
    ],
    [
      "sbatch: error: QOSMaxGRESPerUser\nsbatch: error: Batch job submission failed: Job violates accounting/QOS policy (job submit limit, user's size and/or time limits)",
      "backpressure",
    ],
    [
      "sbatch: error: QOSMaxCpuPerJobLimit\nsbatch: error: Batch job submission failed: Job violates accounting/QOS policy (job submit limit, user's size and/or time limits)",
      "slurm_qos_limit",
    ],
    [
      "sbatch: error: AssocGrpCpuLimit\nsbatch: error: Batch job submission failed: Job violates accounting/QOS policy (job submit limit, user's size and/or time limits)",
      "slurm_assoc_limit",
    ],
    [
      "sbatch: error: Batch job submission failed: Requested time limit is invalid (missing or exceeds some limit)",
      "slurm_time_limit",
    ],
    [
      "sbatch: error: Slurm temporarily unable to accept job, sleeping and retrying\nsbatch: error: Batch job submission failed: Resource temporarily unavailable",
      "backpressure",
    ],
    ["sbatch: error: Batch job submission failed: Socket timed out on send/recv operation", "transient"],
    ["sbatch: error: Batch job submission failed: Unable to contact slurm controller (connect failure)", "transient"],
    ["sbatch: error: Batch job submission failed: Job dependency problem", "slurm_dependency"],
    ["sbatch: error: Batch job submission failed: Node count specification invalid", "slurm_node_config"],
    ["sbatch: error: Batch job submission failed: Something new in Slurm 26", "slurm_rejected"],
    ["sbatch: fatal: Could not establish a configuration source", "transient"],
    ["", "transient"],
  ])("%s → %s", (stderr, code) => {
    expect(classifySbatchError(stderr).code).toBe(code);
  });

  it.each([
    [
      // MaxJobCount reached: sbatch's first notice, and its last words after 15 retries (sbatch.c, slurm_errno.c).
      "sbatch: error: Slurm job queue full, sleeping and retrying",
      "Slurm's queue is full (MaxJobCount): waiting (Slurm job queue full, sleeping and retrying)",
    ],
    [
      "sbatch: error: Slurm job queue full, sleeping and retrying\nsbatch: error: Batch job submission failed: Unable to create job record, try again",
      "Slurm's queue is full (MaxJobCount): waiting (Slurm job queue full, sleeping and retrying: Unable to create job record, try again)",
    ],
    [
      "sbatch: error: Batch job submission failed: Job violates accounting/QOS policy (job submit limit, user's size and/or time limits)",
      "Slurm's queue is full for this user (MaxSubmitJobs of a QOS or association): waiting (Job violates accounting/QOS policy (job submit limit, user's size and/or time limits))",
    ],
    [
      "sbatch: error: QOSMaxSubmitJobPerUserLimit\nsbatch: error: Batch job submission failed: Job violates accounting/QOS policy (job submit limit, user's size and/or time limits)",
      "Slurm's queue is full for this user (QOSMaxSubmitJobPerUserLimit): waiting (QOSMaxSubmitJobPerUserLimit: Job violates accounting/QOS policy (job submit limit, user's size and/or time limits))",
    ],
    [
      "sbatch: error: Slurm temporarily unable to accept job, sleeping and retrying",
      "Slurm is not accepting jobs for the moment: waiting (Slurm temporarily unable to accept job, sleeping and retrying)",
    ],
  ])("a full controller is back-pressure with a reason that says so: %s", (stderr, message) => {
    expect(classifySbatchError(stderr)).toEqual({ code: "backpressure", message });
  });

  it("names the submit limit in a back-pressure reason, and nothing for a full controller or a pause", () => {
    const reason = (file: string) => classifySbatchError(fixture(file)).message;
    expect(submitLimitOf(reason("sbatch-qos-max-submit-per-user.stderr.txt"))).toBe("QOSMaxSubmitJobPerUserLimit");
    expect(submitLimitOf(reason("sbatch-qos-grp-submit.stderr.txt"))).toBe("QOSGrpSubmitJobsLimit");
    expect(submitLimitOf(reason("sbatch-assoc-max-submit.stderr.txt"))).toBe("AssocMaxSubmitJobLimit");
    expect(
      submitLimitOf(classifySbatchError("sbatch: error: Slurm job queue full, sleeping and retrying").message),
    ).toBeNull();
    expect(
      submitLimitOf(classifySbatchError("sbatch: error: Slurm temporarily unable to accept job, sleeping").message),
    ).toBeNull();
    // Only the reason's own opening counts, never the words quoted later in it.
    expect(submitLimitOf("waiting (Slurm's queue is full for this user (X))")).toBeNull();
    expect(submitLimitOf("")).toBeNull();
  });

  it("treats a timeout as transient whatever stderr says", () => {
    expect(
      classifySbatchError("sbatch: error: Batch job submission failed: Invalid qos specification", { timedOut: true })
        .code,
    ).toBe("transient");
  });

  it("drops warnings from the message", () => {
    expect(
      sbatchErrorMessage("sbatch: warning: x\nsbatch: error: Batch job submission failed: Invalid qos specification\n"),
    ).toBe("Invalid qos specification");
  });
});

describe("buildSlurmEnv", () => {
  it("keeps only what Slurm commands need and pins locale and zone", () => {
    const env = buildSlurmEnv({
      PATH: "/p",
      SLURM_CONF: "/c",
      AGENT_TOKEN: "t",
      SBATCH_ACCOUNT: "a",
      SQUEUE_FORMAT: "x",
      HOME: "/h",
    });
    expect(env).toEqual({ PATH: "/p", SLURM_CONF: "/c", HOME: "/h", LC_ALL: "C", TZ: "UTC" });
  });
});
