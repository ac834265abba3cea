/**
 * A site agent run as an unprivileged service account (sg-svc) with the documented sudoers rule, on
 * real Slurm: Alice's and Bob's jobs run as their own uids in directories born theirs; an account
 * the mapping names but the sudo Runas list lacks is refused with `sudo_refused` before anything
 * exists; a directory another user made first is refused; cancels reach every user's jobs.
 */
import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, lstatSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type E2E, slurm, startE2E } from "./harness.ts";
import { type PosixUser, type UserAgent, ensurePosixUser, ensureSudoRule, spawnAgentAs } from "./posix-users.ts";
import { varTmpDir } from "../helpers/var-tmp.ts";

let e2e: E2E;
let alice: PosixUser;
let bob: PosixUser;
let svc: PosixUser;
let root: string;
let agent: UserAgent;
const tokens: Record<string, string> = {};

/** Slurm jobs carrying this job's tag, whoever they belong to. */
function slurmJobsTagged(jobId: string): string[] {
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
  return `${queue}\n${acct}`.split("\n").filter((line) => line.includes(`slurmgate:${jobId}:`));
}

/** Every path under `dir` (as root sees it) with its owner uid. */
function owners(dir: string): { path: string; uid: number }[] {
  return readdirSync(dir, { recursive: true, encoding: "utf8" }).map((rel) => ({
    path: rel,
    uid: lstatSync(join(dir, rel)).uid,
  }));
}

const asUser = (user: PosixUser, cmd: string, args: string[]) =>
  execFileSync("setpriv", [`--reuid=${user.uid}`, `--regid=${user.gid}`, "--init-groups", cmd, ...args]);

async function stateOf(id: string) {
  return (await e2e.job(e2e.admin, id)) as unknown as {
    state: string;
    code: string | null;
    reason: string | null;
    events: { detail?: string }[];
  };
}

beforeAll(async () => {
  alice = ensurePosixUser("sg-alice");
  bob = ensurePosixUser("sg-bob");
  ensurePosixUser("sg-carol");
  svc = ensurePosixUser("sg-svc");
  ensureSudoRule("sg-svc", ["sg-alice", "sg-bob"]);
  e2e = await startE2E();
  for (const name of ["carol", "dave"]) {
    tokens[name] = await e2e.gw.user(name);
    await e2e.gw.grant(name, "alpha");
  }
  root = varTmpDir("sg-identity-sudo-");
  chmodSync(root, 0o1777); // users create their own <root>/<user>, as on scratch file systems
  const map = `${root}.map.json`;
  writeFileSync(
    map,
    JSON.stringify({ users: { alice: "sg-alice", bob: "sg-bob", carol: "sg-carol", dave: "sg-bob" } }),
    { mode: 0o644 },
  );
  agent = spawnAgentAs(
    svc,
    e2e.agentEnv("alpha", {
      SLURMGATE_USER_MAP: map,
      SLURMGATE_RUN_AS: "sudo",
      SLURMGATE_SHARED_ROOTS: root,
      SLURMGATE_SECRET_API_KEY: "s3cr3t-value",
      HOME: `/home/${svc.name}`,
      USER: svc.name,
      SLURMGATE_STATE_FILE: `/home/${svc.name}/agent-alpha-${Date.now()}.json`,
    }),
  );
  await e2e.waitClustersAlive(120_000, ["alpha"]).catch((err: Error) => {
    throw new Error(`${err.message}\nagent output:\n${agent.logs()}`);
  });
}, 200_000);

afterAll(async () => {
  await agent?.stop();
  await e2e?.close();
});

describe("a site agent as a service account with sudo", () => {
  it("runs Alice's and Bob's jobs as their own uids; everything in <root>/<user> is theirs from birth", async () => {
    const a = await e2e.submit(e2e.alice, {
      name: "sudo-alice",
      cluster: "alpha",
      secrets: ["API_KEY"],
      script: `printf '{"uid":%s,"gid":%s,"key":"%s"}' "$(id -u)" "$(id -g)" "$API_KEY" > "$SLURMGATE_RESULT"; id -un; printf 'bin\\001\\377\\n'`,
    });
    const aDone = await e2e.waitTerminal(e2e.alice, a.id, 180_000);
    expect([aDone.state, aDone.result]).toEqual(["completed", { uid: alice.uid, gid: alice.gid, key: "s3cr3t-value" }]);
    // Logs come back through sudo as the user, byte for byte.
    expect(await e2e.logs(e2e.alice, a.id)).toBe("sg-alice\nbin\u0001\ufffd\n");
    const aDir = join(root, "alice", a.id);
    const info = statSync(aDir);
    expect([info.uid, info.gid, info.mode & 0o777]).toEqual([alice.uid, alice.gid, 0o700]);
    expect([statSync(join(root, "alice")).uid, statSync(join(root, "alice")).mode & 0o777]).toEqual([alice.uid, 0o700]);
    expect(statSync(join(aDir, "job.sbatch")).mode & 0o077).toBe(0);
    const accountedUser = () =>
      slurm("alpha", "sacct", ["-j", aDone.slurmJobId!, "-X", "-n", "-P", "-o", "User,UID"]).trim();
    await expect.poll(accountedUser, { timeout: 30_000, interval: 1_000 }).toBe(`sg-alice|${alice.uid}`);
    const events = (await stateOf(a.id)).events.map((e) => e.detail ?? "").join("\n");
    expect(events).toContain(`as sg-alice (uid ${alice.uid}, gid ${alice.gid})`);

    const b = await e2e.submit(e2e.bob, {
      name: "sudo-peek",
      cluster: "alpha",
      script: `peek=$(ls ${aDir} 2>&1 | head -c 200 | tr -d '"\\\\\n'); printf '{"uid":%s,"peek":"%s"}' "$(id -u)" "$peek" > "$SLURMGATE_RESULT"`,
    });
    const bDone = await e2e.waitTerminal(e2e.bob, b.id, 180_000);
    expect(bDone.state).toBe("completed");
    const peeked = bDone.result as { uid: number; peek: string };
    expect(peeked.uid).toBe(bob.uid);
    expect(peeked.peek).toContain("Permission denied");
    // The service account wrote nothing as itself anywhere under the root.
    expect(owners(root).filter((o) => o.uid === svc.uid)).toEqual([]);
  }, 400_000);

  it("refuses an account the mapping names but sudo does not allow: sudo_refused, nothing created, no Slurm job", async () => {
    const job = await e2e.submit(tokens.carol!, { name: "no-rule", cluster: "alpha", command: ["id"] });
    const done = await e2e.waitTerminal(tokens.carol!, job.id, 120_000);
    const state = await stateOf(job.id);
    expect([done.state, state.code]).toEqual(["rejected", "sudo_refused"]);
    expect(state.reason).toContain("add sg-carol to the Runas list");
    expect(state.reason).toContain("sg-svc ALL=(%slurmgate-users) NOPASSWD: /usr/bin/sbatch");
    expect(existsSync(join(root, "carol"))).toBe(false);
    expect(slurmJobsTagged(job.id)).toEqual([]);
  }, 200_000);

  it("refuses a job whose <root>/<user> another user made first, without writing into it", async () => {
    // Alice, in the world-writable root, makes dave's directory before dave's first job.
    asUser(alice, "mkdir", ["-m", "0777", join(root, "dave")]);
    const job = await e2e.submit(tokens.dave!, { name: "squatted", cluster: "alpha", command: ["id"] });
    const done = await e2e.waitTerminal(tokens.dave!, job.id, 120_000);
    const state = await stateOf(job.id);
    expect([done.state, state.code]).toEqual(["rejected", "policy_rejected"]);
    expect(state.reason).toContain(`belongs to uid ${alice.uid}`);
    expect(readdirSync(join(root, "dave"))).toEqual([]);
    expect(slurmJobsTagged(job.id)).toEqual([]);
  }, 200_000);

  it("cancels Alice's and Bob's running jobs, each as its own account", async () => {
    const jobs = [
      {
        token: e2e.alice,
        job: await e2e.submit(e2e.alice, { name: "long", cluster: "alpha", command: ["sleep", "300"] }),
      },
      { token: e2e.bob, job: await e2e.submit(e2e.bob, { name: "long", cluster: "alpha", command: ["sleep", "300"] }) },
    ];
    for (const { token, job } of jobs) {
      await e2e.waitFor(token, job.id, (j) => j.state === "running" || j.state === "pending", 120_000);
    }
    for (const { token, job } of jobs) {
      const res = await fetch(`${e2e.url}/v1/jobs/${job.id}/cancel`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}` },
      });
      expect(res.status).toBeLessThan(300);
    }
    for (const { token, job } of jobs) {
      const done = await e2e.waitTerminal(token, job.id, 120_000);
      expect([job.id, done.state]).toEqual([job.id, "cancelled"]);
      const slurmState = () =>
        slurm("alpha", "sacct", ["-j", done.slurmJobId!, "-X", "-n", "-P", "-o", "State"]).trim().split(" ")[0];
      await expect.poll(slurmState, { timeout: 30_000, interval: 1_000 }).toBe("CANCELLED");
    }
  }, 300_000);
});
