import { revokeToken } from "../../client/oidc.ts";
import { parse, positionals } from "../args.ts";
import { type Command, helped } from "../command.ts";
import { configPath, readConfig, type StoredConfig, writeConfig } from "../config.ts";
import { printJson } from "../output.ts";

export const logout: Command = {
  name: "logout",
  summary: "forget the stored token or OIDC sign-in",
  help: `
Usage: slurmgate logout [--json]

Removes the stored token or OIDC sign-in from the login file and keeps the gateway URL. An OIDC
refresh token is also revoked at the provider when it offers that (best effort: a provider that
cannot be reached does not stop the logout).

Examples:
  slurmgate logout
`,
  async run(argv, io) {
    const { values, positionals: rest } = parse("logout", argv, {});
    if (helped(io, logout, values)) {
      return 0;
    }
    positionals("logout", rest, []);
    let stored: StoredConfig;
    let damaged = false;
    try {
      stored = readConfig(io.env);
    } catch {
      // A damaged file is exactly what a logout should be able to clear.
      stored = {};
      damaged = true;
    }
    const oidc = stored.oidc;
    let revoked = false;
    if (oidc?.revocationEndpoint && oidc.refreshToken) {
      revoked = await revokeToken({
        revocationEndpoint: oidc.revocationEndpoint,
        clientId: oidc.clientId,
        refreshToken: oidc.refreshToken,
      });
    }
    const had = damaged || stored.token !== undefined || oidc !== undefined;
    if (had) {
      writeConfig(io.env, stored.url ? { url: stored.url } : {});
    }
    const path = configPath(io.env);
    if (values.json) {
      printJson(io, { loggedOut: had, issuer: oidc?.issuer ?? null, revoked, path });
    } else if (!had) {
      io.stdout.write(`not logged in; nothing stored in ${path}\n`);
    } else {
      const what = oidc ? `the sign-in at ${oidc.issuer}${revoked ? " (revoked there too)" : ""}` : "the token";
      io.stdout.write(
        damaged ? `cleared the damaged ${path}\n` : `forgot ${what}; ${path} keeps only the gateway URL\n`,
      );
    }
    return 0;
  },
};
