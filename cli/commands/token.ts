import type { TokenInfo } from "../../client/index.ts";
import { integer, parse, positionals } from "../args.ts";
import { type Command, helped } from "../command.ts";
import { clientFor } from "../config.ts";
import { UsageError } from "../errors.ts";
import { age, printJson, table } from "../output.ts";

export const token: Command = {
  name: "token",
  summary: "create, list and revoke tokens (admin; anyone for their own personal agent)",
  help: `
Usage: slurmgate token create --user NAME [--kind user|admin] [--label TEXT] [--expires-days N]
       slurmgate token create --agent --cluster NAME [--user NAME]  (a personal agent token: your own,
                                                                   or, as an admin, another user's)
       slurmgate token create --cluster NAME [--label TEXT]        (a site agent token, admin)
       slurmgate token list [--user NAME] [--json]
       slurmgate token revoke TOKEN_ID

"create" prints the secret once on stdout (details on stderr): only its hash is stored.

Examples:
  slurmgate token create --user alice --label laptop
  AGENT_TOKEN=$(slurmgate token create --agent --cluster hpc1)   # runs only your jobs, as you
  AGENT_TOKEN=$(slurmgate token create --cluster hpc1)           # a site agent, with a mapping file
  slurmgate token list --user alice
  slurmgate token revoke tok_01jd7x2k9m4q8r6t5v3w1y0z
`,
  async run(argv, io) {
    const { values, positionals: rest } = parse("token", argv, {
      user: { type: "string", short: "u" },
      cluster: { type: "string", short: "c" },
      kind: { type: "string", short: "k" },
      agent: { type: "boolean" },
      label: { type: "string" },
      "expires-days": { type: "string" },
    });
    if (helped(io, token, values)) {
      return 0;
    }
    const [action, ...args] = rest;
    const admin = () => clientFor(io).admin;
    switch (action) {
      case "create": {
        positionals("token", args, []);
        if (values.agent && !values.cluster) {
          throw new UsageError("--agent needs --cluster: a personal agent token serves one cluster", "token");
        }
        if (values.agent && values.kind && values.kind !== "agent") {
          throw new UsageError(`--agent makes an agent token; drop --kind ${values.kind}`, "token");
        }
        const expiresInDays = values["expires-days"]
          ? integer("token", "--expires-days", values["expires-days"])
          : undefined;
        const personal =
          values.agent && !values.user
            ? await clientFor(io).createAgentToken({
                cluster: values.cluster ?? "",
                label: values.label ?? "",
                ...(expiresInDays ? { expiresInDays } : {}),
              })
            : undefined;
        const kind = (values.kind ?? (values.cluster ? "agent" : "user")) as TokenInfo["kind"];
        if (!["user", "agent", "admin"].includes(kind)) {
          throw new UsageError(`--kind is user, agent or admin, not ${JSON.stringify(kind)}`, "token");
        }
        const created =
          personal ??
          (await admin().tokens.create({
            kind,
            ...(values.user ? { user: values.user } : {}),
            ...(values.cluster ? { cluster: values.cluster } : {}),
            label: values.label ?? "",
            ...(expiresInDays ? { expiresInDays } : {}),
          }));
        if (values.json) {
          printJson(io, created);
        } else {
          io.stdout.write(`${created.token}\n`);
          const owner =
            created.kind === "agent"
              ? created.user
                ? `${created.user}'s personal agent on ${created.cluster}`
                : `a site agent on ${created.cluster}`
              : created.user;
          io.stderr.write(`created ${created.kind} token ${created.id} for ${owner}; it is shown only this once\n`);
        }
        return 0;
      }
      case "list": {
        positionals("token", args, []);
        const items = await admin().tokens.list(values.user ? { user: values.user } : {});
        if (values.json) {
          printJson(io, items);
          return 0;
        }
        const rows = items.map((t) => [
          t.id,
          t.kind,
          t.user ?? t.cluster ?? "-",
          t.label || "-",
          `${t.prefix}…`,
          age(t.createdAt),
          t.revokedAt ? "revoked" : t.lastUsedAt ? `used ${age(t.lastUsedAt)} ago` : "unused",
        ]);
        io.stdout.write(`${table([["ID", "KIND", "FOR", "LABEL", "PREFIX", "AGE", "STATUS"], ...rows])}\n`);
        return 0;
      }
      case "revoke": {
        const [id = ""] = positionals("token", args, ["TOKEN_ID"]);
        await admin().tokens.revoke(id);
        if (values.json) {
          printJson(io, { id, revoked: true });
        } else {
          io.stdout.write(`revoked ${id}\n`);
        }
        return 0;
      }
      default:
        throw new UsageError(
          action ? `unknown action ${JSON.stringify(action)}` : "missing action: create, list or revoke",
          "token",
        );
    }
  },
};
