import { createClient } from "../../client/index.ts";
import { gatewayUrl, parse, positionals } from "../args.ts";
import { type Command, helped } from "../command.ts";
import { readConfig, writeConfig } from "../config.ts";
import { UsageError } from "../errors.ts";
import { printJson } from "../output.ts";

export const login: Command = {
  name: "login",
  summary: "check a gateway URL and token and remember them",
  help: `
Usage: slurmgate login --url URL --token TOKEN

Checks the token against the gateway (GET /v1/me) and stores both in
$XDG_CONFIG_HOME/slurmgate/config.json (or ~/.config/slurmgate/config.json), readable only by you.
SLURMGATE_URL and SLURMGATE_TOKEN, when set, override the stored values for every verb.

Options:
  --url URL        the gateway, with its scheme: https://slurmgate.example.org
                   (default: SLURMGATE_URL or the stored one)
  --token TOKEN    your token (sgu_…); "-" reads it from stdin (default: SLURMGATE_TOKEN)
  --json           print {url, user, kind, path}; errors as one JSON object on stderr

Examples:
  slurmgate login --url http://127.0.0.1:8080 --token sgu_3x…
  pass show slurmgate | slurmgate login --url https://slurmgate.example.org --token -
`,
  async run(argv, io) {
    const { values, positionals: rest } = parse("login", argv, { url: { type: "string" }, token: { type: "string" } });
    if (helped(io, login, values)) {
      return 0;
    }
    positionals("login", rest, []);
    const stored = readConfig(io.env);
    const raw =
      values.url !== undefined
        ? { source: "--url", value: values.url }
        : io.env.SLURMGATE_URL
          ? { source: "SLURMGATE_URL", value: io.env.SLURMGATE_URL }
          : stored.url
            ? { source: "the stored URL", value: stored.url }
            : undefined;
    const url = raw && gatewayUrl(raw.source, raw.value, raw.source === "--url" ? "login" : undefined);
    let token = values.token ?? io.env.SLURMGATE_TOKEN;
    if (token === "-") {
      token = (await io.readStdin()).trim();
    }
    if (!url) {
      throw new UsageError("--url is required", "login");
    }
    if (!token) {
      throw new UsageError("--token is required (or SLURMGATE_TOKEN, or --token - to read stdin)", "login");
    }
    const me = await createClient({ baseUrl: url, token }).me();
    const path = writeConfig(io.env, { url, token });
    const who = me.user ?? `agent of ${me.cluster}`;
    if (values.json) {
      printJson(io, { url, user: me.user, kind: me.kind, path });
    } else {
      io.stdout.write(`logged in to ${url} as ${who} (${me.kind}); saved to ${path}\n`);
    }
    return 0;
  },
};
