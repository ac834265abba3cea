/**
 * Slurm's own start-time estimate for a preflight: each cluster that fits and has an agent alive is
 * asked at once (`sbatch --test-only`, run by its agent as the user), and the clusters that fit are
 * ranked by the answer. No anchor offers this across clusters; it costs one held round trip per
 * cluster, in parallel, bounded by SLURMGATE_ESTIMATE_SECONDS.
 */
import type { JobSpec, Preflight, PreflightCandidate, PreflightEstimate } from "../../schemas/index.ts";
import type { Deps } from "../deps.ts";
import { type Asked, askAgent } from "./asks.ts";

function toEstimate(cluster: string, asked: Asked<"estimate">): PreflightEstimate {
  if (!asked.ok) {
    return { startAt: null, partition: null, nodes: null, reason: `no estimate from ${cluster}: ${asked.reason}` };
  }
  const { startAt, partition, nodes } = asked.value;
  const when = startAt.replace("T", " ").replace(/\.\d+Z$|Z$/, " UTC");
  return {
    startAt,
    partition,
    nodes,
    reason: `Slurm on ${cluster} expects it to start at ${when} on ${nodes} in ${partition}`,
  };
}

/** Earliest estimate first; a cluster without one after those with one. */
function byStart(a: PreflightCandidate, b: PreflightCandidate): number {
  const at = (c: PreflightCandidate) =>
    c.estimate?.startAt ? Date.parse(c.estimate.startAt) : Number.POSITIVE_INFINITY;
  return at(a) - at(b);
}

/**
 * Adds each asked cluster's estimate; among the clusters that fit and are alive, the ones routing
 * did not choose are ordered by estimated start (the chosen one stays first: it is what a submission
 * now would do).
 */
export async function withEstimates(
  deps: Deps,
  owner: string,
  plan: { preflight: Preflight; specs: Map<string, JobSpec> },
  signal?: AbortSignal,
): Promise<Preflight> {
  const seconds = deps.config.SLURMGATE_ESTIMATE_SECONDS;
  const { preflight, specs } = plan;
  if (seconds === 0) {
    return preflight;
  }
  const candidates = await Promise.all(
    preflight.candidates.map(async (c) => {
      const spec = specs.get(c.cluster);
      if (!c.fits || !c.alive || !spec) {
        return c;
      }
      const asked = await askAgent(deps, c.cluster, { kind: "estimate", owner, spec }, seconds, signal);
      return { ...c, estimate: toEstimate(c.cluster, asked) };
    }),
  );
  const chosen = candidates.filter((c) => c.chosen);
  const others = candidates.filter((c) => !c.chosen && c.fits && c.alive).sort(byStart);
  const rest = candidates.filter((c) => !c.chosen && !(c.fits && c.alive));
  return { ...preflight, candidates: [...chosen, ...others, ...rest] };
}
