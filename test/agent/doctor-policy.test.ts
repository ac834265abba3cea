/**
 * `slurmgate agent doctor`'s comparison of the agent's roots and allow-list with the admin's
 * cluster config: one line per difference, nothing when they agree.
 */
import { describe, expect, it } from "vitest";
import { policyDisagreements } from "../../agent/doctor-policy.ts";

const cluster = (sharedRoots: string[], allowedSbatchArgs: string[]) => ({
  name: "hpc",
  sharedRoots,
  allowedSbatchArgs,
});

describe("policyDisagreements", () => {
  it("says nothing when the agent and the cluster config agree", () => {
    const same = { sharedRoots: ["/scratch", "/data"], allowedSbatchArgs: ["--constraint", "--exclusive"] };
    expect(policyDisagreements(same, cluster(["/scratch", "/data"], ["--exclusive", "--constraint"]))).toEqual([]);
    expect(policyDisagreements(same, cluster(["/scratch/", "/data//"], ["--exclusive", "--constraint"]))).toEqual([]);
  });

  it("names each difference once, on its own line", () => {
    const lines = policyDisagreements(
      { sharedRoots: ["/scratch", "/agent-only"], allowedSbatchArgs: ["--constraint", "--begin"] },
      cluster(["/scratch", "/config-only"], ["--constraint", "--exclusive", "--hold"]),
    );
    expect(lines).toEqual([
      "shared root /agent-only is in SLURMGATE_SHARED_ROOTS but not in hpc's sharedRoots",
      "shared root /config-only is in hpc's sharedRoots but not in SLURMGATE_SHARED_ROOTS: this agent refuses paths there",
      "--begin is in SLURMGATE_ALLOWED_SBATCH_ARGS but not in hpc's allowedSbatchArgs: the gateway refuses it",
      "--exclusive is in hpc's allowedSbatchArgs but not in SLURMGATE_ALLOWED_SBATCH_ARGS: the gateway refuses it, as this agent would",
      "--hold is in hpc's allowedSbatchArgs but slurmgate sets it itself: it is never offered",
    ]);
    expect(lines.every((l) => !l.includes("\n"))).toBe(true);
  });

  it("reports roots in another order only as where job directories go", () => {
    expect(
      policyDisagreements({ sharedRoots: ["/a", "/b"], allowedSbatchArgs: [] }, cluster(["/b", "/a"], [])),
    ).toEqual(["job directories go under /a (first of SLURMGATE_SHARED_ROOTS), but hpc's sharedRoots names /b first"]);
  });

  it("reports everything the cluster config offers when the agent allows nothing", () => {
    expect(
      policyDisagreements({ sharedRoots: ["/a"], allowedSbatchArgs: [] }, cluster(["/a"], ["--constraint"])),
    ).toHaveLength(1);
  });
});
