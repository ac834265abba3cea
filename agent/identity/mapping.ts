/**
 * A site agent's mapping file: which slurmgate users it runs jobs for, as which POSIX accounts. It
 * lives on the cluster, is written by the site, and is never taken from the gateway.
 *
 * @example
 * {
 *   "minUid": 1000,
 *   "users": { "alice": "sg-alice", "bob": "sg-bob" }
 * }
 */
import { readFileSync, statSync } from "node:fs";
import { z } from "zod";
import { MAX_MAPPED_USERS, USER_NAME } from "../../schemas/index.ts";

/** POSIX login names as useradd accepts them by default (NAME_REGEX), at most 32 characters. */
const POSIX_NAME = /^[a-z_][a-z0-9_-]{0,30}[a-z0-9_$-]?$/;

export const UserMapping = z
  .object({
    minUid: z.number().int().min(1).default(1000), // accounts below this are system accounts; uid 0 is always refused
    users: z
      .record(z.string().regex(USER_NAME, "a slurmgate user name"), z.string().regex(POSIX_NAME, "a POSIX login name"))
      .refine((users) => Object.keys(users).length <= MAX_MAPPED_USERS, `at most ${MAX_MAPPED_USERS} users`),
  })
  .strict();
export type UserMapping = z.infer<typeof UserMapping>;

/** Parses mapping text; throws one line naming the bad entry. */
export function parseUserMapping(text: string, source = "mapping file"): UserMapping {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new Error(`${source}: not JSON (${(err as Error).message})`);
  }
  const parsed = UserMapping.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(`${source}: ${issue?.path.join(".") || "(top)"}: ${issue?.message ?? "invalid"}`);
  }
  return parsed.data;
}

/**
 * Reads the mapping file. Whoever can write it decides whose account a job runs as, so it must not
 * be writable by anyone but its owner, and that owner must be the agent's account or root.
 */
export function loadUserMapping(path: string, agentUid: number): UserMapping {
  const info = statSync(path);
  if (info.mode & 0o022) {
    throw new Error(`${path} is writable by others (mode ${(info.mode & 0o777).toString(8)}); run: chmod go-w ${path}`);
  }
  if (info.uid !== 0 && info.uid !== agentUid) {
    throw new Error(`${path} belongs to uid ${info.uid}; it must belong to root or to the agent's account`);
  }
  return parseUserMapping(readFileSync(path, "utf8"), path);
}
