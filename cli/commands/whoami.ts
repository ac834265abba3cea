import { parse, positionals } from "../args.ts";
import { type Command, helped } from "../command.ts";
import { clientFor } from "../config.ts";
import { printJson } from "../output.ts";

export const whoami: Command = {
  name: "whoami",
  summary: "show who the configured token belongs to",
  help: `
Usage: slurmgate whoami [--json]

Examples:
  slurmgate whoami
  SLURMGATE_TOKEN=sgk_… slurmgate whoami --json
`,
  async run(argv, io) {
    const { values, positionals: rest } = parse("whoami", argv, {});
    if (helped(io, whoami, values)) {
      return 0;
    }
    positionals("whoami", rest, []);
    const client = clientFor(io);
    const me = await client.me();
    if (values.json) {
      printJson(io, { ...me, url: client.baseUrl });
    } else {
      io.stdout.write(`${me.user ?? `agent of ${me.cluster}`} (${me.kind}) at ${client.baseUrl}\n`);
    }
    return 0;
  },
};
