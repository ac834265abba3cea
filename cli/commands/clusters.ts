import { parse, positionals } from "../args.ts";
import { type Command, helped } from "../command.ts";
import { clientFor } from "../config.ts";
import { age, printJson, table } from "../output.ts";

export const clusters: Command = {
  name: "clusters",
  summary: "clusters you may use: partitions, GPUs, agent liveness",
  help: `
Usage: slurmgate clusters [--json]

Examples:
  slurmgate clusters
  slurmgate clusters --json | jq '.[] | {name, alive, partitions}'
`,
  async run(argv, io) {
    const { values, positionals: rest } = parse("clusters", argv, {});
    if (helped(io, clusters, values)) {
      return 0;
    }
    positionals("clusters", rest, []);
    const items = await clientFor(io).clusters();
    if (values.json) {
      printJson(io, items);
      return 0;
    }
    const rows = items.map((c) => {
      const gpus = new Set(c.inventory?.partitions.flatMap((p) => p.gpus.map((g) => g.type)) ?? []);
      return [
        c.name,
        c.alive ? "up" : "DOWN",
        c.partitions.join(",") || "-",
        [...gpus].join(",") || "-",
        c.inventory?.slurmVersion ?? "-",
        age(c.lastSeenAt),
      ];
    });
    io.stdout.write(`${table([["NAME", "AGENT", "PARTITIONS", "GPUS", "SLURM", "SEEN"], ...rows])}\n`);
    return 0;
  },
};
