/**
 * POSIX accounts for the identity tests, created idempotently (the clusters' daemons need no
 * restart: slurmd looks users up when a job starts). Each gets a home, as sites do. `sg-svc` is the
 * service account a sudo-mode site agent runs as; `sg-carol` exists but is in no sudo Runas list.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { SUDO_RUNAS_GROUP, sudoersLines } from "../../agent/identity/sudo.ts";
import { REPO } from "./harness.ts";

export const POSIX_USERS = ["sg-alice", "sg-bob", "sg-carol", "sg-svc"] as const;

export type PosixUser = { name: string; uid: number; gid: number };

export function ensurePosixUser(name: string): PosixUser {
  const lookup = () => {
    try {
      return execFileSync("getent", ["passwd", name], { encoding: "utf8" }).trim();
    } catch {
      return "";
    }
  };
  if (!lookup()) {
    try {
      execFileSync("useradd", ["--create-home", "--shell", "/bin/bash", name], { stdio: "pipe" });
    } catch (err) {
      // Another test file may have created it at the same moment.
      if (!lookup()) {
        throw err;
      }
    }
  }
  const [, , uid, gid] = lookup().split(":");
  return { name, uid: Number(uid), gid: Number(gid) };
}

export const SUDOERS_DROP_IN = "/etc/sudoers.d/slurmgate-test";

/**
 * The documented sudoers rule for `account`, acting as the members of the Runas group (created with
 * `members` in it): written to a temporary file, checked with `visudo -cf`, then moved into place.
 */
export function ensureSudoRule(account: string, members: readonly string[]): void {
  execFileSync("groupadd", ["-f", SUDO_RUNAS_GROUP], { stdio: "pipe" });
  for (const member of members) {
    execFileSync("gpasswd", ["-a", member, SUDO_RUNAS_GROUP], { stdio: "pipe" });
  }
  const tmp = `${SUDOERS_DROP_IN}.${process.pid}.tmp`;
  writeFileSync(tmp, `${sudoersLines(account).join("\n")}\n`, { mode: 0o440 });
  execFileSync("visudo", ["-cf", tmp], { stdio: "pipe" });
  execFileSync("mv", ["-f", tmp, SUDOERS_DROP_IN]);
}

export type UserAgent = { child: ChildProcess; logs: () => string; stop: () => Promise<void> };

/** Runs the agent under `user`'s own uid, gid and groups (env from `e2e.agentEnv`). */
export function spawnAgentAs(
  user: PosixUser,
  env: Record<string, string>,
  /** The one-file agent as it ships (scripts/build-agent.ts), instead of the sources through tsx. */
  bundle?: string,
): UserAgent {
  const nodeBin = existsSync("/usr/bin/node") ? "/usr/bin/node" : process.execPath;
  const entry = bundle ? [bundle] : ["--import", "tsx", join(REPO, "agent/main.ts")];
  // --pdeathsig: the agent never outlives the test or bench process that started it, killed or not.
  const pdeath = "--pdeathsig=SIGTERM";
  const child = spawn(
    "setpriv",
    [`--reuid=${user.uid}`, `--regid=${user.gid}`, "--init-groups", pdeath, nodeBin, ...entry],
    {
      cwd: REPO,
      env: { HOME: `/home/${user.name}`, USER: user.name, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let output = "";
  child.stdout?.on("data", (d) => (output += d));
  child.stderr?.on("data", (d) => (output += d));
  return {
    child,
    logs: () => output,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) {
          resolve();
          return;
        }
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}
