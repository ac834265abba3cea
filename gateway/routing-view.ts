/**
 * What routing needs to know (clusters, their liveness, the user's grants), read once per second
 * at most. Admin writes in this process invalidate it at once; other processes see them within
 * the TTL. A cache only: the database stays the truth.
 */
import type { Grant } from "../schemas/index.ts";
import { livenessByCluster } from "./agent-liveness.ts";
import type { Deps } from "./deps.ts";
import type { ClusterCandidate } from "./routing.ts";
import { listAgents, listClusters, listGrants } from "./store/admin.ts";

const TTL_MS = 1_000;

export type RoutingView = { clusters: Map<string, ClusterCandidate>; grants: Grant[] };

type Snapshot = { at: number; clusters: Map<string, ClusterCandidate>; grants: Grant[] };

const cache = new WeakMap<Deps, Snapshot>();

export function invalidateRoutingView(deps: Deps) {
  cache.delete(deps);
}

async function load(deps: Deps): Promise<Snapshot> {
  const now = deps.now();
  const [records, agents, grants] = await Promise.all([
    listClusters(deps.db),
    listAgents(deps.db),
    listGrants(deps.db),
  ]);
  const liveness = livenessByCluster(agents, now, deps.config.SLURMGATE_AGENT_LIVENESS_SECONDS * 1000);
  const clusters = new Map<string, ClusterCandidate>();
  for (const [name, record] of records) {
    clusters.set(name, { ...record, ...(liveness.get(name) ?? { alive: false, lastSeenAt: null, stoppedAt: null }) });
  }
  return { at: now, clusters, grants };
}

export async function routingView(deps: Deps, user: string): Promise<RoutingView> {
  let snapshot = cache.get(deps);
  if (!snapshot || deps.now() - snapshot.at > TTL_MS) {
    snapshot = await load(deps);
    cache.set(deps, snapshot);
  }
  return { clusters: snapshot.clusters, grants: snapshot.grants.filter((g) => g.user === user) };
}
