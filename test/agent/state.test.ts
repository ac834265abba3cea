/**
 * The agent's state file: a snapshot plus an append-only journal that survives a crash at any
 * point, including mid-append.
 */
import { appendFileSync, existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
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
});
