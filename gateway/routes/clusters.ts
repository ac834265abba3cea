/**
 * What users see of clusters, and who the caller is.
 */
import type { PartitionInfo } from "../../schemas/index.ts";
import { clusterLiveness } from "../agent-liveness.ts";
import { scopeGrants } from "../auth/scope.ts";
import type { Deps } from "../deps.ts";
import { listAgents } from "../store/agents.ts";
import { listClusters } from "../store/clusters.ts";
import { listGrants } from "../store/grants.ts";
import { iso } from "../store/job-row.ts";
import { clustersRoute, meRoute } from "./clusters.routes.ts";
import { createRouter } from "./common.ts";

/** Why each partition the caller cannot use now is not on offer. */
function unavailable(partitions: readonly PartitionInfo[], allowed: readonly string[]) {
  return partitions.flatMap((p) => {
    if (!allowed.includes(p.name)) {
      const granted = allowed.length > 0 ? allowed.join(", ") : "none";
      return [{ name: p.name, reason: `not in your grant for this cluster (yours: ${granted})` }];
    }
    if (p.state !== "up") {
      return [{ name: p.name, reason: `${p.state} in Slurm: jobs sent there wait until it is up` }];
    }
    return [];
  });
}

export function clustersRouter(deps: Deps) {
  const app = createRouter();

  app.openapi(clustersRoute, async (c) => {
    const principal = c.get("principal");
    const isAdmin = principal.kind === "admin";
    const user = principal.kind === "agent" ? "" : principal.user;
    const [clusters, agents, grants] = await Promise.all([
      listClusters(deps.db),
      listAgents(deps.db),
      listGrants(deps.db, user).then((grants) => scopeGrants(principal, grants)),
    ]);
    const now = deps.now();
    const livenessMs = deps.config.SLURMGATE_AGENT_LIVENESS_SECONDS * 1000;
    const items = [];
    for (const [name, record] of clusters) {
      const grant = grants.find((g) => g.cluster === name);
      if (!grant && !isAdmin) {
        continue;
      }
      const own = agents.filter((a) => a.cluster === name);
      const { alive, lastSeenAt, stoppedAt } = clusterLiveness(own, now, livenessMs);
      const inventoried = record.inventory?.partitions ?? [];
      const all = inventoried.map((p) => p.name);
      const allowed = !grant || grant.partitions.includes("*") ? all : all.filter((p) => grant.partitions.includes(p));
      items.push({
        name,
        description: record.config.description,
        alive,
        lastSeenAt: lastSeenAt === null ? null : iso(lastSeenAt),
        stoppedAt: stoppedAt === null ? null : iso(stoppedAt),
        partitions: allowed,
        inventory: record.inventory,
        agents: own.map((a) => ({
          agentId: a.agentId,
          version: a.version,
          lastSeenAt: iso(a.lastSeenAt),
          stoppedAt: a.stoppedAt === null ? null : iso(a.stoppedAt),
          cycleMs: a.cycleMs,
          mode: a.mode,
        })),
        profiles: Object.keys(record.config.profiles),
        profileDetails: record.config.profiles,
        unavailablePartitions: unavailable(inventoried, allowed),
      });
    }
    return c.json({ items }, 200);
  });

  app.openapi(meRoute, (c) => {
    const p = c.get("principal");
    return c.json(
      {
        kind: p.kind,
        user: p.user,
        cluster: p.kind === "agent" ? p.cluster : null,
        via: (p.kind !== "agent" && p.via) || { kind: "token" as const },
        serverTime: iso(deps.now()),
      },
      200,
    );
  });

  return app;
}
