import { parse, positionals } from "../args.ts";
import { type Command, helped } from "../command.ts";
import { clientFor } from "../config.ts";
import { CliError, UsageError } from "../errors.ts";
import { printJson, table } from "../output.ts";

export const user: Command = {
  name: "user",
  summary: "add, list, disable and enable users (admin)",
  help: `
Usage: slurmgate user add NAME [--admin] [--json]
       slurmgate user list [--json]
       slurmgate user disable NAME [--json]
       slurmgate user enable NAME [--json]

NAME is also the user's directory on the shared filesystem: [a-z_][a-z0-9_-]*, at most 32.
A disabled user's tokens (their agents' too) and OIDC sign-ins are refused until enabled again;
their jobs and grants are kept.

Examples:
  slurmgate user add alice
  slurmgate user add root_ops --admin
  slurmgate user disable alice
`,
  async run(argv, io) {
    const { values, positionals: rest } = parse("user", argv, { admin: { type: "boolean" } });
    if (helped(io, user, values)) {
      return 0;
    }
    const [action, ...args] = rest;
    const admin = () => clientFor(io).admin;
    const saved = (u: { name: string; admin: boolean; disabled?: boolean }) => {
      if (values.json) {
        printJson(io, u);
      } else {
        io.stdout.write(`user ${u.name}${u.admin ? " (admin)" : ""}${u.disabled ? " (disabled)" : ""} saved\n`);
      }
      return 0;
    };
    if (action === "add") {
      const [name = ""] = positionals("user", args, ["NAME"]);
      return saved(await admin().users.upsert({ name, admin: Boolean(values.admin) }));
    }
    if (action === "disable" || action === "enable") {
      const [name = ""] = positionals("user", args, ["NAME"]);
      // The route replaces `admin`; read it first so disabling an admin does not also demote them.
      const found = (await admin().users.list()).find((u) => u.name === name);
      if (!found) {
        throw new CliError(`no user ${JSON.stringify(name)}; see slurmgate user list`);
      }
      return saved(await admin().users.upsert({ name, admin: found.admin, disabled: action === "disable" }));
    }
    if (action === "list") {
      positionals("user", args, []);
      const users = await admin().users.list();
      if (values.json) {
        printJson(io, users);
      } else {
        const rows = users.map((u) => [u.name, u.admin ? "yes" : "no", u.disabled ? "yes" : "no"]);
        io.stdout.write(`${table([["NAME", "ADMIN", "DISABLED"], ...rows])}\n`);
      }
      return 0;
    }
    throw new UsageError(
      action ? `unknown action ${JSON.stringify(action)}` : "missing action: add, list, disable or enable",
      "user",
    );
  },
};
