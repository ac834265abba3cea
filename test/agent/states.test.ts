import { describe, expect, it } from "vitest";
import { SLURM_STATES, normalizeSlurmState, toJobState } from "../../agent/slurm/states.ts";

describe("toJobState", () => {
  it.each([
    ["PENDING", "pending"],
    ["CONFIGURING", "running"],
    ["RUNNING", "running"],
    ["COMPLETING", "running"],
    ["SUSPENDED", "running"],
    ["STAGE_OUT", "running"],
    ["COMPLETED", "completed"],
    ["FAILED", "failed"],
    ["TIMEOUT", "timeout"],
    ["DEADLINE", "timeout"],
    ["OUT_OF_MEMORY", "out_of_memory"],
    ["CANCELLED", "cancelled"],
    ["CANCELLED by 0", "cancelled"],
    ["CANCELLED by 1000", "cancelled"],
    ["NODE_FAIL", "node_fail"],
    ["BOOT_FAIL", "node_fail"],
    ["PREEMPTED", "preempted"],
    ["REQUEUED", "pending"],
    ["REQUEUE_HOLD", "pending"],
    ["RESIZING", "running"],
    ["CA", "cancelled"],
    ["CD", "completed"],
    ["OOM", "out_of_memory"],
    ["RUNNING+", "running"],
  ])("%s → %s", (raw, state) => {
    expect(toJobState(raw)).toBe(state);
  });

  it.each(["", "UNKNOWN", "completed-ish", "DONE", "COMPLETEDX"])("unknown %j → null (never completed)", (raw) => {
    expect(toJobState(raw)).toBeNull();
  });

  it("maps every known Slurm state", () => {
    for (const s of SLURM_STATES) {
      expect(normalizeSlurmState(s)).toBe(s);
      expect(toJobState(s)).not.toBeNull();
    }
  });
});
