/**
 * Builds the agent's identity guard from its own configuration: a mapping file makes a site agent
 * (which must run as root, to submit with --uid/--gid and hand directories over); otherwise the
 * token decides between personal and self.
 */
import { userInfo } from "node:os";
import type { AgentConfig } from "../config.ts";
import type { Executor } from "../executor/types.ts";
import type { GatewayApi } from "../gateway-api.ts";
import { type IdentityGuard, siteGuard, tokenGuard } from "./guard.ts";
import { loadUserMapping } from "./mapping.ts";

export function identityFromConfig(config: AgentConfig, executor: Executor, api: GatewayApi): IdentityGuard {
  if (config.SLURMGATE_USER_MAP) {
    const uid = process.getuid?.() ?? -1;
    if (uid !== 0 || config.SLURMGATE_SSH_HOST) {
      throw new Error("a site agent (SLURMGATE_USER_MAP) runs locally as root: it submits with sbatch --uid/--gid");
    }
    return siteGuard(loadUserMapping(config.SLURMGATE_USER_MAP, uid), executor);
  }
  return tokenGuard({
    pinned: config.SLURMGATE_AGENT_USER,
    learn: async () => {
      const me = await api.me();
      return me.ok ? { user: me.value.user ?? null } : undefined;
    },
    posixUser: config.SLURMGATE_OWNER_IS_POSIX_USER ? userInfo().username : undefined,
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
