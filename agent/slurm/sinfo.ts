/**
 * sinfo: partitions for the inventory (schemas `Inventory.partitions`).
 *
 * Format `%P|%a|%D|%l|%c|%m|%G|%s|%F`: partition (`*` marks the default), availability, node
 * count, time limit, CPUs per node, memory per node (MB), GRES, job size in nodes (`1-infinite`),
 * nodes allocated/idle/other/total.
 * sinfo prints one line per distinct node configuration, so a partition may span several lines;
 * they are merged (nodes summed, per-node maxima kept).
 */
import type { GpuAvailability, PartitionInfo } from "../../schemas/agent.ts";
import { lines, splitFields } from "./fields.ts";

export const SINFO_FORMAT = "%P|%a|%D|%l|%c|%m|%G|%s|%F";

/** argv for the partition listing. */
export function buildSinfoArgs(): string[] {
  return ["-h", "-o", SINFO_FORMAT];
}

/**
 * Parses sinfo output into PartitionInfo records, in first-seen order.
 * @example
 * parseSinfo("gpu*|up|1|2:00:00|2|4000|gpu:a100:2(S:0)|1-infinite\n")
 * // => [{ name: "gpu", default: true, state: "up", nodes: 1, maxTimeSeconds: 7200, …, gpus: [{ type: "a100", count: 2 }] }]
 */
export function parseSinfo(stdout: string): PartitionInfo[] {
  const byName = new Map<string, PartitionInfo>();
  for (const line of lines(stdout)) {
    // Eight fields from an agent of before %F: the idle count is then unknown.
    const f = splitFields(line, 9) ?? splitFields(line, 8);
    if (!f) {
      continue;
    }
    const [rawName = "", avail = "", nodes = "", limit = "", cpus = "", mem = "", gres = "", size = "", counts] = f;
    const idle = counts === undefined ? undefined : /^\d+\/(\d+)\/\d+\/\d+$/.exec(counts.trim())?.[1];
    const name = rawName.trim().replace(/\*$/, "");
    const next: PartitionInfo = {
      name,
      default: rawName.trim().endsWith("*"),
      state: avail.trim(),
      nodes: leadingInt(nodes) ?? 0,
      maxTimeSeconds: parseSlurmDuration(limit),
      maxCpusPerNode: leadingInt(cpus) ?? 0,
      maxMemMBPerNode: leadingInt(mem) ?? 0,
      maxNodes: parseMaxNodes(size),
      gpus: parseGpuGres(gres),
      ...(idle === undefined ? {} : { idleNodes: Number(idle) }),
    };
    const prev = byName.get(name);
    byName.set(name, prev === undefined ? next : merge(prev, next));
  }
  return [...byName.values()];
}

/**
 * Parses a Slurm duration as sinfo/scontrol print it: `10:00` (M:S), `1:00:00`, `1-00:00:00`,
 * `2-12` (D-H), `infinite`/`UNLIMITED` → null (no limit). Unparseable → null.
 */
export function parseSlurmDuration(value: string): number | null {
  const v = value.trim();
  const m = /^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$/.exec(v);
  if (!m) {
    return null;
  }
  const [, d, a = "0", b, c] = m;
  const days = Number(d ?? 0);
  let h = 0;
  let min = 0;
  let s = 0;
  if (d !== undefined) {
    // D-H, D-H:M, D-H:M:S
    h = Number(a);
    min = Number(b ?? 0);
    s = Number(c ?? 0);
  } else if (c !== undefined) {
    h = Number(a);
    min = Number(b);
    s = Number(c);
  } else if (b !== undefined) {
    min = Number(a);
    s = Number(b);
  } else {
    min = Number(a);
  }
  return ((days * 24 + h) * 60 + min) * 60 + s;
}

/**
 * GPU entries of a GRES string: `gpu:a100:2(S:0-1),gpu:h100:1,mps:100` → a100×2, h100×1.
 * An untyped `gpu:2` gets type "". `(null)` → [].
 */
export function parseGpuGres(value: string): { type: string; count: number }[] {
  const out = new Map<string, number>();
  // Commas also appear inside `(S:0,1)`; drop parenthesised parts first.
  for (const item of value.replace(/\([^)]*\)/g, "").split(",")) {
    const parts = item.trim().split(":");
    if (parts[0] !== "gpu") {
      continue;
    }
    const count = Number(parts.at(-1));
    const type = parts.length >= 3 ? (parts[1] ?? "") : "";
    if (parts.length >= 2 && Number.isInteger(count)) {
      out.set(type, Math.max(out.get(type) ?? 0, count));
    }
  }
  return [...out].map(([type, count]) => ({ type, count }));
}

function parseMaxNodes(size: string): number | null {
  const m = /^\d+-(\d+|infinite)$/.exec(size.trim());
  if (!m || m[1] === "infinite") {
    return null;
  }
  return Number(m[1]);
}

function leadingInt(value: string): number | null {
  const m = /^(\d+)/.exec(value.trim());
  return m ? Number(m[1]) : null;
}

function merge(a: PartitionInfo, b: PartitionInfo): PartitionInfo {
  const gpus = new Map(a.gpus.map((g) => [g.type, g.count]));
  for (const g of b.gpus) {
    gpus.set(g.type, Math.max(gpus.get(g.type) ?? 0, g.count));
  }
  return {
    ...a,
    default: a.default || b.default,
    nodes: a.nodes + b.nodes,
    maxCpusPerNode: Math.max(a.maxCpusPerNode, b.maxCpusPerNode),
    maxMemMBPerNode: Math.max(a.maxMemMBPerNode, b.maxMemMBPerNode),
    gpus: [...gpus].map(([type, count]) => ({ type, count })),
    ...(a.idleNodes === undefined || b.idleNodes === undefined ? {} : { idleNodes: a.idleNodes + b.idleNodes }),
  };
}

/** Per node and partition: configured GRES, GRES in use, compact state (one slurmctld RPC). */
export const SINFO_GPU_FORMAT = "NodeHost:|,Partition:|,Gres:|,GresUsed:|,StateCompact:|";

/** argv for the per-node GPU listing. */
export function buildSinfoGpuArgs(): string[] {
  return ["-h", "-N", "-O", SINFO_GPU_FORMAT];
}

/** Node states whose free GPUs a job could get now (a `*` suffix, not responding, is not one). */
const SCHEDULABLE_STATE = /^(idle|mix|mixed|alloc|allocated|comp|completing)$/;

/**
 * Free and total GPUs per partition and type, summed over the partition's nodes: a node that is
 * down, drained, reserved or not responding counts in the total but has none free.
 * @example
 * parseSinfoGpus("vm|gpu|gpu:a100:2|gpu:a100:1(IDX:0)|mix|\n").get("gpu")
 * // => [{ type: "a100", total: 2, free: 1 }]
 */
export function parseSinfoGpus(stdout: string): Map<string, GpuAvailability[]> {
  const byPartition = new Map<string, Map<string, GpuAvailability>>();
  for (const line of lines(stdout)) {
    const f = splitFields(line, 6);
    if (!f) {
      continue;
    }
    const [, rawPartition = "", gres = "", used = "", state = ""] = f;
    const partition = rawPartition.trim().replace(/\*$/, "");
    const usable = SCHEDULABLE_STATE.test(state.trim());
    const inUse = new Map(parseGpuGres(used).map((g) => [g.type, g.count]));
    const types = byPartition.get(partition) ?? new Map<string, GpuAvailability>();
    for (const { type, count } of parseGpuGres(gres)) {
      const entry = types.get(type) ?? { type, total: 0, free: 0 };
      entry.total += count;
      entry.free += usable ? Math.max(0, count - (inUse.get(type) ?? 0)) : 0;
      types.set(type, entry);
    }
    byPartition.set(partition, types);
  }
  return new Map([...byPartition].map(([name, types]) => [name, [...types.values()]]));
}
