import { describe, expect, it } from "vitest";
import { SACCT_FIELDS, buildSacctArgs, parseSacct } from "../../agent/slurm/sacct.ts";
import { fixture } from "./helpers/fixtures.ts";

describe("buildSacctArgs", () => {
  it("bounds by start time (UTC) and lists ids", () => {
    expect(buildSacctArgs({ since: new Date("2026-11-22T10:00:00.123Z"), ids: ["12", "13_2"] })).toEqual([
      "-X",
      "-P",
      "-n",
      "-o",
      SACCT_FIELDS.join(","),
      "--starttime=2026-11-22T10:00:00",
      "--jobs=12,13_2",
    ]);
  });
  it("lists everything since a time for lookup by tag", () => {
    expect(buildSacctArgs({ since: new Date("2026-11-22T10:00:00Z") }).some((a) => a.startsWith("--jobs"))).toBe(false);
  });
  it("refuses bad ids and empty lists", () => {
    expect(() => buildSacctArgs({ since: new Date(), ids: ["1,2"] })).toThrow();
    expect(() => buildSacctArgs({ since: new Date(), ids: [] })).toThrow();
  });
});

describe("parseSacct (real output)", () => {
  const result = parseSacct({ code: 0, stdout: fixture("sacct-mixed.txt"), stderr: "" });
  const rows = result.ok ? result.value : [];
  const byId = (id: string) => rows.find((r) => r.slurmJobId === id);

  it("is ok", () => {
    expect(result.ok).toBe(true);
    expect(rows.length).toBeGreaterThan(15);
  });
  it("reads exit codes and signals", () => {
    expect(byId("22")).toMatchObject({
      state: "FAILED",
      jobState: "failed",
      exitCode: 3,
      signal: 0,
      comment: "slurmgate:job_aaaaaaaaaaaaaaaaaaaa:2",
    });
    expect(byId("23")).toMatchObject({ state: "OUT_OF_MEMORY", jobState: "out_of_memory", exitCode: 0, signal: 125 });
    expect(byId("24")).toMatchObject({ jobState: "failed", exitCode: 0, signal: 9 });
    expect(byId("26")).toMatchObject({ jobState: "timeout" });
    expect(byId("8")).toMatchObject({ jobState: "completed", exitCode: 0, signal: 0, comment: null });
  });
  it("maps 'CANCELLED by 0' and a start that never happened", () => {
    expect(byId("15")).toMatchObject({ state: "CANCELLED by 0", jobState: "cancelled", startTime: null });
    expect(byId("25")).toMatchObject({ jobState: "cancelled", startTime: "2026-11-22T14:19:42" });
  });
  it("keeps array tasks apart and the comment with a pipe whole", () => {
    expect(byId("18_2")).toMatchObject({ rawJobId: "27", jobState: "completed" });
    expect(byId("19")?.comment).toBe("has|pipe and space");
  });
  it("returns only the known ids of a list", () => {
    const ids = parseSacct({ code: 0, stdout: fixture("sacct-ids.txt"), stderr: "" });
    expect(ids.ok && ids.value.map((r) => r.slurmJobId)).toEqual(["22", "23"]);
  });
  it("reports disabled accounting as unavailable, never as absent", () => {
    expect(
      parseSacct({
        code: 1,
        stdout: fixture("sacct-disabled.stdout.txt"),
        stderr: fixture("sacct-disabled.stderr.txt"),
      }),
    ).toEqual({
      ok: false,
      retryable: false,
      code: "unavailable",
      message: "Slurm accounting storage is disabled",
    });
  });
  it("reports other failures as errors", () => {
    expect(parseSacct({ code: 1, stdout: "", stderr: "sacct: error: something odd\n" })).toEqual({
      ok: false,
      retryable: true,
      code: "failed",
      message: "something odd",
    });
  });
});
