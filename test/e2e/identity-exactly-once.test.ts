/**
 * A site agent keeps the exactly-once guarantee, as root (submitting with --uid/--gid) and as a
 * service account with sudo: SIGKILLed before sbatch, right after it, or before reporting, then
 * restarted on its state file or replaced by another site agent, every job completes as its user
 * with exactly one Slurm job carrying its tag.
 */
import { chmodSync, writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type E2E, slurm, startE2E } from "./harness.ts";
import { type PosixUser, ensurePosixUser, ensureSudoRule, spawnAgentAs } from "./posix-users.ts";
import { varTmpDir } from "../helpers/var-tmp.ts";

let e2e: E2E;
let site: Record<string, string>;
let sudoSite: Record<string, string>;
let svc: PosixUser;

beforeAll(async () => {
  ensurePosixUser("sg-alice");
  svc = ensurePosixUser("sg-svc");
  ensureSudoRule("sg-svc", ["sg-alice", "sg-bob"]);
  e2e = await startE2E({ SLURMGATE_LEASE_SECONDS: "10" });
  const root = varTmpDir("sg-identity-once-");
  chmodSync(root, 0o755);
  const map = `${root}.map.json`;
  writeFileSync(map, JSON.stringify({ users: { alice: "sg-alice" } }), { mode: 0o644 });
  site = { SLURMGATE_USER_MAP: map, SLURMGATE_SHARED_ROOTS: root };
  const sudoRoot = varTmpDir("sg-identity-once-sudo-");
  chmodSync(sudoRoot, 0o1777);
  sudoSite = { SLURMGATE_USER_MAP: map, SLURMGATE_RUN_AS: "sudo", SLURMGATE_SHARED_ROOTS: sudoRoot };
}, 120_000);

afterAll(async () => {
  await e2e?.close();
});

/** Slurm jobs carrying this job's tag, whoever they belong to. */
function tagged(jobId: string): string[] {
  const queue = slurm("alpha", "squeue", ["-h", "--states=all", "-o", "%i|%k"]);
  const acct = slurm("alpha", "sacct", [
    "-X",
    "-P",
    "-n",
    "--allusers",
    "-o",
    "JobID,Comment",
    "--starttime=now-2hours",
  ]);
  const ids = `${queue}\n${acct}`
    .split("\n")
    .filter((line) => line.includes(`slurmgate:${jobId}:`))
    .map((line) => line.split("|")[0]!.trim());
  return [...new Set(ids)].sort();
}

const exitOf = (child: import("node:child_process").ChildProcess) =>
  new Promise<string | null>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      resolve(child.signalCode);
      return;
    }
    child.once("exit", (_code, signal) => resolve(signal));
  });

describe.each(["before-sbatch", "after-sbatch", "before-report"])("site agent killed %s", (step) => {
  it("restarted on the same state file, or replaced by another: 0 lost, 0 duplicates, still as sg-alice", async () => {
    const restarted = await e2e.submit(e2e.alice, {
      name: `crash-${step}`,
      cluster: "alpha",
      command: ["bash", "-c", "sleep 1; id -un"],
    });
    const first = e2e.startAgent("alpha", { ...site, SLURMGATE_TEST_CRASH_AT: step });
    expect(await exitOf(first.child)).toBe("SIGKILL");
    const second = e2e.startAgent("alpha", { ...site, SLURMGATE_STATE_FILE: first.stateFile });
    const done = await e2e.waitTerminal(e2e.alice, restarted.id, 120_000);
    await second.stop();
    expect(done.state).toBe("completed");
    expect(await e2e.logs(e2e.alice, restarted.id)).toBe("sg-alice\n");
    expect(tagged(restarted.id)).toEqual([done.slurmJobId]);

    const takenOver = await e2e.submit(e2e.alice, {
      name: `takeover-${step}`,
      cluster: "alpha",
      command: ["id", "-un"],
    });
    const crashed = e2e.startAgent("alpha", { ...site, SLURMGATE_TEST_CRASH_AT: step });
    expect(await exitOf(crashed.child)).toBe("SIGKILL");
    const other = e2e.startAgent("alpha", site);
    const after = await e2e.waitTerminal(e2e.alice, takenOver.id, 120_000);
    await other.stop();
    expect(after.state).toBe("completed");
    expect(await e2e.logs(e2e.alice, takenOver.id)).toBe("sg-alice\n");
    expect(tagged(takenOver.id)).toEqual([after.slurmJobId]);
  }, 300_000);
});

describe.each(["before-sbatch", "after-sbatch", "before-report"])("sudo-mode site agent killed %s", (step) => {
  it("restarted on the same state file, or replaced by another: 0 lost, 0 duplicates, still as sg-alice", async () => {
    const start = (env: Record<string, string>) => spawnAgentAs(svc, e2e.agentEnv("alpha", { ...sudoSite, ...env }));
    const stateFile = (n: string) => `/home/${svc.name}/once-${step}-${n}-${Date.now()}.json`;

    const restarted = await e2e.submit(e2e.alice, {
      name: `sudo-crash-${step}`,
      cluster: "alpha",
      command: ["bash", "-c", "sleep 1; id -un"],
    });
    const file = stateFile("a");
    const first = start({ SLURMGATE_TEST_CRASH_AT: step, SLURMGATE_STATE_FILE: file });
    expect(await exitOf(first.child)).toBe("SIGKILL");
    const second = start({ SLURMGATE_STATE_FILE: file });
    const done = await e2e.waitTerminal(e2e.alice, restarted.id, 120_000);
    await second.stop();
    expect(done.state).toBe("completed");
    expect(await e2e.logs(e2e.alice, restarted.id)).toBe("sg-alice\n");
    expect(tagged(restarted.id)).toEqual([done.slurmJobId]);

    const takenOver = await e2e.submit(e2e.alice, {
      name: `sudo-takeover-${step}`,
      cluster: "alpha",
      command: ["id", "-un"],
    });
    const crashed = start({ SLURMGATE_TEST_CRASH_AT: step, SLURMGATE_STATE_FILE: stateFile("b") });
    expect(await exitOf(crashed.child)).toBe("SIGKILL");
    const other = start({ SLURMGATE_STATE_FILE: stateFile("c") });
    const after = await e2e.waitTerminal(e2e.alice, takenOver.id, 120_000);
    await other.stop();
    expect(after.state).toBe("completed");
    expect(await e2e.logs(e2e.alice, takenOver.id)).toBe("sg-alice\n");
    expect(tagged(takenOver.id)).toEqual([after.slurmJobId]);
  }, 300_000);
});
