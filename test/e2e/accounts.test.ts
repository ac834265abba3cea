/**
 * Slurm accounts on real Slurm: the grant offers `default` and `sg-other`, but the POSIX account
 * the agent runs as is associated with `default` and not `sg-other`, and this test cluster does
 * not enforce associations. So only the agent's sacctmgr check stands between a `sg-other` job
 * and sbatch: it must refuse with account_not_associated, and no Slurm job may carry its tag.
 */
import { chmodSync, mkdtempSync, symlinkSync, writeFileSync } from "node:fs";
import { userInfo } from "node:os";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type E2E, slurm, slurmJobsTagged, startE2E } from "./harness.ts";

const ME = userInfo().username;
let e2e: E2E;

/** The accounts `user` is associated with on alpha, from sacctmgr itself. */
const assocOf = (user: string) =>
  slurm("alpha", "sacctmgr", ["-n", "-P", "show", "assoc", `user=${user}`, "cluster=alpha", "format=account"])
    .split("\n")
    .filter(Boolean);

beforeAll(async () => {
  if (
    !slurm("alpha", "sacctmgr", [
      "-n",
      "-P",
      "show",
      "assoc",
      "account=sg-other",
      "cluster=alpha",
      "format=account",
    ]).trim()
  ) {
    slurm("alpha", "sacctmgr", ["-i", "add", "account", "sg-other", "cluster=alpha"]);
  }
  if (!assocOf(ME).includes("default")) {
    slurm("alpha", "sacctmgr", ["-i", "add", "user", ME, "account=default", "cluster=alpha"]);
  }
  if (assocOf(ME).includes("sg-other")) {
    slurm("alpha", "sacctmgr", ["-i", "delete", "user", `name=${ME}`, "account=sg-other", "cluster=alpha"]);
  }
  e2e = await startE2E();
  const res = await fetch(`${e2e.url}/v1/admin/grants`, {
    method: "POST",
    headers: { authorization: `Bearer ${e2e.admin}`, "content-type": "application/json" },
    body: JSON.stringify({
      user: "alice",
      cluster: "alpha",
      accounts: ["default", "sg-other"],
      defaultAccount: "default",
    }),
  });
  expect(res.status).toBe(200);
}, 60_000);

afterAll(async () => {
  await e2e?.close();
});

const job = (extra: Record<string, unknown> = {}) => ({
  name: "acct",
  cluster: "alpha",
  partition: "cpu",
  command: ["true"],
  ...extra,
});

describe("the agent re-checks the account against sacctmgr", () => {
  it("gives the job back, without sbatch, while sacctmgr fails", async () => {
    // Every Slurm command is the real one except sacctmgr, which fails as a down slurmdbd does.
    const bin = mkdtempSync(join(tmpdir(), "sg-bin-"));
    for (const cmd of ["sbatch", "squeue", "sacct", "scontrol", "scancel", "sinfo"]) {
      symlinkSync(`/usr/bin/${cmd}`, join(bin, cmd));
    }
    writeFileSync(
      join(bin, "sacctmgr"),
      "#!/bin/sh\necho 'sacctmgr: error: Problem talking to the database: Connection refused' >&2\nexit 1\n",
    );
    chmodSync(join(bin, "sacctmgr"), 0o755);
    const agent = e2e.startAgent("alpha", { SLURMGATE_SLURM_BIN: bin });
    await e2e.waitClustersAlive(60_000, ["alpha"]);
    const submitted = await e2e.submit(e2e.alice, job({ account: "default" }));
    const back = await e2e.waitFor(e2e.alice, submitted.id, (j) => /sacctmgr/.test(j.reason ?? ""), 60_000);
    expect(back.state).toBe("queued");
    expect(back.reason).toMatch(/Connection refused/);
    await agent.stop();
    expect(slurmJobsTagged("alpha", submitted.id)).toEqual([]);
    await fetch(`${e2e.url}/v1/jobs/${submitted.id}/cancel`, {
      method: "POST",
      headers: { authorization: `Bearer ${e2e.alice}` },
    });
  }, 120_000);

  it("rejects an account the user is not associated with, naming the accounts on offer; no sbatch", async () => {
    e2e.startAgent("alpha");
    await e2e.waitClustersAlive(60_000, ["alpha"]);
    const refused = await e2e.submit(e2e.alice, job({ account: "sg-other" }));
    const done = await e2e.waitTerminal(e2e.alice, refused.id, 90_000);
    expect(done.state).toBe("rejected");
    expect(done.code).toBe("account_not_associated");
    expect(done.reason).toContain(`${ME} may not charge account 'sg-other' on alpha`);
    for (const account of assocOf(ME)) {
      expect(done.reason).toContain(account);
    }
    expect(slurmJobsTagged("alpha", refused.id)).toEqual([]);
  }, 120_000);

  it("runs a job charging the grant's default account, and Slurm charges it", async () => {
    const ok = await e2e.submit(e2e.alice, job());
    const done = await e2e.waitTerminal(e2e.alice, ok.id, 90_000);
    expect(done.state, done.reason ?? "").toBe("completed");
    const [slurmId] = slurmJobsTagged("alpha", ok.id);
    expect(slurmId).toBeDefined();
    const charged = slurm("alpha", "sacct", ["-X", "-n", "-P", "-j", slurmId!, "-o", "Account"]).trim();
    // Accounting may lag a second behind the job's end; when it has the row, it says default.
    if (charged) {
      expect(charged).toBe("default");
    }
  }, 120_000);
});
