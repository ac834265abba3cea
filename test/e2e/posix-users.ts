/**
 * POSIX accounts for the identity tests, created idempotently (the clusters' daemons need no
 * restart: slurmd looks users up when a job starts). Each gets a home, as sites do.
 */
import { execFileSync } from "node:child_process";

export const POSIX_USERS = ["sg-alice", "sg-bob"] as const;

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
