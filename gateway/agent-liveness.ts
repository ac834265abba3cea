/**
 * Whether a cluster has a live agent: the one rule behind GET /v1/clusters and routing. An agent
 * is alive when it was seen within SLURMGATE_AGENT_LIVENESS_SECONDS and has not said goodbye since.
 */
import type { AgentRow } from "./store/agents.ts";

export type ClusterLiveness = {
  alive: boolean;
  /** The latest time any agent of the cluster was seen. */
  lastSeenAt: number | null;
  /** Set when no agent is alive and the last one seen stopped deliberately (said goodbye). */
  stoppedAt: number | null;
};

export const isAgentAlive = (agent: AgentRow, now: number, livenessMs: number) =>
  agent.stoppedAt === null && now - agent.lastSeenAt <= livenessMs;

export function clusterLiveness(agents: AgentRow[], now: number, livenessMs: number): ClusterLiveness {
  let latest: AgentRow | undefined;
  let alive = false;
  for (const agent of agents) {
    alive ||= isAgentAlive(agent, now, livenessMs);
    if (!latest || agent.lastSeenAt > latest.lastSeenAt) {
      latest = agent;
    }
  }
  return {
    alive,
    lastSeenAt: latest?.lastSeenAt ?? null,
    stoppedAt: !alive && latest?.stoppedAt != null ? latest.stoppedAt : null,
  };
}

/** Liveness per cluster name; clusters without any agent row are absent. */
export function livenessByCluster(agents: AgentRow[], now: number, livenessMs: number): Map<string, ClusterLiveness> {
  const byCluster = new Map<string, AgentRow[]>();
  for (const agent of agents) {
    byCluster.set(agent.cluster, [...(byCluster.get(agent.cluster) ?? []), agent]);
  }
  return new Map([...byCluster].map(([name, own]) => [name, clusterLiveness(own, now, livenessMs)]));
}
