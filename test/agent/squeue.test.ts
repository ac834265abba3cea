import { describe, expect, it } from "vitest";
import {
  SQUEUE_FORMAT,
  buildSqueueArgs,
  findByTag,
  isInvalidJobIdError,
  parseSqueue,
} from "../../agent/slurm/squeue.ts";
import { fixture } from "./helpers/fixtures.ts";

describe("buildSqueueArgs", () => {
  it("lists by ids, user or --me, in every state, one line per array task", () => {
    expect(buildSqueueArgs({ ids: ["12", "13_1"] })).toEqual([
      "-h",
      "--states=all",
      "-r",
      "-o",
      SQUEUE_FORMAT,
      "--jobs=12,13_1",
    ]);
    expect(buildSqueueArgs({ user: "alice" })).toEqual([
      "-h",
      "--states=all",
      "-r",
      "-o",
      SQUEUE_FORMAT,
      "--user=alice",
    ]);
    expect(buildSqueueArgs({ me: true }).at(-1)).toBe("--me");
  });
  it.each([[["1;2"]], [["-u"]], [[]]])("refuses ids %j", (ids) => {
    expect(() => buildSqueueArgs({ ids })).toThrow();
  });
  it("refuses odd user names", () => {
    expect(() => buildSqueueArgs({ user: "a b" })).toThrow();
  });
});

describe("parseSqueue (real output)", () => {
  const rows = parseSqueue(fixture("squeue-mixed.txt"));

  it("parses every line", () => {
    expect(rows).toHaveLength(17);
  });
  it("reads a pending array task and maps the state", () => {
    expect(rows.find((r) => r.slurmJobId === "18_1")).toEqual({
      slurmJobId: "18_1",
      rawJobId: "18",
      arrayJobId: "18",
      arrayTaskId: "1",
      state: "PENDING",
      jobState: "pending",
      reason: "Resources",
      partition: "cpu",
      submitTime: "2026-11-22T14:18:37",
      comment: "slurmgate:job_0123456789abcdefghij:1",
    });
  });
  it("keeps `|` inside the comment and maps (null) to null", () => {
    expect(rows.find((r) => r.slurmJobId === "19")?.comment).toBe("has|pipe and space");
    expect(rows.find((r) => r.slurmJobId === "7")).toMatchObject({
      comment: null,
      arrayTaskId: null,
      jobState: "completed",
      reason: null,
    });
  });
  it("shows the reason a job can never start", () => {
    expect(rows.find((r) => r.slurmJobId === "17")).toMatchObject({
      state: "PENDING",
      reason: "PartitionTimeLimit",
      partition: "short",
    });
    expect(rows.find((r) => r.slurmJobId === "2")).toMatchObject({ jobState: "timeout", reason: "TimeLimit" });
  });
  it("maps finished states still in the queue", () => {
    const all = parseSqueue(fixture("squeue-states-all.txt"));
    expect(Object.fromEntries(all.map((r) => [r.slurmJobId, r.jobState]))).toMatchObject({
      "15": "cancelled",
      "22": "failed",
      "23": "out_of_memory",
      "26": "running",
      "18_2": "completed",
    });
  });
  it("finds jobs by the exactly-once tag", () => {
    expect(
      findByTag(rows, "slurmgate:job_0123456789abcdefghij:1")
        .map((r) => r.slurmJobId)
        .sort(),
    ).toEqual(["18_0", "18_1", "18_2", "18_3"]);
    expect(findByTag(rows, "slurmgate:job_0123456789abcdefghij:2")).toEqual([]);
  });
  it("skips unknown ids in a list, and errors only when none is known", () => {
    expect(parseSqueue(fixture("squeue-ids-one-invalid.stdout.txt")).map((r) => r.slurmJobId)).toEqual(["22"]);
    expect(isInvalidJobIdError(fixture("squeue-ids-all-invalid.stderr.txt"))).toBe(true);
  });
  it("skips malformed lines and maps unknown states to null", () => {
    expect(parseSqueue("garbage\n1|1|1|N/A|WEIRD|None|cpu|t|(null)\n")).toEqual([
      expect.objectContaining({ slurmJobId: "1", state: "WEIRD", jobState: null }),
    ]);
  });
});
