import type { ClusterView } from "../../client/index.ts";
import { parse, positionals } from "../args.ts";
import { type Command, helped } from "../command.ts";
import { clientFor } from "../config.ts";
import { CliError } from "../errors.ts";
import type { Io } from "../io.ts";
import { age, printJson, table } from "../output.ts";

type Partition = NonNullable<ClusterView["inventory"]>["partitions"][number];

/** `a100 1/2 free` per type; the largest count on one node when the agent did not say what is free. */
function gpuWords(p: Partition): string {
  if (p.gpuAvailability?.length) {
    return p.gpuAvailability.map((g) => `${g.type || "gpu"} ${g.free}/${g.total} free`).join(", ");
  }
  return p.gpus.map((g) => `${g.type || "gpu"} ×${g.count} per node`).join(", ") || "-";
}

function limitWords(p: Partition): string {
  const time = p.maxTimeSeconds === null ? "no time limit" : `≤ ${Math.round(p.maxTimeSeconds / 60)}m`;
  return `${time}, ${p.maxCpusPerNode} CPUs and ${p.maxMemMBPerNode} MB per node`;
}

function printDetail(io: Io, c: ClusterView): void {
  const out: string[] = [`${c.name}: agent ${c.alive ? "up" : "DOWN"}, seen ${age(c.lastSeenAt)}`];
  if (c.description) {
    out.push(c.description);
  }
  const usable = new Set(c.partitions);
  const parts = (c.inventory?.partitions ?? []).filter((p) => usable.has(p.name));
  out.push(
    "",
    table([
      ["PARTITION", "STATE", "NODES IDLE/TOTAL", "GPUS", "LIMITS"],
      ...parts.map((p) => [
        `${p.name}${p.default ? "*" : ""}`,
        p.state,
        `${p.idleNodes ?? "?"}/${p.nodes}`,
        gpuWords(p),
        limitWords(p),
      ]),
    ]),
  );
  for (const u of c.unavailablePartitions) {
    out.push(`not on offer: ${u.name}: ${u.reason}`);
  }
  for (const [name, profile] of Object.entries(c.profileDetails)) {
    out.push(`profile ${name}: ${JSON.stringify(profile)}`);
  }
  for (const cache of c.inventory?.caches ?? []) {
    out.push(`staged: ${cache.name} (${cache.bytes} bytes, ${cache.stagedAt})`);
  }
  io.stdout.write(`${out.join("\n")}\n`);
}

export const clusters: Command = {
  name: "clusters",
  summary: "clusters you may use: partitions, free GPUs, idle nodes, profiles, agent liveness",
  help: `
Usage: slurmgate clusters [NAME] [--json]

Without NAME, one line per cluster. With NAME, that cluster's partitions (state, idle and total
nodes, GPUs free and total per type, limits), the partitions you cannot use and why, what each
profile sets, and the caches staged there (jobs name them in "cache").

Examples:
  slurmgate clusters
  slurmgate clusters alpha
  slurmgate clusters --json | jq '.[] | {name, alive, partitions}'
`,
  async run(argv, io) {
    const { values, positionals: rest } = parse("clusters", argv, {});
    if (helped(io, clusters, values)) {
      return 0;
    }
    const [name] = rest.length > 1 ? positionals("clusters", rest, ["NAME"]) : rest;
    const items = await clientFor(io).clusters();
    if (name !== undefined) {
      const one = items.find((c) => c.name === name);
      if (!one) {
        const known = items.map((c) => c.name).join(", ") || "none";
        throw new CliError(`no cluster ${name} that you may use (yours: ${known})`);
      }
      if (values.json) {
        printJson(io, one);
      } else {
        printDetail(io, one);
      }
      return 0;
    }
    if (values.json) {
      printJson(io, items);
      return 0;
    }
    const rows = items.map((c) => {
      const usable = new Set(c.partitions);
      const parts = (c.inventory?.partitions ?? []).filter((p) => usable.has(p.name));
      // Per type, the largest view any partition gives (nodes shared by partitions would count twice
      // if summed); a type whose partitions say nothing of what is free is shown by name only.
      const gpus = new Map<string, { free: number; total: number } | null>();
      for (const p of parts) {
        for (const g of p.gpuAvailability ?? []) {
          const seen = gpus.get(g.type);
          if (!seen || g.total > seen.total) {
            gpus.set(g.type, g);
          }
        }
        for (const g of p.gpus) {
          if (!gpus.has(g.type)) {
            gpus.set(g.type, null);
          }
        }
      }
      const gpuText = [...gpus].map(([type, n]) => (n ? `${type || "gpu"} ${n.free}/${n.total}` : type || "gpu"));
      return [
        c.name,
        c.alive ? "up" : "DOWN",
        c.partitions.join(",") || "-",
        gpuText.join(",") || "-",
        c.inventory?.slurmVersion ?? "-",
        age(c.lastSeenAt),
      ];
    });
    io.stdout.write(`${table([["NAME", "AGENT", "PARTITIONS", "GPUS FREE/TOTAL", "SLURM", "SEEN"], ...rows])}\n`);
    return 0;
  },
};
