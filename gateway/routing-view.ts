/**
 * What routing needs to know (clusters, their liveness, the user's grants), read once per second
 * at most. The store's writes to clusters, grants and agents clear it at once (db/caches.ts); other
 * processes see them within the TTL. A cache only: the database stays the truth.
 */
import type { Grant } from "../schemas/index.ts";
import { isAgentAlive, livenessByCluster } from "./agent-liveness.ts";
import type { Deps } from "./deps.ts";
import type { ClusterCandidate } from "./routing.ts";
import { listAgents } from "./store/agents.ts";
import { listClusters } from "./store/clusters.ts";
import { listGrants } from "./store/grants.ts";
import { type AgentScope, scopeAllows, scopeOf } from "./store/agent-scope.ts";

const TTL_MS = 1_000;

export type RoutingView = { clusters: Map<string, ClusterCandidate>; grants: Grant[] };

type AgentSeen = { scope: AgentScope; alive: boolean };
export type RoutingSnapshot = {
  at: number;
  clusters: Map<string, ClusterCandidate>;
  grants: Grant[];
  agents: Map<string, AgentSeen[]>;
};

async function load(deps: Deps): Promise<RoutingSnapshot> {
  const now = deps.now();
  const [records, agents, grants] = await Promise.all([
    listClusters(deps.db),
    listAgents(deps.db),
    listGrants(deps.db),
  ]);
  const livenessMs = deps.config.SLURMGATE_AGENT_LIVENESS_SECONDS * 1000;
  const liveness = livenessByCluster(agents, now, livenessMs);
  const seen = new Map<string, AgentSeen[]>();
  for (const a of agents) {
    const entry = { scope: scopeOf({ user: a.user, serves: a.serves }), alive: isAgentAlive(a, now, livenessMs) };
    seen.set(a.cluster, [...(seen.get(a.cluster) ?? []), entry]);
  }
  const clusters = new Map<string, ClusterCandidate>();
  for (const [name, record] of records) {
    clusters.set(name, { ...record, ...(liveness.get(name) ?? { alive: false, lastSeenAt: null, stoppedAt: null }) });
  }
  return { at: now, clusters, grants, agents: seen };
}

/**
 * The clusters as one user sees them: alive only if a live agent may run this user's jobs, and
 * `runsAs` false where agents are known but none of them may (no personal agent, not mapped).
 */
function forUser(snapshot: RoutingSnapshot, user: string): Map<string, ClusterCandidate> {
  const out = new Map<string, ClusterCandidate>();
  for (const [name, candidate] of snapshot.clusters) {
    const agents = snapshot.agents.get(name) ?? [];
    const able = agents.filter((a) => scopeAllows(a.scope, user));
    out.set(
      name,
      agents.length === 0
        ? candidate
        : { ...candidate, alive: able.some((a) => a.alive), runsAs: able.length > 0 ? user : false },
    );
  }
  return out;
}

export async function routingView(deps: Deps, user: string): Promise<RoutingView> {
  const cache = deps.db.caches.routing;
  let snapshot = cache.snapshot;
  if (!snapshot || deps.now() - snapshot.at > TTL_MS) {
    snapshot = await load(deps);
    cache.snapshot = snapshot;
  }
  return { clusters: forUser(snapshot, user), grants: snapshot.grants.filter((g) => g.user === user) };
}
