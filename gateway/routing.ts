/**
 * Chooses the cluster and partition for a job from the clusters the user is granted and what
 * each cluster's agent last reported. Pure: no I/O, so it is tested exhaustively on its own.
 */
import type { ClusterConfig, Grant, Inventory, JobSpec, PartitionInfo } from "../schemas/index.ts";
import {
  durationSeconds,
  effectiveAllowList,
  effectiveRoots,
  isInsideRoots,
  memoryMegabytes,
  ownedReason,
  sbatchOptionName,
  serviceGpuIssue,
} from "../schemas/index.ts";
import { ApiProblem } from "./problem.ts";

export type ClusterCandidate = {
  config: ClusterConfig;
  inventory: Inventory | null;
  alive: boolean;
  lastSeenAt: number | null;
  /** Set when no agent is alive because the last one said goodbye (see gateway/agent-liveness.ts). */
  stoppedAt?: number | null;
  /** false when the cluster has agents but none may run this user's jobs (see routing-view.ts). */
  runsAs?: string | false;
};

export type Route = { cluster: string; partition: string | null; spec: JobSpec; reason: string | null };

export type Failure = {
  rank: number;
  field: string;
  message: string;
  offer?: string;
  noAgentFor?: string;
  cluster?: string;
};

/** Merges the cluster's profile under the job's own values (the job's values win). */
export function applyProfile(spec: JobSpec, config: ClusterConfig): JobSpec | Failure {
  if (!spec.profile) {
    return spec;
  }
  const profile = config.profiles[spec.profile];
  if (!profile) {
    return {
      rank: 0,
      field: "profile",
      message: `profile '${spec.profile}' is not defined on ${config.name}`,
      offer: Object.keys(config.profiles).join(", ") || "none",
    };
  }
  const defaults = { ...profile.resources };
  // The job's own memory request replaces the profile's whichever form each uses: merging a
  // profile's memPerNode with a job's memPerCpu would store a spec the schema (and Slurm) refuses.
  if (spec.resources.memPerNode !== undefined || spec.resources.memPerCpu !== undefined) {
    delete defaults.memPerNode;
    delete defaults.memPerCpu;
  }
  return {
    ...spec,
    partition: spec.partition ?? profile.partition,
    resources: { ...defaults, ...spec.resources },
  };
}

const fmtTime = (s: number) => (s % 3600 === 0 ? `${s / 3600}h` : `${Math.round(s / 60)}m`);

/**
 * Checks a job against one partition. Returns the first failure, ranked by how far the job got
 * (a later check failing means the job was closer to fitting), or undefined when it fits.
 */
export function checkPartition(spec: JobSpec, p: PartitionInfo): Failure | undefined {
  const r = spec.resources;
  const gpus = r.gpus;
  if (gpus) {
    const offered = gpus.type ? p.gpus.filter((g) => g.type === gpus.type) : p.gpus;
    if (offered.length === 0) {
      return {
        rank: 2,
        field: "resources.gpus.type",
        message: gpus.type ? `GPU type '${gpus.type}' is not offered` : "no GPUs are offered",
        offer: p.gpus.map((g) => g.type).join(", ") || "none",
      };
    }
    const most = Math.max(...offered.map((g) => g.count));
    if (gpus.count > most) {
      return {
        rank: 3,
        field: "resources.gpus.count",
        message: `${gpus.count} GPUs on one node is more than offered`,
        offer: String(most),
      };
    }
  }
  const seconds = r.time ? durationSeconds(r.time) : undefined;
  if (seconds !== undefined && p.maxTimeSeconds !== null && seconds > p.maxTimeSeconds) {
    return {
      rank: 4,
      field: "resources.time",
      message: `time ${r.time} is over the partition's limit`,
      offer: fmtTime(p.maxTimeSeconds),
    };
  }
  const cpus = (r.cpusPerTask ?? 1) * (r.ntasksPerNode ?? 1);
  if (cpus > p.maxCpusPerNode) {
    return {
      rank: 5,
      field: "resources.cpusPerTask",
      message: `${cpus} CPUs per node is more than offered`,
      offer: String(p.maxCpusPerNode),
    };
  }
  const mem = r.memPerNode
    ? memoryMegabytes(r.memPerNode)
    : r.memPerCpu
      ? (memoryMegabytes(r.memPerCpu) ?? 0) * (r.cpusPerTask ?? 1) * (r.ntasksPerNode ?? 1)
      : undefined;
  if (mem !== undefined && mem > p.maxMemMBPerNode) {
    return {
      rank: 6,
      field: r.memPerNode ? "resources.memPerNode" : "resources.memPerCpu",
      message: `${mem}M of memory per node is more than offered`,
      offer: `${p.maxMemMBPerNode}M`,
    };
  }
  const nodes = r.nodes ?? 1;
  if (nodes > p.nodes || (p.maxNodes !== null && nodes > p.maxNodes)) {
    return {
      rank: 7,
      field: "resources.nodes",
      message: `${nodes} nodes is more than the partition has`,
      offer: String(p.nodes),
    };
  }
  return undefined;
}

/**
 * The partition a job runs in: the one it names, else the cluster's default when the job fits
 * there, else the first granted partition it fits (a GPU job that names none goes where the GPUs
 * are, not to a CPU-only default that would refuse it). When none fits, the default, so the
 * refusal is the one the default gives.
 */
function partitionFor(spec: JobSpec, inventory: Inventory, grant: Grant): PartitionInfo | Failure {
  const wanted = spec.partition;
  const fallback = inventory.partitions.find((p) => p.default);
  const fitting = wanted
    ? undefined
    : [fallback, ...inventory.partitions.filter((p) => !p.default)].find(
        (p) => p !== undefined && grantedPartition(grant, p.name) && checkPartition(spec, p) === undefined,
      );
  const found = wanted ? inventory.partitions.find((p) => p.name === wanted) : (fitting ?? fallback);
  if (!found) {
    return {
      rank: 1,
      field: "partition",
      message: wanted ? `partition '${wanted}' does not exist` : "the cluster has no default partition; name one",
      offer: inventory.partitions.map((p) => p.name).join(", "),
    };
  }
  return found;
}

export function isFailure(x: unknown): x is Failure {
  return typeof x === "object" && x !== null && "rank" in x && "field" in x;
}

function grantedPartition(grant: Grant, partition: string | undefined): boolean {
  return grant.partitions.includes("*") || (partition !== undefined && grant.partitions.includes(partition));
}

/**
 * What the cluster's agent would refuse before sbatch, checked lexically with the agent's
 * published allow-list and roots (see effectiveAllowList, effectiveRoots). The agent re-checks
 * everything with realpath; this only stops a job that cannot run from being queued.
 */
export function checkAgentPolicy(spec: JobSpec, candidate: ClusterCandidate): Failure | undefined {
  const { config, inventory } = candidate;
  const allowed = effectiveAllowList(config.allowedSbatchArgs, inventory?.allowedSbatchArgs);
  for (const [index, arg] of spec.extraSbatchArgs.entries()) {
    const name = sbatchOptionName(arg);
    const owned = ownedReason(name);
    if (owned || !allowed.includes(name)) {
      const agentOnly = !owned && config.allowedSbatchArgs.includes(name);
      return {
        rank: 0,
        field: `extraSbatchArgs.${index}`,
        message:
          owned ??
          `'${name}' is not allowed on ${config.name}${agentOnly ? " (its cluster config allows it, its agent does not)" : ""}`,
        offer: allowed.join(", ") || "none",
      };
    }
  }
  const roots = effectiveRoots(config.sharedRoots, inventory?.sharedRoots);
  const outside = (field: string, path: string, what: string): Failure => ({
    rank: 0,
    field,
    message: `${what} ${path} is outside ${config.name}'s shared roots`,
    offer: roots.join(", "),
  });
  if (spec.workdir !== undefined && !isInsideRoots(`${roots[0]}/${spec.workdir}`, roots.slice(0, 1))) {
    return outside("workdir", spec.workdir, "workdir");
  }
  const container = spec.container;
  if (!container) {
    return undefined;
  }
  for (const [index, bind] of container.binds.entries()) {
    if (!isInsideRoots(bind.src, roots)) {
      return outside(`container.binds.${index}.src`, bind.src, "bind source");
    }
  }
  const images: [string, string | undefined][] = [
    ["container.image", container.image],
    ["container.images.x86_64", container.images?.x86_64],
    ["container.images.aarch64", container.images?.aarch64],
  ];
  for (const [field, image] of images) {
    // Only files need a root; docker://, oras://, … are pulled by Apptainer.
    if (image?.startsWith("/") && !isInsideRoots(image, roots)) {
      return outside(field, image, "image");
    }
  }
  return undefined;
}

/** The one refusal for a user whom no agent of a cluster may run jobs as. */
export function noAgentRunsAs(user: string, clusters: string[]): string {
  return `no agent can run jobs as ${user} on ${clusters.join(", ")}: start a personal agent or ask the site to map you`;
}

/**
 * The account a job charges under a grant that names accounts: the job's own when on offer, else
 * the grant's default. A grant without accounts leaves the choice to Slurm, as before.
 */
export function chargedAccount(spec: JobSpec, grant: Grant): JobSpec | Failure {
  const accounts = grant.accounts;
  if (!accounts) {
    return spec;
  }
  if (spec.account === undefined) {
    return grant.defaultAccount === undefined ? spec : { ...spec, account: grant.defaultAccount };
  }
  if (!accounts.includes(spec.account)) {
    return {
      rank: 1,
      field: "account",
      message: `you may not charge account '${spec.account}' on ${grant.cluster}`,
      offer: accounts.join(", "),
    };
  }
  return spec;
}

export function checkCluster(spec: JobSpec, candidate: ClusterCandidate, grant: Grant): Route | Failure {
  const { config, inventory } = candidate;
  if (candidate.runsAs === false) {
    // Ranked above every resource check: the job fits, only the identity is missing.
    const message = noAgentRunsAs(grant.user, [config.name]);
    return { rank: 100, field: "cluster", message, noAgentFor: grant.user, cluster: config.name };
  }
  const profiled = applyProfile(spec, config);
  if (isFailure(profiled)) {
    return profiled;
  }
  // A profile may be what gives the job its GPUs: the services' share is checked against the merged spec.
  const gpuIssue = serviceGpuIssue(profiled, true);
  if (gpuIssue) {
    return { rank: 0, field: gpuIssue.path.join("."), message: gpuIssue.message };
  }
  const resolved = chargedAccount(profiled, grant);
  if (isFailure(resolved)) {
    return resolved;
  }
  const refused = checkAgentPolicy(resolved, candidate);
  if (refused) {
    return refused;
  }
  const uncached = checkCaches(resolved, candidate);
  if (uncached) {
    return uncached;
  }
  if (!inventory) {
    if (resolved.partition && !grantedPartition(grant, resolved.partition)) {
      return {
        rank: 1,
        field: "partition",
        message: `you are not granted partition '${resolved.partition}'`,
        offer: grant.partitions.join(", "),
      };
    }
    return {
      cluster: config.name,
      partition: resolved.partition ?? null,
      spec: resolved,
      reason: `waiting for ${config.name}'s agent to connect and report what the cluster offers`,
    };
  }
  const partition = partitionFor(resolved, inventory, grant);
  if (isFailure(partition)) {
    return partition;
  }
  if (!grantedPartition(grant, partition.name)) {
    return {
      rank: 1,
      field: "partition",
      message: `you are not granted partition '${partition.name}'`,
      offer: grant.partitions.join(", "),
    };
  }
  const failure = checkPartition(resolved, partition);
  if (failure) {
    return { ...failure, message: `${failure.message} on ${config.name}/${partition.name}` };
  }
  // A partition other than the default is written into the spec: the agent submits what the spec says.
  const pinned = partition.default || resolved.partition ? resolved : { ...resolved, partition: partition.name };
  return { cluster: config.name, partition: partition.name, spec: pinned, reason: null };
}

/** The named caches the cluster's agent did not report staged (all of them before it reported). */
export function missingCaches(spec: JobSpec, inventory: Inventory | null): string[] {
  const staged = new Set((inventory?.caches ?? []).map((c) => c.name));
  return (spec.cache ?? []).filter((ref) => !staged.has(ref));
}

/**
 * A job naming caches goes only where all of them are staged: a cluster without one is not a
 * candidate (ranked above every resource check: the job fits there but for its data). A job pinned
 * to a cluster is left to that cluster's agent, which checks again at lease time (cache_missing).
 */
function checkCaches(spec: JobSpec, candidate: ClusterCandidate): Failure | undefined {
  const missing = missingCaches(spec, candidate.inventory);
  if (spec.cluster !== undefined || missing.length === 0) {
    return undefined;
  }
  const index = spec.cache!.indexOf(missing[0]!);
  const staged = (candidate.inventory?.caches ?? []).map((c) => c.name);
  return {
    rank: 8,
    field: `cache.${index}`,
    message: candidate.inventory
      ? `${missing.join(", ")} ${missing.length > 1 ? "are" : "is"} not staged on ${candidate.config.name}`
      : `${candidate.config.name}'s agent has not reported what it has staged`,
    offer: staged.length ? `${staged.slice(0, 20).join(", ")}${staged.length > 20 ? ", …" : ""}` : "no caches",
  };
}

function pinnedCacheNote(spec: JobSpec, candidate: ClusterCandidate): string | null {
  const missing = missingCaches(spec, candidate.inventory);
  return missing.length === 0
    ? null
    : `${missing.join(", ")} not staged on ${candidate.config.name} as of its agent's last inventory; its agent refuses the job (cache_missing) if still so when it takes it`;
}

/**
 * Routes a job or throws a 422 naming the field and what is on offer, or a 403 when the user may
 * not use the pinned cluster.
 */
export function routeJob(spec: JobSpec, grants: Grant[], clusters: Map<string, ClusterCandidate>, now: number): Route {
  const granted = grants.filter((g) => clusters.has(g.cluster));
  if (spec.cluster) {
    const grant = granted.find((g) => g.cluster === spec.cluster);
    const candidate = clusters.get(spec.cluster);
    if (!grant || !candidate) {
      throw new ApiProblem("forbidden", `you may not use cluster '${spec.cluster}'`, { field: "cluster" });
    }
    const routed = checkCluster(spec, candidate, grant);
    if (isFailure(routed)) {
      throw unsatisfiable([routed]);
    }
    // A pinned job waits for the cluster's agent to come back (a restart is seconds of goodbye).
    const waiting =
      !candidate.alive && !routed.reason
        ? { ...routed, reason: `queued for ${spec.cluster} until an agent is back: ${whyDown(candidate)}` }
        : routed;
    const note = pinnedCacheNote(routed.spec, candidate);
    return note ? { ...waiting, reason: waiting.reason ? `${waiting.reason}; ${note}` : note } : waiting;
  }
  if (granted.length === 0) {
    throw new ApiProblem("forbidden", "you are not granted any cluster; ask an admin for a grant", {
      field: "cluster",
    });
  }
  const failures: Failure[] = [];
  const idle: Route[] = [];
  for (const grant of granted) {
    const candidate = clusters.get(grant.cluster)!;
    const routed = checkCluster(spec, candidate, grant);
    if (isFailure(routed)) {
      failures.push(routed);
    } else if (candidate.alive && !routed.reason) {
      return routed;
    } else {
      idle.push(routed);
    }
  }
  if (idle.length > 0) {
    const names = idle.map((r) => r.cluster).join(", ");
    const why = idle.map((r) => whyDown(clusters.get(r.cluster)!)).join("; ");
    throw new ApiProblem(
      "unsatisfiable",
      `only ${names} could run this job and no agent there is alive (as of ${new Date(now).toISOString()}): ${why}; set "cluster" to queue it there anyway`,
      { field: "cluster" },
    );
  }
  throw unsatisfiable(failures);
}

/** Why a cluster has no live agent, in words: a deliberate stop, or silence. */
export function whyDown(candidate: ClusterCandidate): string {
  const name = candidate.config.name;
  if (candidate.stoppedAt) {
    return `the agent of ${name} stopped at ${new Date(candidate.stoppedAt).toISOString()}; no live agent`;
  }
  return candidate.lastSeenAt
    ? `${name}'s agent has not been seen since ${new Date(candidate.lastSeenAt).toISOString()}`
    : `${name}'s agent has not connected yet`;
}

function unsatisfiable(failures: Failure[]): ApiProblem {
  const best = failures.reduce((a, b) => (b.rank > a.rank ? b : a));
  if (best.noAgentFor !== undefined) {
    const clusters = failures.filter((f) => f.noAgentFor !== undefined).map((f) => f.cluster ?? "");
    return new ApiProblem("unsatisfiable", noAgentRunsAs(best.noAgentFor, clusters), { field: "body.cluster" });
  }
  const offers = failures
    .filter((f) => f.field === best.field && f.offer !== undefined)
    .map((f) => f.offer!)
    .filter((v, i, all) => all.indexOf(v) === i);
  const offer = offers.length ? `; on offer: ${offers.join(" | ")}` : "";
  return new ApiProblem("unsatisfiable", `${best.field}: ${best.message}${offer}`, {
    field: `body.${best.field}`,
    errors: failures.map((f) => ({
      field: `body.${f.field}`,
      message: f.message + (f.offer ? ` (on offer: ${f.offer})` : ""),
    })),
  });
}
