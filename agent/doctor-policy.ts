/**
 * Where the agent's own rules (SLURMGATE_SHARED_ROOTS, SLURMGATE_ALLOWED_SBATCH_ARGS) and the
 * admin's cluster config disagree. The gateway routes by both (roots: the agent's; allow-list:
 * options on both), so every difference is something a user is refused or a setting that does
 * nothing; `slurmgate agent doctor` prints each one on its own line.
 */
import { isSlurmgateOwned } from "../schemas/sbatch.ts";

export type AgentRules = { sharedRoots: readonly string[]; allowedSbatchArgs: readonly string[] };
export type ClusterRules = { name: string; sharedRoots: readonly string[]; allowedSbatchArgs: readonly string[] };

/**
 * One sentence per difference; empty when they agree.
 * @example
 * policyDisagreements({ sharedRoots: ["/s"], allowedSbatchArgs: ["--begin"] }, { name: "hpc", sharedRoots: ["/s"], allowedSbatchArgs: [] })
 * // => ["--begin is in SLURMGATE_ALLOWED_SBATCH_ARGS but not in hpc's allowedSbatchArgs: the gateway refuses it"]
 */
export function policyDisagreements(agentRules: AgentRules, clusterRules: ClusterRules): string[] {
  // `/scratch/` and `/scratch` are the same root to both sides' checks.
  const trim = (roots: readonly string[]) => roots.map((r) => (r.length > 1 ? r.replace(/\/+$/, "") || "/" : r));
  const agent = { ...agentRules, sharedRoots: trim(agentRules.sharedRoots) };
  const cluster = { ...clusterRules, sharedRoots: trim(clusterRules.sharedRoots) };
  const config = `${cluster.name}'s`;
  const lines: string[] = [];
  const [agentFirst] = agent.sharedRoots;
  const [configFirst] = cluster.sharedRoots;
  // Only an order difference gets this line; a root on one side only gets its own below.
  const reordered =
    agentFirst !== undefined &&
    configFirst !== undefined &&
    agentFirst !== configFirst &&
    cluster.sharedRoots.includes(agentFirst) &&
    agent.sharedRoots.includes(configFirst);
  if (reordered) {
    lines.push(
      `job directories go under ${agentFirst} (first of SLURMGATE_SHARED_ROOTS), but ${config} sharedRoots names ${configFirst} first`,
    );
  }
  for (const root of agent.sharedRoots) {
    if (!cluster.sharedRoots.includes(root)) {
      lines.push(`shared root ${root} is in SLURMGATE_SHARED_ROOTS but not in ${config} sharedRoots`);
    }
  }
  for (const root of cluster.sharedRoots) {
    if (!agent.sharedRoots.includes(root)) {
      lines.push(
        `shared root ${root} is in ${config} sharedRoots but not in SLURMGATE_SHARED_ROOTS: this agent refuses paths there`,
      );
    }
  }
  for (const option of agent.allowedSbatchArgs) {
    if (!cluster.allowedSbatchArgs.includes(option)) {
      lines.push(
        `${option} is in SLURMGATE_ALLOWED_SBATCH_ARGS but not in ${config} allowedSbatchArgs: the gateway refuses it`,
      );
    }
  }
  for (const option of cluster.allowedSbatchArgs) {
    if (isSlurmgateOwned(option)) {
      lines.push(`${option} is in ${config} allowedSbatchArgs but slurmgate sets it itself: it is never offered`);
    } else if (!agent.allowedSbatchArgs.includes(option)) {
      lines.push(
        `${option} is in ${config} allowedSbatchArgs but not in SLURMGATE_ALLOWED_SBATCH_ARGS: the gateway refuses it, as this agent would`,
      );
    }
  }
  return lines;
}
