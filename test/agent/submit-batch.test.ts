/**
 * Which leases the agent submits as one array (it re-checks the gateway's grouping), and how it
 * recognises an earlier submission of a sweep element by its batch tag or its own tag.
 */
import { describe, expect, it } from "vitest";
import { parseSacct } from "../../agent/slurm/sacct.ts";
import { parseSqueue } from "../../agent/slurm/squeue.ts";
import { batchProblem, commonPart, planSubmissions } from "../../agent/submit-batch.ts";
import { matchTagged } from "../../agent/submit.ts";
import type { Lease } from "../../schemas/agent.ts";
import { JobSpec, type JobSpecInput } from "../../schemas/job.ts";

const BAT = "bat_0123456789abcdefghij";
const OTHER = "bat_zzzz456789abcdefghij";
const jobId = (i: number) => `job_${String(i).padStart(4, "0")}0123456789abcdef`;

function lease(i: number, over: Partial<Lease> = {}, spec: Partial<JobSpecInput> = {}): Lease {
  return {
    jobId: jobId(i),
    epoch: 1,
    attempt: 1,
    owner: "alice",
    expiresAt: "2026-11-30T12:00:00Z",
    spec: JobSpec.parse({
      name: `s-${i}`,
      partition: "cpu",
      command: ["python", "train.py", `--seed=${i}`],
      env: { SEED: String(i) },
      labels: { SEED: String(i) },
      resources: { time: "10m" },
      ...spec,
    }),
    slurmJobId: null,
    dependsOnSlurmIds: [],
    batch: { id: BAT, index: i, size: 3, maxParallel: 2 },
    ...over,
  };
}

const ctx = { log: () => {}, maxArraySize: 1001 };
const kinds = (leases: Lease[], c: { log: () => void; maxArraySize?: number } = ctx) =>
  planSubmissions(c, leases).map((s) => (s.kind === "batch" ? s.leases.map((l) => l.jobId) : s.lease.jobId));

describe("grouping leases into arrays", () => {
  it("makes one array of the leases sharing a batch id, in lease order, and leaves plain leases alone", () => {
    const plain = lease(9, { batch: null });
    const other = lease(5, { batch: { id: OTHER, index: 0, size: 1, maxParallel: null } });
    expect(kinds([lease(0), plain, lease(1), other, lease(2)])).toEqual([
      [jobId(0), jobId(1), jobId(2)],
      jobId(9),
      [jobId(5)],
    ]);
  });

  it("compares specs without name, env, command and labels, whatever the key order", () => {
    const a = JobSpec.parse({ name: "a", command: ["x"], env: { A: "1" }, resources: { time: "1h", cpusPerTask: 2 } });
    const b = JobSpec.parse({
      resources: { cpusPerTask: 2, time: "1h" },
      command: ["y"],
      name: "b",
      labels: { k: "v" },
    });
    expect(commonPart(a)).toBe(commonPart(b));
    expect(commonPart(a)).not.toBe(commonPart({ ...b, partition: "gpu" }));
  });

  it.each([
    ["another partition", () => [lease(0), lease(1, {}, { partition: "gpu" })]],
    ["another time limit", () => [lease(0), lease(1, {}, { resources: { time: "20m" } })]],
    ["other setup lines", () => [lease(0), lease(1, {}, { setup: ["module load x"] })]],
    ["another owner", () => [lease(0), lease(1, { owner: "bob" })]],
    ["the same index twice", () => [lease(0), lease(1, { batch: { id: BAT, index: 0, size: 2, maxParallel: 2 } })]],
    ["another throttle", () => [lease(0), lease(1, { batch: { id: BAT, index: 1, size: 2, maxParallel: 5 } })]],
    ["a script instead of a command", () => [lease(0), lease(1, {}, { command: undefined, script: "echo hi" })]],
    ["an array spec", () => [lease(0), lease(1, {}, { array: { indexes: "0-3" } })]],
    ["a dependency", () => [lease(0), lease(1, { dependsOnSlurmIds: [{ slurmJobId: "12", condition: "afterok" }] })]],
    ["a spec that does not parse", () => [lease(0), { ...lease(1), spec: { name: 3 } as unknown as Lease["spec"] }]],
    [
      "a hostile batch id",
      () => [0, 1].map((i) => lease(i, { batch: { id: "bat_../../etc", index: i, size: 2, maxParallel: 2 } })),
    ],
    [
      "an index that is text",
      () => [lease(0), lease(1, { batch: { id: BAT, index: "1;id" as unknown as number, size: 2, maxParallel: 2 } })],
    ],
    // All of them with the same launcher: an array task is one node's job, not a multi-node run.
    ["a launcher", () => [0, 1].map((i) => lease(i, {}, { launcher: { kind: "srun" } }))],
    ["a throttle of 0", () => [0, 1].map((i) => lease(i, { batch: { id: BAT, index: i, size: 2, maxParallel: 0 } }))],
  ])("submits the elements one by one when one has %s", (_what, make) => {
    const leases = make();
    expect(kinds(leases)).toEqual(leases.map((l) => l.jobId));
  });

  it("submits one by one a batch with an index at or above this cluster's MaxArraySize (default 1001 until known)", () => {
    const leases = [lease(0), lease(1, { batch: { id: BAT, index: 1001, size: 2, maxParallel: 2 } })];
    expect(kinds(leases, { log: () => {} })).toEqual([jobId(0), jobId(1)]);
    expect(kinds([lease(0), lease(1)], { log: () => {}, maxArraySize: 2 })).toEqual([[jobId(0), jobId(1)]]);
    expect(batchProblem([lease(0), lease(2)], 2)).toMatch(/MaxArraySize 2/);
  });

  it("keeps a batch of one as an array (a retry of one failed element)", () => {
    const retry = lease(7, { attempt: 2, epoch: 3, batch: { id: OTHER, index: 0, size: 1, maxParallel: 3 } });
    expect(kinds([retry])).toEqual([[jobId(7)]]);
  });
});

const T = "2026-11-30T03:37:06";
const squeueRow = (id: string, state: string, comment: string) => {
  const [array, task] = id.includes("_") ? id.split("_") : [id, "N/A"];
  return `${id}|${id.replace(/_.*/, "")}|${array}|${task}|${state}|None|cpu|${T}|${comment}`;
};
const sacctRow = (id: string, state: string, comment: string) =>
  `${id}|${id.replace(/_.*/, "")}|${state}|0:0|${T}|${T}|${T}|cpu|${comment}`;
const rowsOf = (rows: { slurmJobId: string; comment: string | null }[]) =>
  rows.map((r) => ({ id: r.slurmJobId, comment: r.comment }));

describe("finding an earlier submission of a sweep element", () => {
  const lookups = [0, 1, 2, 3].map((i) => ({
    jobId: jobId(i),
    attempt: 1,
    since: 0,
    batch: { id: BAT, index: i },
  }));

  it("finds each element as <array>_<index> in squeue's one-row-per-task listing of its batch's array", () => {
    const rows = parseSqueue(
      [
        squeueRow("77_0", "RUNNING", `slurmgate:batch:${BAT}`),
        squeueRow("77_2", "PENDING", `slurmgate:batch:${BAT}`),
        squeueRow("78_1", "PENDING", `slurmgate:batch:${OTHER}`),
        squeueRow("79", "PENDING", `slurmgate:${jobId(1)}:2`),
      ].join("\n"),
    );
    expect(Object.fromEntries(matchTagged(rowsOf(rows), lookups))).toEqual({
      [jobId(0)]: "77_0",
      [jobId(2)]: "77_2",
    });
  });

  it("finds elements inside sacct's pending range, and an element submitted on its own by its job tag", () => {
    const acct = parseSacct({
      code: 0,
      stdout: [
        sacctRow("77_[0,2-3%2]", "PENDING", `slurmgate:batch:${BAT}`),
        sacctRow("80", "COMPLETED", `slurmgate:${jobId(1)}:1`),
      ].join("\n"),
      stderr: "",
    });
    if (!acct.ok) {
      throw new Error(acct.message);
    }
    expect(Object.fromEntries(matchTagged(rowsOf(acct.value), lookups))).toEqual({
      [jobId(0)]: "77_0",
      [jobId(1)]: "80",
      [jobId(2)]: "77_2",
      [jobId(3)]: "77_3",
    });
  });

  it("never takes another batch's array, an index the array lacks, a tag that only starts the same, or a malformed id", () => {
    const rows = [
      { id: "90_5", comment: `slurmgate:batch:${BAT}` },
      { id: "91_0", comment: `slurmgate:batch:${BAT}x` },
      { id: "92_1", comment: `slurmgate:batch:${OTHER}` },
      { id: "93_x2", comment: `slurmgate:batch:${BAT}` },
      { id: "94_3", comment: null },
    ];
    expect(matchTagged(rows, lookups).size).toBe(0);
  });
});
