import { parse, positionals } from "../args.ts";
import { type Command, helped } from "../command.ts";
import { clientFor } from "../config.ts";
import { UsageError } from "../errors.ts";
import { printJson, table } from "../output.ts";

export const user: Command = {
  name: "user",
  summary: "add and list users (admin)",
  help: `
Usage: slurmgate user add NAME [--admin] [--json]
       slurmgate user list [--json]

NAME is also the user's directory on the shared filesystem: [a-z_][a-z0-9_-]*, at most 32.

Examples:
  slurmgate user add alice
  slurmgate user add root_ops --admin
`,
  async run(argv, io) {
    const { values, positionals: rest } = parse("user", argv, { admin: { type: "boolean" } });
    if (helped(io, user, values)) {
      return 0;
    }
    const [action, ...args] = rest;
    const admin = () => clientFor(io).admin;
    if (action === "add") {
      const [name = ""] = positionals("user", args, ["NAME"]);
      const saved = await admin().users.upsert({ name, admin: Boolean(values.admin) });
      if (values.json) {
        printJson(io, saved);
      } else {
        io.stdout.write(`user ${saved.name}${saved.admin ? " (admin)" : ""} saved\n`);
      }
      return 0;
    }
    if (action === "list") {
      positionals("user", args, []);
      const users = await admin().users.list();
      if (values.json) {
        printJson(io, users);
      } else {
        io.stdout.write(`${table([["NAME", "ADMIN"], ...users.map((u) => [u.name, u.admin ? "yes" : "no"])])}\n`);
      }
      return 0;
    }
    throw new UsageError(action ? `unknown action ${JSON.stringify(action)}` : "missing action: add or list", "user");
  },
};
