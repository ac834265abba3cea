/**
 * What routing needs to know (clusters, their liveness, the user's grants), read once per second
 * at most. Admin writes in this process invalidate it at once; other processes see them within
 * the TTL. A cache only: the database stays the truth.
 */
import type { Grant } from "../schemas/index.ts";
import { isAgentAlive, livenessByCluster } from "./agent-liveness.ts";
import type { Deps } from "./deps.ts";
import type { ClusterCandidate } from "./routing.ts";
import { listAgents, listClusters, listGrants } from "./store/admin.ts";
import { type AgentScope, scopeAllows, scopeOf } from "./store/agent-scope.ts";

const TTL_MS = 1_000;

export type RoutingView = { clusters: Map<string, ClusterCandidate>; grants: Grant[] };

type AgentSeen = { scope: AgentScope; alive: boolean };
type Snapshot = {
  at: number;
  clusters: Map<string, ClusterCandidate>;
  grants: Grant[];
  agents: Map<string, AgentSeen[]>;
};

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
function forUser(snapshot: Snapshot, user: string): Map<string, ClusterCandidate> {
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
  let snapshot = cache.get(deps);
  if (!snapshot || deps.now() - snapshot.at > TTL_MS) {
    snapshot = await load(deps);
    cache.set(deps, snapshot);
  }
  return { clusters: forUser(snapshot, user), grants: snapshot.grants.filter((g) => g.user === user) };
}
