/**
 * A job's preflight: the routing decision with its reasons, for every cluster the user may use.
 * Pure, like routing.ts, and built from the same checks, so it cannot tell a story routing would not.
 */
import type { Grant, JobSpec, PartitionInfo, Preflight, PreflightCandidate } from "../schemas/index.ts";
import { ApiProblem } from "./problem.ts";
import { type ClusterCandidate, type Failure, checkCluster, isFailure, routeJob, whyDown } from "./routing.ts";

function capacityOf(
  candidate: ClusterCandidate,
  partition: string | null,
): Pick<PreflightCandidate, "idleNodes" | "gpus"> {
  const p: PartitionInfo | undefined = candidate.inventory?.partitions.find((x) => x.name === partition);
  return { idleNodes: p?.idleNodes ?? null, gpus: p?.gpuAvailability ?? [] };
}

/** `a100 1/2 free, 0 of 1 nodes idle`: what the partition has now, as the agent last saw it. */
function capacityWords(c: Pick<PreflightCandidate, "idleNodes" | "gpus">, nodes: number | undefined): string {
  const parts = c.gpus.map((g) => `${g.type || "gpu"} ${g.free}/${g.total} free`);
  if (c.idleNodes !== null && nodes !== undefined) {
    parts.push(`${c.idleNodes} of ${nodes} nodes idle`);
  }
  return parts.length > 0 ? ` (${parts.join(", ")})` : "";
}

function failureWords(f: Failure): string {
  return `${f.field}: ${f.message}${f.offer ? ` (on offer: ${f.offer})` : ""}`;
}

/**
 * Every cluster the user may use (or the pinned one), best first: where a submission now would go,
 * then clusters that fit (alive before not), then those that do not (closest first).
 */
export function explainRouting(
  spec: JobSpec,
  grants: Grant[],
  clusters: Map<string, ClusterCandidate>,
  now: number,
): { preflight: Preflight; specs: Map<string, JobSpec> } {
  let chosen: ReturnType<typeof routeJob> | undefined;
  let refusal: string | null = null;
  try {
    chosen = routeJob(spec, grants, clusters, now);
  } catch (err) {
    if (!(err instanceof ApiProblem)) {
      throw err;
    }
    refusal = err.message;
  }
  const granted = grants.filter((g) => clusters.has(g.cluster) && (!spec.cluster || g.cluster === spec.cluster));
  const ranked: { candidate: PreflightCandidate; rank: number }[] = [];
  // What each cluster that fits would be sent (its profile applied): what an estimate must ask about.
  const specs = new Map<string, JobSpec>();
  for (const grant of granted) {
    const candidate = clusters.get(grant.cluster)!;
    const routed = checkCluster(spec, candidate, grant);
    const alive = candidate.alive;
    if (isFailure(routed)) {
      const reason = failureWords(routed);
      ranked.push({
        candidate: {
          cluster: grant.cluster,
          partition: null,
          fits: false,
          alive,
          chosen: false,
          reason,
          idleNodes: null,
          gpus: [],
          estimate: null,
        },
        rank: routed.rank,
      });
      continue;
    }
    specs.set(grant.cluster, routed.spec);
    const capacity = capacityOf(candidate, routed.partition);
    const nodes = candidate.inventory?.partitions.find((p) => p.name === routed.partition)?.nodes;
    const where = `${grant.cluster}${routed.partition ? `/${routed.partition}` : ""}${capacityWords(capacity, nodes)}`;
    const isChosen = chosen?.cluster === grant.cluster;
    const reason = isChosen
      ? `chosen: ${where} can run it${chosen?.reason ? `; ${chosen.reason}` : ""}`
      : !alive
        ? `fits ${where}, but ${whyDown(candidate)}`
        : `fits ${where} too; ${chosen?.cluster ?? "another cluster"} comes first in your grants`;
    ranked.push({
      candidate: {
        cluster: grant.cluster,
        partition: routed.partition,
        fits: true,
        alive,
        chosen: isChosen,
        reason,
        ...capacity,
        estimate: null,
      },
      rank: isChosen ? 3_000 : alive ? 2_000 : 1_000,
    });
  }
  // A stable sort: equal ranks keep grant order, which is routing's own order.
  ranked.sort((a, b) => b.rank - a.rank);
  const preflight = {
    cluster: chosen?.cluster ?? null,
    partition: chosen?.partition ?? null,
    spec: chosen?.spec ?? null,
    refusal,
    candidates: ranked.map((r) => r.candidate),
  };
  return { preflight, specs };
}
