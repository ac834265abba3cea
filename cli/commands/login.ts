import { createClient } from "../../client/index.ts";
import { gatewayUrl, parse, positionals } from "../args.ts";
import { type Command, helped } from "../command.ts";
import { readConfig, writeConfig } from "../config.ts";
import { UsageError } from "../errors.ts";
import { printJson } from "../output.ts";
import { loginWithOidc } from "../oidc-login.ts";

export const login: Command = {
  name: "login",
  summary: "sign in (a token, or your identity provider) and remember it",
  help: `
Usage: slurmgate login --url URL --token TOKEN
       slurmgate login --url URL --oidc ISSUER [--client-id ID] [--scope SCOPES]

Checks the token against the gateway (GET /v1/me) and stores both in
$XDG_CONFIG_HOME/slurmgate/config.json (or ~/.config/slurmgate/config.json), readable only by you.
SLURMGATE_URL and SLURMGATE_TOKEN, when set, override the stored values for every verb.

With --oidc, signs you in at your identity provider instead (OAuth 2.0 device flow): prints a
link and a code on stderr, waits while you confirm it in any browser, then stores the provider's
ID token (what the gateway checks) and refresh token. Later commands refresh it by themselves;
slurmgate logout forgets it.

Options:
  --url URL          the gateway, with its scheme: https://slurmgate.example.org
                     (default: SLURMGATE_URL or the stored one)
  --token TOKEN      your token (sgu_…); "-" reads it from stdin (default: SLURMGATE_TOKEN)
  --oidc ISSUER      your identity provider's issuer URL (https; plain http only on this machine)
  --client-id ID     the client registered for slurmgate at the provider (default: slurmgate)
  --scope SCOPES     what to ask for (default: "openid profile offline_access";
                     offline_access is what gives a refresh token)
  --json             print {url, user, kind, path}; errors as one JSON object on stderr

Examples:
  slurmgate login --url http://127.0.0.1:8080 --token sgu_3x…
  pass show slurmgate | slurmgate login --url https://slurmgate.example.org --token -
  slurmgate login --url https://slurmgate.example.org --oidc https://idp.example.org/realms/hpc
`,
  async run(argv, io) {
    const { values, positionals: rest } = parse("login", argv, {
      url: { type: "string" },
      token: { type: "string" },
      oidc: { type: "string" },
      "client-id": { type: "string" },
      scope: { type: "string" },
    });
    if (helped(io, login, values)) {
      return 0;
    }
    positionals("login", rest, []);
    if (values.oidc === undefined && (values["client-id"] !== undefined || values.scope !== undefined)) {
      throw new UsageError("--client-id and --scope go with --oidc", "login");
    }
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
    if (values.oidc !== undefined) {
      if (values.token !== undefined) {
        throw new UsageError("give --token or --oidc, not both", "login");
      }
      if (!url) {
        throw new UsageError("--url is required", "login");
      }
      return loginWithOidc(io, {
        url,
        issuer: values.oidc,
        clientId: values["client-id"] ?? "slurmgate",
        scope: values.scope ?? "openid profile offline_access",
        json: Boolean(values.json),
      });
    }
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
