/**
 * Re-validates the owner of every leased job against how this agent runs jobs, before anything is
 * written or submitted. The gateway is not trusted here: a row it (or whoever holds its database)
 * wrote for another user is refused with a stable code, never run.
 *
 *   self      every job runs as the agent's own account (single-tenant; the token is not a user's)
 *   personal  the token's user only, learnt from the gateway once and pinned for the process;
 *             SLURMGATE_AGENT_USER pins it without asking
 *   site      users the mapping file maps, to accounts `getent passwd` knows, uid ≥ minUid, never 0
 */
import type { AgentIdentity, RejectCode } from "../../schemas/index.ts";
import type { Executor } from "../executor/types.ts";
import type { UserMapping } from "./mapping.ts";

export type RunAs = { name: string; uid: number; gid: number };

export class IdentityRefusal extends Error {
  readonly code: RejectCode;
  constructor(code: RejectCode, message: string) {
    super(message);
    this.code = code;
  }
}

export type IdentityGuard = {
  readonly mode: AgentIdentity["mode"];
  /** What the inventory publishes: names only, never the POSIX side. */
  published(): AgentIdentity;
  /** False while a personal agent does not yet know its user (the gateway was unreachable): do not lease. */
  ready(): Promise<boolean>;
  /** The account to submit as (null: the agent's own), or throws IdentityRefusal. */
  check(owner: string): Promise<RunAs | null>;
  /** A site agent: the POSIX name `owner` maps to (no lookup, no checks); undefined when unmapped. */
  account?(owner: string): string | undefined;
};

/** Parses one `getent passwd` line: name:x:uid:gid:gecos:home:shell. */
export function parsePasswdLine(line: string): RunAs | null {
  const f = line.trim().split(":");
  const uid = Number(f[2]);
  const gid = Number(f[3]);
  if (f.length < 7 || !f[0] || !Number.isInteger(uid) || !Number.isInteger(gid) || f[2] === "" || f[3] === "") {
    return null;
  }
  return { name: f[0], uid, gid };
}

/**
 * An agent without a mapping file: personal when its token belongs to a user, else `self`. `learn`
 * asks the gateway who the token belongs to; the first answer is kept for the life of the process,
 * so a gateway that later claims otherwise changes nothing. SLURMGATE_AGENT_USER pins it outright.
 */
export function tokenGuard(options: {
  pinned?: string;
  learn: () => Promise<{ user: string | null } | undefined>;
  /** When set, a job's owner must also be this POSIX account's name. */
  posixUser?: string;
}): IdentityGuard {
  let user: string | null | undefined = options.pinned;
  const ready = async () => {
    if (user === undefined) {
      user = (await options.learn())?.user;
    }
    return user !== undefined;
  };
  return {
    get mode() {
      return user ? "personal" : "self";
    },
    published: () => ({ mode: user ? "personal" : "self" }),
    ready,
    async check(owner) {
      if (!(await ready())) {
        throw new Error("the agent does not know yet whose jobs it may run");
      }
      if (user && owner !== user) {
        throw new IdentityRefusal(
          "owner_not_agent_user",
          `this personal agent runs only ${user}'s jobs; the job belongs to ${owner}`,
        );
      }
      if (options.posixUser !== undefined && owner !== options.posixUser) {
        throw new IdentityRefusal(
          "owner_not_agent_user",
          `this agent runs as the POSIX account ${options.posixUser}, which is not ${owner}`,
        );
      }
      return null;
    },
  };
}

/** A site agent: maps, looks the account up, and refuses root and system accounts. */
export function siteGuard(mapping: UserMapping, executor: Executor): IdentityGuard {
  const names = Object.keys(mapping.users).sort();
  return {
    mode: "site",
    published: () => ({ mode: "site", users: names }),
    ready: async () => true,
    account: (owner) => (Object.hasOwn(mapping.users, owner) ? mapping.users[owner] : undefined),
    async check(owner) {
      const posix = Object.hasOwn(mapping.users, owner) ? mapping.users[owner] : undefined;
      if (posix === undefined) {
        throw new IdentityRefusal("owner_not_mapped", `${owner} is not in this site's user mapping`);
      }
      const result = await executor.run("getent", ["passwd", "--", posix], { env: { PATH: "/usr/bin:/bin" } });
      const account = result.code === 0 ? parsePasswdLine(result.stdout.split("\n")[0] ?? "") : null;
      if (!account || account.name !== posix) {
        throw new IdentityRefusal(
          "owner_unknown_account",
          `${owner} maps to ${posix}, which getent passwd does not know`,
        );
      }
      if (account.uid === 0 || account.gid === 0 || account.uid < mapping.minUid) {
        throw new IdentityRefusal(
          "owner_privileged_account",
          `${owner} maps to ${posix} (uid ${account.uid}, gid ${account.gid}): root and accounts below uid ${mapping.minUid} are refused`,
        );
      }
      return account;
    },
  };
}
