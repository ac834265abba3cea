import type { ClusterConfigInput } from "../../client/index.ts";
import { parse, positionals } from "../args.ts";
import { type Command, helped } from "../command.ts";
import { clientFor } from "../config.ts";
import { UsageError } from "../errors.ts";
import { readJobFile } from "../job-spec.ts";
import { printJson, table } from "../output.ts";

export const cluster: Command = {
  name: "cluster",
  summary: "register clusters and grant users access (admin)",
  help: `
Usage: slurmgate cluster add NAME --root PATH... [--description TEXT] [--allow-sbatch-arg OPT]...
       slurmgate cluster add -f cluster.yaml
       slurmgate cluster list [--json]
       slurmgate cluster grant USER CLUSTER [--partition NAME]...   (default: all partitions)
                [--account NAME]... [--default-account NAME]    (default: any account Slurm allows)
       slurmgate cluster ungrant USER CLUSTER

Examples:
  slurmgate cluster add hpc1 --root /scratch --root /projects --description "main HPC"
  slurmgate cluster add hpc1 --root /scratch --allow-sbatch-arg --constraint
  slurmgate cluster grant alice hpc1 --partition gpu --partition cpu
  slurmgate cluster grant alice hpc1 --account lab-a --account lab-b --default-account lab-a
  AGENT_TOKEN=$(slurmgate token create --cluster hpc1)
`,
  async run(argv, io) {
    const { values, positionals: rest } = parse("cluster", argv, {
      root: { type: "string", multiple: true },
      description: { type: "string" },
      "allow-sbatch-arg": { type: "string", multiple: true },
      partition: { type: "string", multiple: true },
      account: { type: "string", multiple: true },
      "default-account": { type: "string" },
      file: { type: "string", short: "f" },
    });
    if (helped(io, cluster, values)) {
      return 0;
    }
    const [action, ...args] = rest;
    const admin = () => clientFor(io).admin;
    const done = (value: unknown, line: string) => {
      if (values.json) {
        printJson(io, value);
      } else {
        io.stdout.write(`${line}\n`);
      }
      return 0;
    };
    switch (action) {
      case "add": {
        const file = values.file ? (readJobFile(values.file) as Partial<ClusterConfigInput>) : {};
        const [name = file.name ?? ""] = values.file ? args : positionals("cluster", args, ["NAME"]);
        const sharedRoots = values.root ?? file.sharedRoots;
        if (!name) {
          throw new UsageError("missing NAME", "cluster");
        }
        if (!sharedRoots?.length) {
          throw new UsageError("--root is required: where job directories live on the shared filesystem", "cluster");
        }
        const saved = await admin().clusters.upsert({
          ...file,
          name,
          sharedRoots,
          ...(values.description !== undefined ? { description: values.description } : {}),
          ...(values["allow-sbatch-arg"] ? { allowedSbatchArgs: values["allow-sbatch-arg"] } : {}),
        });
        return done(saved, `cluster ${saved.name} saved (roots ${saved.sharedRoots.join(", ")})`);
      }
      case "list": {
        positionals("cluster", args, []);
        const items = await admin().clusters.list();
        if (values.json) {
          printJson(io, items);
          return 0;
        }
        const rows = items.map((c) => [
          c.name,
          c.sharedRoots.join(","),
          c.allowedSbatchArgs.join(",") || "-",
          c.description,
        ]);
        io.stdout.write(`${table([["NAME", "ROOTS", "SBATCH ARGS", "DESCRIPTION"], ...rows])}\n`);
        return 0;
      }
      case "grant": {
        const [userName = "", clusterName = ""] = positionals("cluster", args, ["USER", "CLUSTER"]);
        const grant = await admin().grants.upsert({
          user: userName,
          cluster: clusterName,
          ...(values.partition ? { partitions: values.partition } : {}),
          ...(values.account ? { accounts: values.account } : {}),
          ...(values["default-account"] ? { defaultAccount: values["default-account"] } : {}),
        });
        const charges = grant.accounts
          ? `; accounts: ${grant.accounts.join(", ")}${grant.defaultAccount ? `, default ${grant.defaultAccount}` : ""}`
          : "";
        return done(
          grant,
          `${grant.user} may use ${grant.cluster} (partitions: ${grant.partitions.join(", ")}${charges})`,
        );
      }
      case "ungrant": {
        const [userName = "", clusterName = ""] = positionals("cluster", args, ["USER", "CLUSTER"]);
        await admin().grants.remove(userName, clusterName);
        return done(
          { user: userName, cluster: clusterName, removed: true },
          `${userName} may no longer use ${clusterName}`,
        );
      }
      default:
        throw new UsageError(
          action ? `unknown action ${JSON.stringify(action)}` : "missing action: add, list, grant or ungrant",
          "cluster",
        );
    }
  },
};
