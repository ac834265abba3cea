/**
 * Giving a prepared job directory to the account the job runs as, and the checks that keep a user
 * from steering the agent's writes through a symlink or a directory someone else made.
 *
 * Site layout: `<root>/<owner>` belongs to root, mode 0711 (others may pass, not list or create), and
 * `<root>/<owner>/<job id>` belongs to the job's account, mode 0700, with everything in it.
 * Personal layout: `<root>/<owner>` must belong to the agent's own account.
 * Sudo layout: `<root>/<owner>` and everything under it belong to the job's account from birth
 * (created through sudo as that account); `<root>/<owner>` must belong to it.
 */
import { agentAccount } from "./agent-account.ts";
import { posix } from "node:path";
import type { Executor } from "../executor/types.ts";
import type { Roots } from "../paths.ts";
import { IdentityRefusal, type RunAs } from "./guard.ts";

const TOOLS_ENV = { env: { PATH: "/usr/bin:/bin" } };

async function ownerUid(executor: Executor, path: string): Promise<number | null> {
  const result = await executor.run("stat", ["-c", "%u", "--", path], TOOLS_ENV);
  return result.code === 0 ? Number(result.stdout.trim()) : null;
}

async function must(executor: Executor, cmd: string, args: string[]): Promise<void> {
  const result = await executor.run(cmd, args, TOOLS_ENV);
  if (result.code !== 0) {
    throw new Error(`${cmd} ${args.join(" ")}: ${result.stderr.trim() || `exit ${result.code}`}`);
  }
}

/** `<root>/<owner>` must belong to `uid`, or another account could rename or replace what is in it. */
async function mustOwn(executor: Executor, userDir: string, uid: number) {
  const actual = await ownerUid(executor, userDir);
  if (actual !== uid) {
    throw new IdentityRefusal(
      "policy_rejected",
      `${userDir} belongs to uid ${actual}, not to the account the job runs as (uid ${uid}); remove it or fix its owner`,
    );
  }
}

/** The job directory must be exactly `<root>/<owner>/<job id>`: no symlink anywhere on the way. */
async function exactPath(executor: Executor, roots: Roots, owner: string, jobDir: string, jobId: string) {
  const expected = posix.join(roots.real[0]!, owner, jobId);
  const real = await executor.realpath(expected);
  if (real !== expected || jobDir !== expected) {
    throw new IdentityRefusal("path_outside_roots", `the job directory ${expected} resolves to ${real ?? "nothing"}`);
  }
  const parent = await executor.stat(posix.dirname(expected));
  if (!parent?.isDirectory || parent.isSymbolicLink) {
    throw new IdentityRefusal("path_outside_roots", `${posix.dirname(expected)} is not a plain directory`);
  }
}

/**
 * `<root>/<owner>` must belong to `uid`: the personal agent's own account, or in sudo mode the job's
 * account, so no other user can read or swap the job directories in it.
 */
export async function checkOwnedJobDir(
  executor: Executor,
  roots: Roots,
  owner: string,
  jobDir: string,
  jobId: string,
  uid: number,
) {
  await exactPath(executor, roots, owner, jobDir, jobId);
  const userDir = posix.join(roots.real[0]!, owner);
  await mustOwn(executor, userDir, uid);
}

/**
 * Sudo mode, before anything is created: an existing `<root>/<owner>` must already be the job
 * account's. In a world-writable shared root another user could have made it first, and a job
 * directory created inside theirs could be renamed or replaced by them.
 */
export async function checkUserDirBefore(executor: Executor, roots: Roots, owner: string, uid: number) {
  const userDir = posix.join(roots.real[0]!, owner);
  if (!(await executor.stat(userDir))) {
    return;
  }
  await mustOwn(executor, userDir, uid);
}

/** A personal agent: `<root>/<owner>` must be its own. */
export async function checkPersonalJobDir(
  executor: Executor,
  roots: Roots,
  owner: string,
  jobDir: string,
  jobId: string,
) {
  await checkOwnedJobDir(executor, roots, owner, jobDir, jobId, process.getuid?.() ?? -1);
}

/** A site agent, before writing anything into the job directory: the path is what it seems. */
export async function checkSiteJobDir(executor: Executor, roots: Roots, owner: string, jobDir: string, jobId: string) {
  await exactPath(executor, roots, owner, jobDir, jobId);
  const userDir = posix.join(roots.real[0]!, owner);
  // Root keeps the user's parent directory, so the user cannot rename or replace their job directories.
  await must(executor, "chown", ["-h", "0:0", "--", userDir]);
  await must(executor, "chmod", ["0711", "--", userDir]);
}

/** After every file is written: the job directory and its files become the job account's, 0700. */
export async function handOver(executor: Executor, jobDir: string, runAs: RunAs) {
  await must(executor, "chown", ["-R", "-P", `${runAs.uid}:${runAs.gid}`, "--", jobDir]);
  await must(executor, "chmod", ["0700", "--", jobDir]);
}

/** sbatch options that make root's submission the user's job (Slurm ≥ 17.x; present in 22.05). */
export function sbatchIdentityArgs(runAs: RunAs | null): string[] {
  return runAs ? [`--uid=${runAs.uid}`, `--gid=${runAs.gid}`] : [];
}

/** The line a job's events carry: which agent ran it, as which account. */
export function describeRunAs(agentId: string, runAs: RunAs | null, sshUser?: string): string {
  if (runAs) {
    return `submitted by agent ${agentId} as ${runAs.name} (uid ${runAs.uid}, gid ${runAs.gid})`;
  }
  if (sshUser !== undefined) {
    return `submitted by agent ${agentId} as its SSH account ${sshUser}`;
  }
  const me = agentAccount();
  return `submitted by agent ${agentId} as ${me.username} (uid ${me.uid}, gid ${me.gid})`;
}
