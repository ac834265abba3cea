/**
 * `sbatch --test-only`: its argv refuses anything but plain long options, and its stderr (captured
 * from sbatch 22.05 on the test clusters) reads as an estimate or as nothing.
 */
import { describe, expect, it } from "vitest";
import { buildTestOnlyArgs, parseTestOnly } from "../../agent/slurm/test-only.ts";

describe("sbatch --test-only", () => {
  it("reads the estimate line as UTC", () => {
    const stderr =
      "sbatch: Job 36601 to start at 2026-11-30T18:17:58 using 1 processors on nodes vm in partition cpu\n";
    expect(parseTestOnly(stderr)).toEqual({
      startAt: "2026-11-30T18:17:58.000Z",
      partition: "cpu",
      nodes: "vm",
      processors: 1,
    });
    const many =
      "sbatch: Job 7 to start at 2026-12-01T00:00:00 using 64 processors on nodes gpu[01-04] in partition gpu";
    expect(parseTestOnly(many)).toMatchObject({ nodes: "gpu[01-04]", processors: 64 });
  });

  it("reads refusals and garbage as no estimate", () => {
    for (const stderr of [
      "allocation failure: Requested node configuration is not available\n",
      "sbatch: error: invalid partition specified: nope\nallocation failure: Invalid partition name specified\n",
      "sbatch: Job 1 to start at tomorrow using 1 processors on nodes vm in partition cpu",
      "",
    ]) {
      expect(parseTestOnly(stderr)).toBeNull();
    }
  });

  it("builds a test-only argv that can never queue the job, and refuses hostile options", () => {
    expect(buildTestOnlyArgs(["--partition=cpu", "--time=300"])).toEqual([
      "--test-only",
      "--partition=cpu",
      "--time=300",
      "--wrap=true",
    ]);
    for (const bad of ["--wrap=rm -rf /", "-p cpu", "--comment=a;b", "--x=$(id)", "cpu"]) {
      expect(() => buildTestOnlyArgs([bad])).toThrow(/refusing sbatch argument/);
    }
  });
});
