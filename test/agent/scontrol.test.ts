import { describe, expect, it } from "vitest";
import {
  buildScontrolShowConfigArgs,
  buildScontrolShowJobArgs,
  isUnknownJobError,
  parseMaxArraySize,
  parseScontrolShowJob,
} from "../../agent/slurm/scontrol.ts";
import { buildScancelArgs, parseScancelStderr } from "../../agent/slurm/scancel.ts";
import { fixture } from "./helpers/fixtures.ts";

describe("scontrol show job -o (real output)", () => {
  const jobs = parseScontrolShowJob(fixture("scontrol-show-job-all.txt"));
  const byId = (id: string) => jobs.find((j) => j.slurmJobId === id);

  it("builds args for all jobs or one", () => {
    expect(buildScontrolShowJobArgs()).toEqual(["show", "job", "-o"]);
    expect(buildScontrolShowJobArgs("12")).toEqual(["show", "job", "-o", "12"]);
    expect(() => buildScontrolShowJobArgs("12 13")).toThrow();
  });
  it("parses one record per line", () => {
    expect(jobs).toHaveLength(23);
  });
  it("reads state, reason, exit code and comment", () => {
    expect(byId("22")).toMatchObject({
      state: "FAILED",
      jobState: "failed",
      reason: "NonZeroExitCode",
      exitCode: 3,
      signal: 0,
      comment: "slurmgate:job_aaaaaaaaaaaaaaaaaaaa:2",
    });
    expect(byId("23")).toMatchObject({ jobState: "out_of_memory", exitCode: 0, signal: 125, comment: null });
  });
  it("keeps values with spaces whole", () => {
    expect(byId("19")?.comment).toBe("has|pipe and space");
    expect(byId("22")?.fields.Command).toBe("/var/tmp/slurmgate-test/shared/agent-fixtures/ok.sh 1 3");
    expect(byId("22")?.fields["AllocNode:Sid"]).toBe("localhost:5708");
  });
  it("names array tasks <array>_<task>", () => {
    const tasks = jobs
      .filter((j) => j.fields.ArrayJobId === "28")
      .map((j) => j.slurmJobId)
      .sort();
    expect(tasks).toEqual(["28_0", "28_1"]);
  });
  it("recognises an id it no longer knows", () => {
    expect(isUnknownJobError(fixture("scontrol-invalid.stderr.txt"))).toBe(true);
  });
});

describe("scancel", () => {
  it("cancels many ids in one call, deduplicated", () => {
    expect(buildScancelArgs(["12", "13_2", "12"])).toEqual(["12", "13_2"]);
  });
  it("refuses anything but job ids", () => {
    expect(() => buildScancelArgs(["-u", "alice"])).toThrow();
    expect(() => buildScancelArgs([])).toThrow();
  });
  it("treats already-gone jobs as done (real: scancel exits 0 silently in 22.05)", () => {
    expect(parseScancelStderr(fixture("scancel-completed.stderr.txt"))).toEqual({ gone: [], other: [] });
    expect(parseScancelStderr("scancel: error: Kill job error on job id 99: Invalid job id specified\n")).toEqual({
      gone: ["99"],
      other: [],
    });
  });
});

describe("scontrol show config (real output)", () => {
  it("reads MaxArraySize, the largest sweep batch the gateway may claim", () => {
    expect(buildScontrolShowConfigArgs()).toEqual(["show", "config"]);
    expect(parseMaxArraySize(fixture("scontrol-show-config.txt"))).toBe(1001);
  });
  it("says nothing rather than guess when the line is missing, not a number or out of Slurm's range", () => {
    expect(parseMaxArraySize("MaxJobCount = 30000\n")).toBeNull();
    expect(parseMaxArraySize("MaxArraySize = lots\n")).toBeNull();
    expect(parseMaxArraySize("MaxArraySize = 0\n")).toBeNull();
    expect(parseMaxArraySize("MaxArraySize = 99999999\n")).toBeNull();
    expect(parseMaxArraySize("XMaxArraySize = 5\n")).toBeNull();
  });
});
