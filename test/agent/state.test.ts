/**
 * The agent's state file: a snapshot plus an append-only journal that survives a crash at any
 * point, including mid-append.
 */
import { appendFileSync, existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { beganSubmitting, submissionReported, submitted } from "../../agent/job-life.ts";
import type { Lease } from "../../agent/gateway-api.ts";
import { type TrackedJob, openStateStore } from "../../agent/state.ts";

const job = (jobId: string, extra: Partial<TrackedJob> = {}): TrackedJob => ({
  jobId,
  epoch: 1,
  attempt: 1,
  owner: "alice",
  jobDir: `/shared/alice/${jobId}`,
  phase: "submitting",
  slurmJobId: null,
  submittedAt: 1,
  reported: null,
  missingSince: null,
  logOffsets: { stdout: 0, stderr: 0 },
  cancelRequested: false,
  isArray: false,
  ...extra,
});

describe("agent state store", () => {
  it("remembers every change across a restart without a clean shutdown", () => {
    const path = join(mkdtempSync(join(tmpdir(), "sg-state-")), "state.json");
    const first = openStateStore(path);
    first.setAgentId("host-1");
    first.put(job("job_a"));
    first.put(job("job_b"));
    first.put(job("job_a", { phase: "submitted", slurmJobId: "42" }));
    first.remove("job_b");
    // No close, no flush: a SIGKILL here loses nothing.
    const second = openStateStore(path);
    expect(second.state.agentId).toBe("host-1");
    expect(second.all()).toEqual([job("job_a", { phase: "submitted", slurmJobId: "42" })]);
  });

  it("ignores a torn last journal line (a crash mid-append)", () => {
    const path = join(mkdtempSync(join(tmpdir(), "sg-state-")), "state.json");
    const first = openStateStore(path);
    first.put(job("job_a"));
    appendFileSync(`${path}.journal`, '{"put":{"jobId":"job_');
    const second = openStateStore(path);
    expect(second.all().map((j) => j.jobId)).toEqual(["job_a"]);
  });

  it("writes a batch in one append and folds the journal into the snapshot as it grows", () => {
    const path = join(mkdtempSync(join(tmpdir(), "sg-state-")), "state.json");
    const store = openStateStore(path);
    store.batch(() => {
      for (let i = 0; i < 10; i++) {
        store.put(job(`job_${i}`));
      }
    });
    expect(readFileSync(`${path}.journal`, "utf8").trim().split("\n")).toHaveLength(10);
    for (let i = 0; i < 200; i++) {
      store.put(job("job_0", { missingSince: i }));
    }
    expect(existsSync(`${path}.journal`) ? readFileSync(`${path}.journal`, "utf8").split("\n").length : 0).toBeLessThan(
      200,
    );
    expect(openStateStore(path).get("job_0")?.missingSince).toBe(199);
    expect(JSON.parse(readFileSync(path, "utf8")).jobs.job_9.jobId).toBe("job_9");
  });

  it("as thousands of jobs arrive one by one, folds the journal a bounded number of times and loses none", () => {
    const path = join(mkdtempSync(join(tmpdir(), "sg-state-")), "state.json");
    const store = openStateStore(path);
    let folds = 0;
    let lines = 0;
    for (let i = 0; i < 3000; i++) {
      store.put(job(`job_${i}`));
      const now = existsSync(`${path}.journal`) ? readFileSync(`${path}.journal`, "utf8").split("\n").length - 1 : 0;
      if (now < lines) {
        folds++;
      }
      lines = now;
      // Never more than a few changes per job the snapshot holds, plus a fixed slack.
      expect(lines).toBeLessThanOrEqual(64 + 4 * (i + 1));
    }
    expect(folds).toBeGreaterThan(0);
    expect(folds).toBeLessThan(10);
    const reopened = openStateStore(path);
    expect(Object.keys(reopened.state.jobs)).toHaveLength(3000);
    expect(reopened.get("job_2999")?.jobId).toBe("job_2999");
  });

  describe("the Slurm-id record refers to the submitting record", () => {
    const lease = (jobId: string, epoch = 1): Lease =>
      ({
        jobId,
        epoch,
        attempt: 1,
        owner: "alice",
        leaseExpiresAt: "2026-12-01T00:00:00.000Z",
        spec: { command: ["python", "train.py", "--lr", "0.1"], env: { SEED: "7" }, resources: { time: "10:00" } },
      }) as unknown as Lease;
    const journalLines = (path: string) =>
      readFileSync(`${path}.journal`, "utf8")
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l));

    it("is written small, and replay reconstructs the same state as the whole record did", () => {
      const path = join(mkdtempSync(join(tmpdir(), "sg-state-")), "state.json");
      const store = openStateStore(path);
      const records: TrackedJob[] = [];
      for (const id of ["job_a", "job_b", "job_c"]) {
        records.push(beganSubmitting(lease(id), `/shared/alice/${id}`, 1000));
        store.put(records.at(-1)!);
      }
      store.put(submitted(records[0]!, "101"));
      store.put(submitted(records[2]!, "103"));
      store.put(submissionReported(submitted(records[0]!, "101")));
      const lines = journalLines(path);
      expect(lines[3]).toEqual({ submitted: { jobId: "job_a", epoch: 1, slurmJobId: "101" } });
      expect(lines[4]).toEqual({ submitted: { jobId: "job_c", epoch: 1, slurmJobId: "103" } });
      expect(JSON.stringify(lines[3]).length).toBeLessThan(JSON.stringify(lines[0]).length / 3);
      // What the whole records would have given, in memory and after a restart.
      const expected = {
        job_a: submissionReported(submitted(records[0]!, "101")),
        job_b: records[1],
        job_c: submitted(records[2]!, "103"),
      };
      expect(store.state.jobs).toEqual(expected);
      expect(openStateStore(path).state.jobs).toEqual(JSON.parse(JSON.stringify(expected)));
      // The restart compacted: the snapshot holds whole records.
      expect(JSON.parse(readFileSync(path, "utf8")).jobs.job_c).toMatchObject({
        phase: "submitted",
        slurmJobId: "103",
        lease: { spec: { command: ["python", "train.py", "--lr", "0.1"] } },
      });
    });

    it("finds its submitting record in the snapshot after a compaction in between", () => {
      const path = join(mkdtempSync(join(tmpdir(), "sg-state-")), "state.json");
      const store = openStateStore(path);
      const record = beganSubmitting(lease("job_a"), "/shared/alice/job_a", 1000);
      store.put(record);
      for (let i = 0; i < 100; i++) {
        store.put(job("job_filler", { missingSince: i })); // enough to fold the journal into the snapshot
      }
      store.put(submitted(record, "101"));
      expect(journalLines(path).at(-1)).toEqual({ submitted: { jobId: "job_a", epoch: 1, slurmJobId: "101" } });
      expect(openStateStore(path).get("job_a")).toMatchObject({ phase: "submitted", slurmJobId: "101" });
    });

    it("writes a whole record when more than the Slurm id changed", () => {
      const path = join(mkdtempSync(join(tmpdir(), "sg-state-")), "state.json");
      const store = openStateStore(path);
      const record = beganSubmitting(lease("job_a"), "/shared/alice/job_a", 1000);
      store.put(record);
      store.put({ ...submitted(record, "101"), cancelRequested: true });
      expect(journalLines(path).at(-1)).toHaveProperty("put.cancelRequested", true);
      expect(openStateStore(path).get("job_a")).toMatchObject({ slurmJobId: "101", cancelRequested: true });
    });

    it("a torn small record leaves the job submitting: looked up by tag, never submitted blindly", () => {
      const path = join(mkdtempSync(join(tmpdir(), "sg-state-")), "state.json");
      const store = openStateStore(path);
      store.put(beganSubmitting(lease("job_a"), "/shared/alice/job_a", 1000));
      appendFileSync(`${path}.journal`, '{"submitted":{"jobId":"job_a","epo');
      const after = openStateStore(path);
      expect(after.get("job_a")).toMatchObject({ phase: "submitting", slurmJobId: null, lease: { jobId: "job_a" } });
    });

    it("a small record without its submitting record (corrupt line) or for another epoch is ignored, no crash", () => {
      const path = join(mkdtempSync(join(tmpdir(), "sg-state-")), "state.json");
      const store = openStateStore(path);
      store.put(beganSubmitting(lease("job_b", 3), "/shared/alice/job_b", 1000));
      appendFileSync(
        `${path}.journal`,
        [
          '{"put":{"jobId":"job_a","epoch":1,"pha\u0000garbage',
          '{"submitted":{"jobId":"job_a","epoch":1,"slurmJobId":"101"}}',
          '{"submitted":{"jobId":"job_b","epoch":2,"slurmJobId":"102"}}',
          '{"submitted":null}',
          '{"submitted":{"jobId":"job_b","epoch":3,"slurmJobId":7}}',
          "",
        ].join("\n"),
      );
      const after = openStateStore(path);
      // job_a is unknown here, as after any corrupt record: its next lease (a newer epoch) is looked up by tag.
      expect(after.get("job_a")).toBeUndefined();
      expect(after.get("job_b")).toMatchObject({ phase: "submitting", slurmJobId: null, epoch: 3 });
      expect(Object.keys(after.state.jobs)).toEqual(["job_b"]);
    });
  });
});
