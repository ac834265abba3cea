/**
 * Builds the agent's identity guard from its own configuration: a mapping file makes a site agent,
 * run as root (submitting with --uid/--gid and handing directories over) or as a service account
 * acting as each user through sudo (SLURMGATE_RUN_AS=sudo); otherwise the token decides between
 * personal and self.
 */
import { agentAccount } from "./agent-account.ts";
import type { AgentConfig } from "../config.ts";
import type { Executor } from "../executor/types.ts";
import type { GatewayApi } from "../gateway-api.ts";
import { type IdentityGuard, siteGuard, tokenGuard } from "./guard.ts";
import { loadUserMapping } from "./mapping.ts";

export type SiteMode = "root" | "sudo";

/**
 * How a site agent acts as its users, from its configuration and the uid it runs as; null for an
 * agent without a mapping. A setup that could mean either is refused at start with one line.
 */
export function siteModeOf(config: AgentConfig, uid: number): SiteMode | null {
  if (!config.SLURMGATE_USER_MAP) {
    if (config.SLURMGATE_RUN_AS) {
      throw new Error("SLURMGATE_RUN_AS is for a site agent: set SLURMGATE_USER_MAP too, or unset it");
    }
    return null;
  }
  if (config.SLURMGATE_SSH_HOST) {
    throw new Error("a site agent (SLURMGATE_USER_MAP) runs locally on a login node, not over SSH");
  }
  const mode = config.SLURMGATE_RUN_AS ?? (uid === 0 ? "root" : undefined);
  if (mode === undefined) {
    throw new Error(
      "a site agent (SLURMGATE_USER_MAP) runs as root, or as a service account with SLURMGATE_RUN_AS=sudo and the sudoers rule in docs/agent-at-sites.md",
    );
  }
  if (mode === "root" && uid !== 0) {
    throw new Error("SLURMGATE_RUN_AS=root: run the agent as root, or set SLURMGATE_RUN_AS=sudo for a service account");
  }
  if (mode === "sudo" && uid === 0) {
    throw new Error(
      "SLURMGATE_RUN_AS=sudo: run the agent as its service account, not as root (or set SLURMGATE_RUN_AS=root)",
    );
  }
  return mode;
}

export function identityFromConfig(config: AgentConfig, executor: Executor, api: GatewayApi): IdentityGuard {
  const uid = process.getuid?.() ?? -1;
  if (siteModeOf(config, uid) && config.SLURMGATE_USER_MAP) {
    return siteGuard(loadUserMapping(config.SLURMGATE_USER_MAP, uid), executor);
  }
  return tokenGuard({
    pinned: config.SLURMGATE_AGENT_USER,
    learn: async () => {
      const me = await api.me();
      return me.ok ? { user: me.value.user ?? null } : undefined;
    },
    posixUser: config.SLURMGATE_OWNER_IS_POSIX_USER ? agentAccount().username : undefined,
  });
}

/**
 * In a site agent, job directories belong to their users, who could plant a symlink where the agent
 * reads logs and results as root: reads of anything but a plain file answer "not there".
 */
export function noFollowReads(executor: Executor): Executor {
  return {
    ...executor,
    async readFile(path, range) {
      const info = await executor.stat(path);
      if (!info?.isFile || info.isSymbolicLink) {
        return null;
      }
      return executor.readFile(path, range);
    },
  };
}
