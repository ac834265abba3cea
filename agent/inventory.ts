/**
 * What the cluster offers, published to the gateway on start and every few minutes: partitions with
 * their limits, idle nodes and GPUs, free and total (two sinfo), Slurm and Apptainer versions, whether accounting answers, Slurm's
 * MaxArraySize (the largest sweep batch the gateway may claim), and the roots and sbatch allow-list
 * this agent enforces.
 */
import type { AgentContext } from "./context.ts";
import { VERSION } from "../schemas/version.ts";
import type { Inventory } from "./gateway-api.ts";
import { checkCacheRoot, executorCacheReader, listCaches } from "./stage.ts";

/**
 * What is staged under the cache root, read through the executor (so over SSH it is the login
 * node's cache root); undefined without one. A listing that fails publishes nothing rather than
 * "none staged".
 */
async function stagedCaches(ctx: AgentContext) {
  if (!ctx.config.SLURMGATE_CACHE_ROOT) {
    return undefined;
  }
  try {
    const root = await checkCacheRoot(ctx.executor, ctx.roots.real, ctx.config.SLURMGATE_CACHE_ROOT);
    return root === null ? undefined : await listCaches(root, executorCacheReader(ctx.executor));
  } catch (err) {
    ctx.log("warn", "cannot list the staged caches", { error: (err as Error).message });
    return undefined;
  }
}

export const AGENT_VERSION = VERSION;

export async function probeAccounting(ctx: Pick<AgentContext, "slurm" | "now">): Promise<boolean> {
  const result = await ctx.slurm.sacct({ since: new Date(ctx.now() - 60_000) });
  return result.ok || result.code !== "unavailable";
}

export async function collectInventory(
  ctx: AgentContext,
  extra: { cycleMs?: number; hostname: string; mode: "local" | "ssh" },
): Promise<Inventory> {
  const [sinfo, gpus, version, apptainerVersion, accounting, maxArray, caches] = await Promise.all([
    ctx.slurm.sinfo(),
    ctx.slurm.gpuAvailability?.(),
    ctx.slurm.slurmVersion(),
    ctx.slurm.apptainerVersion(),
    probeAccounting(ctx),
    ctx.slurm.maxArraySize?.(),
    stagedCaches(ctx),
  ]);
  // Half an inventory would tell the gateway the cluster has no partitions: publish none this time.
  if (!sinfo.ok) {
    throw new Error(sinfo.message);
  }
  // Free GPUs are news, not a requirement: without them the partitions are published as they are.
  const partitions = sinfo.value.map((p) => {
    const available = gpus?.ok ? gpus.value.get(p.name) : undefined;
    return available && available.length > 0 ? { ...p, gpuAvailability: available } : p;
  });
  // sinfo answered, so the cluster is there: a version that did not come is only unknown.
  const slurmVersion = version.ok ? version.value : "unknown";
  ctx.partitions = partitions;
  ctx.accounting = accounting;
  // Unknown (scontrol did not answer) publishes nothing: the gateway then assumes Slurm's default.
  const maxArraySize = maxArray?.ok ? (maxArray.value ?? undefined) : undefined;
  ctx.maxArraySize = maxArraySize ?? ctx.maxArraySize;
  return {
    slurmVersion,
    apptainerVersion,
    accounting,
    partitions,
    agentVersion: AGENT_VERSION,
    agentId: ctx.agentId,
    hostname: extra.hostname,
    mode: extra.mode,
    cycleMs: extra.cycleMs,
    tracked: ctx.state.all().length,
    // What this agent enforces, so the gateway refuses the same things at submission.
    sharedRoots: ctx.config.SLURMGATE_SHARED_ROOTS,
    allowedSbatchArgs: ctx.config.SLURMGATE_ALLOWED_SBATCH_ARGS,
    ...(maxArraySize ? { maxArraySize } : {}),
    ...(caches ? { caches } : {}),
    ...(ctx.identity ? { identity: ctx.identity.published() } : {}),
  };
}
